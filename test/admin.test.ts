/** The release's admin command (dist/admin.js), run as an operator runs it: a child process reading the env file. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createPool, type Pool } from '../app/src/db';
import { isActiveToken } from '../app/src/tokens';
import { createMigratedDatabase, DIST, ROOT } from './support/db';
import { tempDir } from './support/temp-dir';

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let pool: Pool;
let envFile: string;

beforeAll(async () => {
  db = await createMigratedDatabase('admin');
  pool = createPool(db.url, 2, pino({ level: 'silent' }));
  // As on a host: DATABASE_URL only in the 0600 env file, never in the command's environment or arguments.
  envFile = path.join(tempDir('admin'), 'app.env');
  writeFileSync(envFile, `DATABASE_URL=${db.url}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

const admin = (...args: string[]) => {
  const { DATABASE_URL: _drop, ...env } = process.env;
  const r = spawnSync(process.execPath, [path.join(DIST, 'admin.js'), ...args], { env: { ...env, CEMETERY_ENV_FILE: envFile }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

test('token create prints the token once, on stdout; list shows names, never a token or hash; revoke ends it', async () => {
  const created = admin('token', 'create', '--name', 'office');
  expect(created.status).toBe(0);
  expect(created.stdout).toMatch(/^cmt_[A-Za-z0-9_-]{43}\n$/);
  expect(created.stderr).toMatch(/^created token \d+ "office"; it is shown once, here:\n$/);
  const token = created.stdout.trim();
  expect(await isActiveToken(pool, token)).toBe(true);

  const list = admin('token', 'list');
  expect(list.status).toBe(0);
  expect(list.stdout).toMatch(/^\d+\toffice\tcreated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\tactive\n$/);
  expect(list.stdout).not.toContain(token.slice(4, 20));

  expect(admin('token', 'create', '--name', 'office')).toMatchObject({ status: 1, stderr: expect.stringContaining('an active token named "office" exists: revoke it first') });
  expect(admin('token', 'revoke', '--name', 'office')).toMatchObject({ status: 0, stdout: expect.stringMatching(/^revoked token \d+ "office"\n$/) });
  expect(await isActiveToken(pool, token)).toBe(false);
  expect(admin('token', 'list').stdout).toMatch(/\toffice\tcreated \S+\trevoked \S+\n$/);
  expect(admin('token', 'revoke', '--name', 'office')).toMatchObject({ status: 1, stderr: expect.stringContaining('no active token named "office"') });
});

test.each([
  [[], 'no command given'],
  [['token', 'create'], 'token create needs --name <name>'],
  [['token', 'create', '--name'], '--name needs a value'],
  [['token', 'revoke'], 'token revoke needs --name <name> or --id <id>'],
  [['token', 'revoke', '--id', 'x'], '--id must be a token id (token list), got "x"'],
  [['token', 'list', '--all'], 'unexpected argument: --all'],
  [['user', 'add'], 'unknown command: user add'],
])('%j: usage error, exit 2', (args, message) => {
  const r = admin(...args);
  expect(r.status).toBe(2);
  expect(r.stderr).toContain(`cemetery-backend admin: ${message}\nusage: admin token create --name <name>`);
  expect(r.stderr).toContain('(admin --help says more)');
});

test('a bad token name is refused, naming the rule', () => {
  expect(admin('token', 'create', '--name', 'the office')).toMatchObject({ status: 1, stderr: expect.stringContaining('a token name is 1-64 letters, digits') });
});

describe('help, on every verb, with no database at hand', () => {
  const bare = (...args: string[]) => {
    const { DATABASE_URL: _drop, CEMETERY_ENV_FILE: _file, ...env } = process.env;
    const r = spawnSync(process.execPath, [path.join(DIST, 'admin.js'), ...args], { env, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  test.each([['--help'], ['-h'], ['help'], ['token'], ['token', '--help']])('%j: every verb, what it does and the exit codes, exit 0', (...args) => {
    const r = bare(...args);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    for (const verb of ['admin token create --name <name>', 'admin token list', 'admin token revoke (--name <name> | --id <id>)', 'exit codes: 0 done, 1 failed']) expect(r.stdout).toContain(verb);
  });

  test.each(['create', 'list', 'revoke'])('token %s --help: its own usage, exit 0', (verb) => {
    const r = bare('token', verb, '--help');
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(new RegExp(`^usage: admin token ${verb}`));
  });
});

describe('npm run token: the admin command against the local database', () => {
  const token = (env: Record<string, string>, ...args: string[]) => {
    const { DATABASE_URL: _drop, ...rest } = process.env;
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'local-token.mjs'), ...args], { env: { ...rest, ...env }, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  test("the database npm run pm2:start made (its password file), reached with no URL typed: create, list, revoke", async () => {
    // A state directory shaped like the local database's: its password file is all the script reads.
    const dir = tempDir('local-db');
    const url = new URL(db.url);
    writeFileSync(path.join(dir, 'postgres-password'), `${decodeURIComponent(url.password)}\n`);
    // Its URL is postgres://postgres:<password>@127.0.0.1:<port>/<database>: the test's database stands in for the local one.
    const env = { LOCAL_PG_DIR: dir, LOCAL_PG_PORT: url.port, LOCAL_PG_DATABASE: url.pathname.slice(1) };
    const created = token(env, 'create', '--name', 'local-me');
    expect(created).toMatchObject({ status: 0, stdout: expect.stringMatching(/^cmt_[A-Za-z0-9_-]{43}\n$/) });
    expect(await isActiveToken(pool, created.stdout.trim())).toBe(true);
    expect(token(env, 'list')).toMatchObject({ status: 0, stdout: expect.stringMatching(/\tlocal-me\tcreated \S+\tactive\n/) });
    expect(token(env, 'revoke', '--name', 'local-me')).toMatchObject({ status: 0 });
  });

  test('without the local database or a DATABASE_URL: says how to get one, exit 1; help still works', () => {
    const env = { LOCAL_PG_DIR: '/nonexistent/cemetery-pg' };
    expect(token(env, 'list')).toEqual({ status: 1, stdout: '', stderr: expect.stringContaining('npm run token: no database: start the local one with `npm run pm2:start` (its password file /nonexistent/cemetery-pg/postgres-password is missing), or set DATABASE_URL') });
    expect(token(env, '--help')).toMatchObject({ status: 0, stdout: expect.stringContaining('admin token list') });
  });
});
