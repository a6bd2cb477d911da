/**
 * Admin commands, shipped in the release as dist/admin.js. On a host:
 *   sudo cemetery-admin token create --name office
 * (the wrapper runs this as the app user with the release's env file).
 * A created token is printed once, on stdout, and never stored in the clear.
 */
import pino from 'pino';
import { CONFIG_ERROR_EXIT_CODE, ConfigError, loadConfig } from './config';
import { createPool, explainDatabaseError } from './db';
import { withEnvFile } from './env-file';
import { createToken, listTokens, revokeToken } from './tokens';

/** The verbs, their arguments and what they do: the usage and every --help come from here. */
const VERBS: Record<string, { args: string; about: string }> = {
  create: { args: '--name <name>', about: 'makes a write token and prints it once, on stdout; only its hash is stored' },
  list: { args: '', about: 'every token: id, name, when it was made, whether it is revoked (never a token)' },
  revoke: { args: '(--name <name> | --id <id>)', about: 'ends an active token at once' },
};
const verbLine = (verb: string) => `admin token ${verb}${VERBS[verb].args ? ` ${VERBS[verb].args}` : ''}`;
const USAGE = `usage: ${Object.keys(VERBS).map(verbLine).join('\n       ')}`;
const EXIT_CODES = `exit codes: 0 done, 1 failed (the message says why), 2 usage, ${CONFIG_ERROR_EXIT_CODE} configuration (DATABASE_URL and the env file)`;
const HELP = `cemetery-backend admin: the app's API tokens, against the database in DATABASE_URL (on a host: sudo cemetery-admin ...).

${Object.keys(VERBS).map((verb) => `  ${verbLine(verb)}\n      ${VERBS[verb].about}`).join('\n')}

${EXIT_CODES}
`;
const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h' || arg === 'help';

class UsageError extends Error {}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) throw new UsageError(`--${name} needs a value`);
  return value;
}

async function run(args: string[]): Promise<void> {
  const [group, command, ...rest] = args;
  // Help needs no database: `admin --help`, `admin token --help`, `admin token create --help`.
  if (isHelp(group) || (group === 'token' && (command === undefined || isHelp(command)))) {
    process.stdout.write(HELP);
    return;
  }
  if (group === 'token' && command !== undefined && Object.hasOwn(VERBS, command) && rest.some(isHelp)) {
    process.stdout.write(`usage: ${verbLine(command)}\n  ${VERBS[command].about}\n${EXIT_CODES}\n`);
    return;
  }
  if (group !== 'token' || !Object.hasOwn(VERBS, command ?? '')) throw new UsageError(args.length ? `unknown command: ${args.join(' ')}` : 'no command given');
  const known = new Set(['--name', '--id']);
  const stray = rest.filter((a, i) => a.startsWith('--') ? !known.has(a) : !known.has(rest[i - 1] ?? ''));
  if (stray.length) throw new UsageError(`unexpected argument: ${stray.join(' ')}`);

  const config = loadConfig(withEnvFile(process.env));
  const pool = createPool(config.databaseUrl, 1, pino({ level: 'silent' }), { ca: config.databaseCa });
  try {
    if (command === 'create') {
      const name = option(rest, 'name');
      if (!name) throw new UsageError('token create needs --name <name>');
      const { id, token } = await createToken(pool, name);
      process.stderr.write(`created token ${id} "${name}"; it is shown once, here:\n`);
      process.stdout.write(`${token}\n`);
    } else if (command === 'list') {
      const tokens = await listTokens(pool);
      if (!tokens.length) process.stdout.write('no tokens\n');
      for (const t of tokens) process.stdout.write(`${t.id}\t${t.name}\tcreated ${t.createdAt}\t${t.revokedAt ? `revoked ${t.revokedAt}` : 'active'}\n`);
    } else {
      const name = option(rest, 'name');
      const id = option(rest, 'id');
      if ((name === undefined) === (id === undefined)) throw new UsageError('token revoke needs --name <name> or --id <id>');
      if (id !== undefined && !/^[1-9]\d{0,9}$/.test(id)) throw new UsageError(`--id must be a token id (token list), got "${id}"`);
      const revoked = await revokeToken(pool, name !== undefined ? { name } : { id: Number(id) });
      if (!revoked) throw new Error(`no active token ${name !== undefined ? `named "${name}"` : `with id ${id}`} (token list shows them)`);
      process.stdout.write(`revoked token ${revoked.id} "${revoked.name}"\n`);
    }
  } finally {
    await pool.end();
  }
}

run(process.argv.slice(2)).catch((err) => {
  if (err instanceof UsageError) {
    process.stderr.write(`cemetery-backend admin: ${err.message}\n${USAGE}\n(admin --help says more)\n`);
    process.exit(2);
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`cemetery-backend admin: ${err.message}\n`);
    process.exit(CONFIG_ERROR_EXIT_CODE);
  }
  process.stderr.write(`cemetery-backend admin: ${explainDatabaseError(err)}\n`);
  process.exit(1);
});
