/**
 * cemetery-release on the host: installed as /usr/local/sbin/cemetery-release
 * (root's) by the release step (scripts/host/release.sh), which runs `deploy`;
 * by hand:
 *
 *   sudo cemetery-release list
 *   sudo cemetery-release rollback [<id>]   (default: the previous live release)
 *
 * Deploys and rollbacks, done or refused, go on the audit trail (cemetery-audit).
 *
 * Every switch is health-gated (activate.ts): the release boots on a spare
 * loopback port and must answer /readyz before `current` moves and PM2
 * reloads. After a switch PM2's process list is saved, so a reboot serves the
 * same release. Bundled by esbuild (npm run build) into scripts/host/release.cjs:
 * no dependencies on the host.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RELEASE_ID_PATTERN } from '../../infra/host-layout';
import { activate } from './activate';
import { formatReleases, ReleaseError } from './plan';
import { SystemReleaseHost } from './system-host';

export const USAGE = `usage: cemetery-release list
       cemetery-release rollback [<id>]
       cemetery-release deploy --id <id> --upload <dir>   (provisioning; the environment file on stdin)
The wrapper in /usr/local/sbin passes: --app-user --app-home --app-name --app-port --uploads --keep --timeout`;

/** What the wrapper written by the release step passes: all required, no second copy of a default here. */
const REQUIRED = ['appUser', 'appHome', 'appName', 'appPort', 'uploads', 'keep', 'timeout'] as const;
const NUMERIC = new Set(['appPort', 'keep', 'timeout']);

export type Invocation = { command: string; target?: string; settings: Record<(typeof REQUIRED)[number], string>; id?: string; upload?: string };

/** `--name value` pairs and the command words; an unknown, missing or malformed setting is refused, naming it. */
export function parseInvocation(argv: string[]): Invocation {
  const opts: Record<string, string> = {};
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z][a-z-]*)$/.exec(argv[i]);
    if (!m) {
      words.push(argv[i]);
      continue;
    }
    const key = m[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (![...REQUIRED, 'id', 'upload'].includes(key)) throw new ReleaseError(`unknown option --${m[1]}\n${USAGE}`);
    if (i + 1 >= argv.length) throw new ReleaseError(`--${m[1]} needs a value\n${USAGE}`);
    opts[key] = argv[++i];
  }
  const missing = REQUIRED.filter((k) => !opts[k]);
  if (missing.length) throw new ReleaseError(`missing ${missing.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')}\n${USAGE}`);
  for (const k of NUMERIC) if (!/^[1-9]\d*$/.test(opts[k])) throw new ReleaseError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a whole number, got "${opts[k]}"`);
  const [command, target, ...extra] = words;
  if (!['list', 'rollback', 'deploy'].includes(command) || extra.length || (command !== 'rollback' && target)) throw new ReleaseError(USAGE);
  if (command === 'deploy' && (!opts.id || !opts.upload)) throw new ReleaseError(`deploy needs --id and --upload\n${USAGE}`);
  if (opts.id && !RELEASE_ID_PATTERN.test(opts.id)) throw new ReleaseError(`not a release id: "${opts.id}"`);
  return { command, target, settings: Object.fromEntries(REQUIRED.map((k) => [k, opts[k]])) as Invocation['settings'], id: opts.id, upload: opts.upload };
}

/** Runs a switch and puts its outcome on the host's audit trail; a refusal's first line says why. */
async function audited(host: SystemReleaseHost, action: string, detail: string, run: () => Promise<void>) {
  try {
    await run();
  } catch (err) {
    host.audit(action, 'failed', `${detail}: ${(err as Error).message.split('\n')[0]}`);
    throw err;
  }
  host.audit(action, 'ok', detail);
}

export async function main(argv: string[]) {
  const { command, target: wanted, settings, id, upload } = parseInvocation(argv);
  const host = new SystemReleaseHost({ ...settings, appPort: Number(settings.appPort) });
  host.checkLayout();
  host.requireDaemon();
  const timeoutSeconds = Number(settings.timeout);
  switch (command) {
    case 'list':
      console.log(formatReleases(host.installed(), host.link('current'), host.link('previous')));
      return;
    case 'rollback': {
      const target = wanted || host.link('previous');
      if (!target) throw new ReleaseError('there is no previous release to roll back to (cemetery-release list)');
      if (!RELEASE_ID_PATTERN.test(target)) throw new ReleaseError(`not a release id: "${target}" (cemetery-release list)`);
      if (!fs.existsSync(path.join(host.releases, target))) throw new ReleaseError(`release ${target} is not on this host (cemetery-release list)`);
      await audited(host, 'rollback', `to ${target} from ${host.link('current') ?? 'none'}`, () => activate(host, target, { timeoutSeconds, migrate: false }));
      return;
    }
    case 'deploy': {
      const envText = fs.readFileSync(0, 'utf8');
      if (!/^DATABASE_URL=/m.test(envText)) throw new ReleaseError('the environment on stdin has no DATABASE_URL');
      const live = host.link('current');
      await audited(host, 'deploy', `release ${id} ${live === id ? '(already live)' : `over ${live ?? 'none'}`}`, async () => {
        host.install(id!, upload!);
        await activate(host, id!, { envText, timeoutSeconds, migrate: true });
      });
      host.prune(Number(settings.keep), [id!]);
      return;
    }
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`cemetery-backend release: ${err instanceof ReleaseError ? err.message : (err as Error).stack}\n`);
    process.exit(1);
  });
}
