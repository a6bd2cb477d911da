/**
 * The operator command's verbs, as pure functions (run by scripts/operator/cli.ts):
 * what each one runs on the host, over the ssh the stack's outputs describe,
 * the host's key pinned from its `sshKnownHosts` output. Kamal's verbs where
 * they fit (`app logs -f`, `rollback`, `app exec`); every host command here is
 * one the release step installed, run through sudo.
 */
import { METRICS } from '../../app/src/metrics';
import { parseJlist, type Pm2Process } from '../lib/pm2-list.cjs';
import { DATABASE_NAME, HOST_PATHS, RELEASE_ID_PATTERN, shellQuote } from '../../infra/host-layout';

export class UsageError extends Error {}

/** What a verb runs on the host: a command line, or a bash script on stdin (status); `tty` for what is interactive. */
export type HostCall = { command: string; script?: 'status'; tty?: boolean };

// Every word is quoted (shellQuote) for the remote shell: ssh joins its arguments with spaces and the login shell splits them again.
const sudo = (...words: string[]) => ['sudo', ...words].map(shellQuote).join(' ');
const logFile = (err: boolean) => `${HOST_PATHS.appHome}/logs/${err ? 'err' : 'out'}.log`;

type Verb = { args: string; about: string; build: (args: string[], outputs: StackOutputs) => HostCall };

/** The verbs, their arguments and what they do: the usage and every --help come from here. */
export const VERBS: Record<string, Verb> = {
  status: {
    args: '',
    about: 'the live release and its rollback target, every worker (memory, restarts), /readyz (the database), the certificate, disk, maintenance',
    build: (args, outputs) => {
      none(args);
      const domain = outputs.appUrl?.startsWith('https://') ? new URL(outputs.appUrl).hostname : '';
      return { command: sudo('bash', '-s', '--', HOST_PATHS.appUser, HOST_PATHS.appHome, HOST_PATHS.maintenanceFlag, HOST_PATHS.nodeBin, ...(domain ? [domain] : [])), script: 'status' };
    },
  },
  logs: {
    args: '[-f] [--err] [-n <lines>]',
    about: "the app's log (JSON lines; --err: its stderr); -f follows it across rotations",
    build: (args) => {
      const follow = take(args, '-f');
      const err = take(args, '--err');
      const lines = value(args, '-n') ?? '100';
      if (!/^[1-9]\d{0,5}$/.test(lines)) throw new UsageError(`-n must be a number of lines, got "${lines}"`);
      none(args);
      return { command: sudo('tail', '-n', lines, ...(follow ? ['-F'] : []), logFile(err)) };
    },
  },
  releases: {
    args: '',
    about: 'the releases on the host (* live, the rollback target) and the last 20 lines of the audit trail',
    build: (args) => (none(args), { command: `${sudo('cemetery-release', 'list')} && echo && ${sudo('cemetery-audit', '--show', '20')}` }),
  },
  rollback: {
    args: '[<release id>]',
    about: 'back to the previous release (or the one named), health-gated like a deploy',
    build: (args) => {
      if (args.length > 1 || (args[0] && !RELEASE_ID_PATTERN.test(args[0]))) throw new UsageError('rollback takes at most a release id (r-<12 hex>: see `releases`)');
      return { command: sudo('cemetery-release', 'rollback', ...args) };
    },
  },
  exec: {
    args: '<command> [<arg>...]',
    about: 'runs a command on the host as the SSH user',
    build: (args) => {
      if (!args.length) throw new UsageError('exec needs a command');
      return { command: args.map(shellQuote).join(' ') };
    },
  },
  shell: { args: '', about: 'a login shell on the host', build: (args) => (none(args), { command: '', tty: true }) },
  psql: {
    args: '',
    about: 'psql on the database (databaseMode onHost; with RDS, psql from a host of your own with `pulumi stack output databaseUrl --show-secrets`)',
    build: (args, outputs) => {
      none(args);
      if (outputs.databaseEndpoint && !/^(localhost|127\.0\.0\.1)(:\d+)?$/.test(outputs.databaseEndpoint)) {
        throw new UsageError(`the database is ${outputs.databaseEndpoint} (RDS, or databaseMode external), not on the host: the host has no psql for it`);
      }
      return { command: sudo('-u', 'postgres', 'psql', '-d', DATABASE_NAME), tty: true };
    },
  },
  token: {
    args: 'create --name <name> | list | revoke (--name <name> | --id <id>)',
    about: "the app's write tokens (cemetery-admin on the host; a new token is printed once)",
    build: (args) => {
      if (!['create', 'list', 'revoke'].includes(args[0] ?? '')) throw new UsageError('token needs create, list or revoke');
      return { command: sudo('cemetery-admin', 'token', ...args) };
    },
  },
  db: {
    args: 'info | backup full|incr|diff | restore (--latest | --time <UTC time>)',
    about: "on-host PostgreSQL's backups (backupBucket): what the repository holds and whether archiving works, a backup now, a restore (cemetery-db on the host)",
    build: (args, outputs) => {
      if (outputs.databaseEndpoint && !/^(localhost|127\.0\.0\.1)(:\d+)?$/.test(outputs.databaseEndpoint)) {
        throw new UsageError(`the database is ${outputs.databaseEndpoint} (RDS, or databaseMode external), not on the host: its backups are RDS's, or whoever runs it (README: Restoring the database)`);
      }
      const [what, ...rest] = args;
      const ok =
        (what === 'info' && !rest.length) ||
        (what === 'backup' && rest.length === 1 && ['full', 'incr', 'diff'].includes(rest[0])) ||
        (what === 'restore' && ((rest.length === 1 && rest[0] === '--latest') || (rest.length === 2 && rest[0] === '--time' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(rest[1]))));
      if (!ok) throw new UsageError('db needs info, backup full|incr|diff, or restore --latest | --time <UTC time such as 2026-11-30T03:00:00Z>');
      return { command: sudo('cemetery-db', ...args) };
    },
  },
  maintenance: {
    args: 'on|off|status',
    about: 'the proxy answers 503 with Retry-After (all but /healthz and /readyz) while on; status exits 3 while on',
    build: (args) => {
      if (args.length !== 1 || !['on', 'off', 'status'].includes(args[0])) throw new UsageError('maintenance needs on, off or status');
      return { command: sudo('cemetery-maintenance', args[0]) };
    },
  },
};

