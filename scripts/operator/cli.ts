/**
 * The operator command: `npm run cemetery -- -s <stack> <verb> [args]` from a
 * workstation, against the stack's host, with what `pulumi stack output` says
 * (or `--outputs <file>`, that command's JSON saved). The host is verified by
 * the key the stack pins (sshKnownHosts), never learned on first use; the
 * private key comes from your agent or `--identity <file>`.
 *
 * With several hosts (hostAddresses), status, releases, rollback and
 * maintenance run on every host in order (a change stops at the first host
 * where it fails); logs reads (or follows) every host's at once, each line
 * marked with its host; the other verbs go to the first host; --host <n> picks one.
 *
 * Exit codes: the host command's own (status: 0 healthy, 3 not), 2 usage,
 * 255 ssh could not connect or verify the host.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ALL_HOSTS_AT_ONCE_VERBS, FLEET_WIDE_VERBS, fleetSummary, formatStatus, hostAddresses, sshWords, targetHosts, UsageError, VERBS, type StackOutputs } from './commands';
import { streamLabelled } from './stream';

const verbLine = (verb: string) => `cemetery -s <stack> ${verb}${VERBS[verb].args ? ` ${VERBS[verb].args}` : ''}`;
const OPTIONS = `options: -s, --stack <name>   the Pulumi stack (its outputs: pulumi stack output --json)
         --outputs <file>     that command's JSON, saved (no Pulumi CLI needed)
         --identity <file>    the private key (default: your ssh agent)
         --host <n>           with several hosts: the n-th only (default: ${[...FLEET_WIDE_VERBS].join(', ')} run on each in order, ${[...ALL_HOSTS_AT_ONCE_VERBS].join(', ')} on each at once, the rest on the first)`;
const EXIT_CODES = 'exit codes: the host command\'s own (status: 0 healthy, 3 not), 2 usage, 255 ssh could not connect or verify the host';
export const USAGE = `usage: ${Object.keys(VERBS).map(verbLine).join('\n       ')}\n${OPTIONS}\n${EXIT_CODES}`;
const isHelp = (a: string) => a === '--help' || a === '-h' || a === 'help';

export type Invocation = { stack?: string; outputsFile?: string; identity?: string; host?: string; verb: string; args: string[] } | { help: string };

/** The options (anywhere before the verb), the verb and its arguments; `--help` anywhere: the usage of the verb, or all. */
export function parseArgs(argv: string[]): Invocation {
  const opts: Record<string, string> = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    const key = a === '-s' || a === '--stack' ? 'stack' : a === '--outputs' ? 'outputsFile' : a === '--identity' ? 'identity' : a === '--host' ? 'host' : undefined;
    if (!key) break;
    if (argv[i + 1] === undefined) throw new UsageError(`${a} needs a value`);
    opts[key] = argv[++i];
  }
  const [verb, ...args] = argv.slice(i);
  if (verb === undefined || isHelp(verb)) return { help: USAGE };
  if (!Object.hasOwn(VERBS, verb)) throw new UsageError(`unknown command: ${verb}`);
  if (verb !== 'exec' && args.some(isHelp)) return { help: `usage: ${verbLine(verb)}\n  ${VERBS[verb].about}\n${OPTIONS}\n${EXIT_CODES}` };
  if (!opts.stack && !opts.outputsFile) throw new UsageError('which stack? -s <stack> (or --outputs <file>)');
  return { ...opts, verb, args };
}

function stackOutputs(inv: { stack?: string; outputsFile?: string }): StackOutputs {
  if (inv.outputsFile) return JSON.parse(readFileSync(inv.outputsFile, 'utf8')) as StackOutputs;
  const r = spawnSync('pulumi', ['stack', 'output', '--json', '--stack', inv.stack!], { encoding: 'utf8' });
  if (r.error) throw new UsageError(`could not run pulumi (${(r.error as NodeJS.ErrnoException).code}): install the Pulumi CLI, or pass --outputs <file>`);
  if (r.status !== 0) throw new UsageError(`pulumi stack output --stack ${inv.stack} failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as StackOutputs;
}

export function main(argv: string[]): number | Promise<number> {
  const inv = parseArgs(argv);
  if ('help' in inv) {
    process.stdout.write(`${inv.help}\n`);
    return 0;
  }
  const outputs = stackOutputs(inv);
  const call = VERBS[inv.verb].build([...inv.args], outputs);
  const addresses = hostAddresses(outputs);
  const targets = targetHosts(inv.verb, addresses.length, inv.host);
  const fleet = addresses.length > 1;
  if (fleet && inv.host === undefined && targets.length === 1 && inv.verb !== 'token') {
    process.stderr.write(`cemetery: host 1 of ${addresses.length} (${addresses[0]}); --host <n> for another\n`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cemetery-ssh-'));
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  let streaming: Promise<number> | undefined;
  try {
    const knownHosts = path.join(dir, 'known_hosts');
    writeFileSync(knownHosts, `${outputs.sshKnownHosts.trim()}\n`, { mode: 0o600 });
    const run = (i: number, stdout: 'pipe' | 'inherit') => {
      const [ssh, ...words] = sshWords(outputs, knownHosts, { identity: inv.identity, tty: call.tty, address: fleet ? addresses[i] : undefined });
      const args = call.command ? [...words, call.command] : words;
      const input = call.script === 'status' ? readFileSync(path.join(__dirname, 'status.sh'), 'utf8') : undefined;
      return spawnSync(ssh, args, { input, encoding: 'utf8', stdio: [input === undefined ? 'inherit' : 'pipe', stdout, 'inherit'] });
    };
    const heading = (i: number) => (fleet ? `== host ${i + 1} of ${addresses.length} (${addresses[i]})\n` : '');

    // Every host's log at once (followed with -f until Ctrl-C), each line marked with its host.
    if (ALL_HOSTS_AT_ONCE_VERBS.has(inv.verb) && targets.length > 1) {
      streaming = streamLabelled(
        targets.map((i) => {
          const [ssh, ...words] = sshWords(outputs, knownHosts, { identity: inv.identity, address: addresses[i] });
          return { label: `[host ${i + 1}]`, command: ssh, args: [...words, call.command] };
        }),
      ).finally(cleanUp);
      return streaming;
    }

    if (call.script === 'status') {
      // Every host's status, a host that cannot be reached included; then the fleet's line.
      const seen = targets.map((i) => {
        const r = run(i, 'pipe');
        const status = r.status === 0 ? formatStatus(r.stdout) : undefined;
        const failed = `no status: exit ${r.status ?? 'none'}${r.status === 255 ? ' (ssh could not connect or verify the host)' : ''}\n`;
        process.stdout.write(`${heading(i)}${status ? status.text : failed}`);
        return status;
      });
      const summary = targets.length > 1 ? fleetSummary(seen) : { text: '', healthy: seen[0]?.healthy ?? false };
      process.stdout.write(summary.text);
      if (targets.length === 1 && !seen[0]) return 255;
      return summary.healthy ? 0 : 3;
    }
    for (const [n, i] of targets.entries()) {
      if (targets.length > 1) process.stdout.write(heading(i));
      const code = run(i, 'inherit').status ?? 255;
      if (code !== 0) {
        const untouched = targets.slice(n + 1).map((j) => j + 1);
        if (untouched.length) process.stderr.write(`cemetery: stopped at host ${i + 1} (exit ${code}); not run on host ${untouched.join(', ')}\n`);
        return code;
      }
    }
    return 0;
  } finally {
    if (!streaming) cleanUp();
  }
}

if (require.main === module) {
  try {
    void Promise.resolve(main(process.argv.slice(2))).then((code) => (process.exitCode = code));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`cemetery: ${err.message}\n(cemetery --help says more)\n`);
    process.exitCode = 2;
  }
}