function take(args: string[], flag: string) {
  const i = args.indexOf(flag);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
}
function value(args: string[], flag: string) {
  const i = args.indexOf(flag);
  if (i < 0) return undefined;
  const [, v] = args.splice(i, 2);
  if (v === undefined) throw new UsageError(`${flag} needs a value`);
  return v;
}
function none(args: string[]) {
  if (args.length) throw new UsageError(`unexpected: ${args.join(' ')}`);
}

/** The stack outputs the command uses (`pulumi stack output --json`). */
export type StackOutputs = { sshCommand: string; sshKnownHosts: string; appUrl?: string; databaseEndpoint?: string; hostAddresses?: string[]; [key: string]: unknown };

/**
 * What every host behind the balancer must agree on runs on each, in order, unless --host picks one: a
 * release or maintenance on one host alone would serve a mix. The rest goes to the first host (the
 * database, and so the tokens, is shared), or to the one --host names.
 */
export const FLEET_WIDE_VERBS = new Set(['status', 'releases', 'rollback', 'maintenance']);
/** Verbs that reach every host at once, each line marked with its host (scripts/operator/stream.ts). */
export const ALL_HOSTS_AT_ONCE_VERBS = new Set(['logs']);

/** The stack's hosts, the first first: its hostAddresses output, or (a stack from before fleets) sshCommand's host. */
export function hostAddresses(outputs: StackOutputs): string[] {
  if (Array.isArray(outputs.hostAddresses) && outputs.hostAddresses.length) return outputs.hostAddresses;
  return [outputs.sshCommand.split(' ').pop()!.split('@').pop()!];
}

/** Which hosts (0-based, in order) a verb runs on: the one --host names (1-based), or per FLEET_WIDE_VERBS. */
export function targetHosts(verb: string, hosts: number, chosen?: string): number[] {
  if (chosen !== undefined) {
    if (!/^[1-9]\d*$/.test(chosen) || Number(chosen) > hosts) throw new UsageError(`--host must be 1 to ${hosts} (the stack's hostAddresses, in order), got "${chosen}"`);
    return [Number(chosen) - 1];
  }
  return FLEET_WIDE_VERBS.has(verb) || ALL_HOSTS_AT_ONCE_VERBS.has(verb) ? [...Array(hosts).keys()] : [0];
}

/** Each host's status as formatStatus read it (none: it gave none); one line for the fleet, healthy when all are and run one release. */
export function fleetSummary(hosts: Array<{ release?: string; healthy: boolean } | undefined>): { text: string; healthy: boolean } {
  const releaseOf = (h: { release?: string } | undefined) => h?.release || 'unknown';
  const releases = [...new Set(hosts.map(releaseOf))];
  const unhealthy = hosts.flatMap((h, i) => (h?.healthy ? [] : [i + 1]));
  const release = releases.length === 1 ? `${hosts.length} hosts on ${releases[0]}` : `releases differ: ${hosts.map((h, i) => `host ${i + 1} ${releaseOf(h)}`).join(', ')}`;
  const health = unhealthy.length ? `NOT healthy: host ${unhealthy.join(', ')}` : 'all healthy';
  return { text: `fleet        ${release}; ${health}\n`, healthy: releases.length === 1 && unhealthy.length === 0 };
}

/**
 * The ssh words for a stack: its sshCommand with the known-hosts file replaced by `knownHostsFile` (which holds
 * the stack's sshKnownHosts), so the host is verified from the first connection, whatever ~/.ssh holds.
 */
export function sshWords(outputs: StackOutputs, knownHostsFile: string, opts: { identity?: string; tty?: boolean; address?: string } = {}): string[] {
  const words = outputs.sshCommand.split(' ');
  const i = words.findIndex((w) => w.startsWith('UserKnownHostsFile='));
  if (words[0] !== 'ssh' || i < 0 || !outputs.sshKnownHosts) throw new UsageError('the stack outputs have no sshCommand with a known-hosts file, or no sshKnownHosts: run `pulumi up` first');
  words[i] = `UserKnownHostsFile=${knownHostsFile}`;
  const login = words.pop()!;
  // Another host of the fleet: the same login at its address (every host's key is in the known-hosts file).
  const target = opts.address ? `${login.split('@')[0]}@${opts.address}` : login;
  return [...words, '-o', 'GlobalKnownHostsFile=/dev/null', ...(opts.identity ? ['-i', opts.identity, '-o', 'IdentitiesOnly=yes'] : []), ...(opts.tty ? ['-t'] : []), target];
}

/** `status`'s KEY=VALUE lines, as an operator reads them; `healthy` is false when /readyz is not 200 or a worker is not online. */
export function formatStatus(text: string, now = new Date()): { text: string; healthy: boolean; release: string } {
  const get = (key: string) => text.split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1) ?? '';
  const [readyBody, readyCode] = [get('readyz').replace(/ \d{3}$/, ''), /(\d{3})$/.exec(get('readyz'))?.[1] ?? '000'];
  const jlist = get('jlist');
  const workers: Pm2Process[] = jlist === 'down' || !jlist ? [] : parseJlist(jlist).filter((p) => p.name === HOST_PATHS.appName);
  const [usedPercent, freeMb] = get('disk').split(' ');
  const lines = [
    `release      ${get('release')}${get('previous') !== 'none' ? ` (rollback target ${get('previous')})` : ''}`,
    `workers      ${jlist === 'down' ? `PM2 is not running (systemctl status pm2-${HOST_PATHS.appUser})` : `${workers.filter((w) => w.pm2_env.status === 'online').length} of ${workers.length} online`}`,
    ...workers.map((w) => {
      const env = w.pm2_env as Pm2Process['pm2_env'] & { pm_uptime?: number };
      const memory = (w as unknown as { monit?: { memory?: number } }).monit?.memory ?? 0;
      const up = env.status === 'online' && env.pm_uptime ? ` up ${duration(now.getTime() - env.pm_uptime)}` : '';
      return `  worker ${w.pm_id}   pid ${w.pid}  ${env.status}  ${Math.round(memory / 1048576)} MB  ${env.restart_time} restarts${up}${traffic(env.axm_monitor)}`;
    }),
    `database     ${readyCode === '200' ? 'reachable' : 'NOT READY'} (/readyz ${readyCode}${readyCode === '200' ? '' : ` ${readyBody.trim()}`})`,
    ...(text.includes('\ncertificate=') || text.startsWith('certificate=') ? [`certificate  ${certificate(get('certificate'), now)}`] : []),
    `disk         / ${usedPercent} used, ${(Number(freeMb) / 1024).toFixed(1)} GB free`,
    `maintenance  ${get('maintenance')}`,
  ];
  const healthy = readyCode === '200' && workers.length > 0 && workers.every((w) => w.pm2_env.status === 'online');
  return { text: `${lines.join('\n')}\n`, healthy, release: get('release') };
}

/** A worker's own metrics (app/src/metrics.ts), as the last report to PM2 gave them; none from a worker that sent none yet. */
function traffic(monitor: unknown) {
  const m = (monitor ?? {}) as Record<string, { value?: unknown } | undefined>;
  const value = (name: string) => m[name]?.value;
  if (value(METRICS.requests) === undefined) return '';
  return `  ${value(METRICS.rate)} req/s  p95 ${value(METRICS.latency)} ms  ${value(METRICS.serverErrors)} 5xx  db ${value(METRICS.dbBusy)} busy ${value(METRICS.dbWaiting)} waiting`;
}

function certificate(notAfter: string, now: Date) {
  const end = new Date(notAfter);
  if (!notAfter || Number.isNaN(end.getTime())) return 'NONE served on 443';
  const days = Math.floor((end.getTime() - now.getTime()) / 86400000);
  return `expires ${end.toISOString().slice(0, 10)} (in ${days} days; Caddy renews it)`;
}

function duration(ms: number) {
  const s = Math.floor(ms / 1000);
  return s >= 86400 ? `${Math.floor(s / 86400)}d` : s >= 3600 ? `${Math.floor(s / 3600)}h` : s >= 60 ? `${Math.floor(s / 60)}m` : `${s}s`;
}
