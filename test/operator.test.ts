/**
 * The operator command (scripts/operator): each verb's host command as an exact
 * string (the VM tier runs them against the provisioned host), the status
 * formatting, and the command itself against a real sshd: the stack's pinned
 * host key lets it in with no prompt, any other key is refused (exit 255), the
 * host command's exit code comes back.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { knownHostsLine, sshCommandWords } from '../infra/ssh-access';
import { METRICS } from '../app/src/metrics';
import { fleetSummary, formatStatus, hostAddresses, sshWords, targetHosts, VERBS, type StackOutputs } from '../scripts/operator/commands';
import type { Pm2Process } from '../scripts/lib/pm2-list.cjs';
import { ROOT } from './support/db';
import { SSHD, startSshd, type LoopbackSshd } from './support/sshd';
import { tempDir } from './support/temp-dir';

const outputs: StackOutputs = {
  sshCommand: 'ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%d/.ssh/cemetery-prod.known_hosts -p 2222 admin@203.0.113.7',
  sshKnownHosts: '[203.0.113.7]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE',
  appUrl: 'https://cemetery.example.org',
  databaseEndpoint: 'localhost:5432',
};
const host = (verb: string, ...args: string[]) => VERBS[verb].build(args, outputs);

describe('what each verb runs on the host', () => {
  test.each([
    [['status'], { command: 'sudo bash -s -- cemetery /srv/cemetery-backend /var/lib/cemetery-backend/maintenance /opt/node/bin cemetery.example.org', script: 'status' }],
    [['logs'], { command: 'sudo tail -n 100 /srv/cemetery-backend/logs/out.log' }],
    [['logs', '-f', '--err', '-n', '20'], { command: 'sudo tail -n 20 -F /srv/cemetery-backend/logs/err.log' }],
    [['releases'], { command: 'sudo cemetery-release list && echo && sudo cemetery-audit --show 20' }],
    [['rollback'], { command: 'sudo cemetery-release rollback' }],
    [['rollback', 'r-0123456789ab'], { command: 'sudo cemetery-release rollback r-0123456789ab' }],
    [['exec', 'df', '-h', "it's /"], { command: "df -h 'it'\\''s /'" }],
    [['shell'], { command: '', tty: true }],
    [['psql'], { command: 'sudo -u postgres psql -d cemetery', tty: true }],
    [['token', 'create', '--name', 'the office'], { command: "sudo cemetery-admin token create --name 'the office'" }],
    [['token', 'list'], { command: 'sudo cemetery-admin token list' }],
    [['maintenance', 'on'], { command: 'sudo cemetery-maintenance on' }],
    [['maintenance', 'status'], { command: 'sudo cemetery-maintenance status' }],
    [['db', 'info'], { command: 'sudo cemetery-db info' }],
    [['db', 'backup', 'full'], { command: 'sudo cemetery-db backup full' }],
    [['db', 'restore', '--time', '2026-11-30T03:00:00Z'], { command: 'sudo cemetery-db restore --time 2026-11-30T03:00:00Z' }],
    [['db', 'restore', '--latest'], { command: 'sudo cemetery-db restore --latest' }],
  ])('%j', ([verb, ...args], call) => {
    expect(host(verb, ...args)).toEqual(call);
  });

  test('a plain-HTTP stack: status asks for no certificate', () => {
    expect(VERBS.status.build([], { ...outputs, appUrl: 'http://203.0.113.7' }).command).toBe('sudo bash -s -- cemetery /srv/cemetery-backend /var/lib/cemetery-backend/maintenance /opt/node/bin');
  });

  test.each([
    [['logs', '-n', '0'], '-n must be a number of lines, got "0"'],
    [['logs', '-n', '5;reboot'], '-n must be a number of lines, got "5;reboot"'],
    [['logs', '--all'], 'unexpected: --all'],
    [['rollback', '../etc'], 'rollback takes at most a release id (r-<12 hex>: see `releases`)'],
    [['exec'], 'exec needs a command'],
    [['token', 'drop'], 'token needs create, list or revoke'],
    [['maintenance'], 'maintenance needs on, off or status'],
    [['status', 'now'], 'unexpected: now'],
    [['db', 'restore'], 'db needs info, backup full|incr|diff, or restore --latest | --time <UTC time such as 2026-11-30T03:00:00Z>'],
    [['db', 'restore', '--time', '2026-11-30 03:00'], 'db needs info'],
    [['db', 'restore', '--time', '2026-11-30T03:00:00Z;reboot'], 'db needs info'],
    [['db', 'backup', 'all'], 'db needs info'],
  ])('%j is refused: %s', ([verb, ...args], message) => {
    expect(() => host(verb, ...args)).toThrow(message);
  });

  test('db with RDS says whose backups those are', () => {
    expect(() => VERBS.db.build(['info'], { ...outputs, databaseEndpoint: 'cemetery-prod.abc.eu-west-1.rds.amazonaws.com:5432' })).toThrow(
      "the database is cemetery-prod.abc.eu-west-1.rds.amazonaws.com:5432 (RDS, or databaseMode external), not on the host: its backups are RDS's, or whoever runs it (README: Restoring the database)",
    );
  });

  test('psql with RDS says why not, naming the endpoint', () => {
    expect(() => VERBS.psql.build([], { ...outputs, databaseEndpoint: 'cemetery-prod.abc.eu-west-1.rds.amazonaws.com:5432' })).toThrow(
      'the database is cemetery-prod.abc.eu-west-1.rds.amazonaws.com:5432 (RDS, or databaseMode external), not on the host: the host has no psql for it',
    );
  });
});

test('ssh words: the stack sshCommand, with the known-hosts file that holds its sshKnownHosts, no global file, the identity only if given', () => {
  expect(sshWords(outputs, '/tmp/k')).toEqual(['ssh', '-o', 'StrictHostKeyChecking=yes', '-o', 'UserKnownHostsFile=/tmp/k', '-p', '2222', '-o', 'GlobalKnownHostsFile=/dev/null', 'admin@203.0.113.7']);
  expect(sshWords(outputs, '/tmp/k', { identity: '/keys/deploy', tty: true }).slice(-6)).toEqual(['-i', '/keys/deploy', '-o', 'IdentitiesOnly=yes', '-t', 'admin@203.0.113.7']);
  expect(() => sshWords({ ...outputs, sshKnownHosts: '' }, '/tmp/k')).toThrow('run `pulumi up` first');
});

describe('status as an operator reads it', () => {
  // A process list recorded on the VM (npm run test:e2e writes it).
  const jlist = readFileSync(path.join(ROOT, 'test', 'fixtures', 'pm2-jlist-host.txt'), 'utf8').replace(/\n/g, '');
  const lines = (over: Record<string, string> = {}) =>
    Object.entries({ release: 'r-0123456789ab', previous: 'r-ba9876543210', maintenance: 'off', readyz: '{"status":"ready"} 200', certificate: 'Feb 27 10:00:00 2027 GMT', disk: '23% 4200', jlist, ...over })
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');

  test('healthy: the release and its rollback target, each worker, the database, the certificate, disk, maintenance', () => {
    const { text, healthy } = formatStatus(lines(), new Date('2026-11-29T12:00:00Z'));
    expect(healthy).toBe(true);
    expect(text).toMatch(/^release {6}r-0123456789ab \(rollback target r-ba9876543210\)\nworkers {6}2 of 2 online\n {2}worker \d+ {3}pid \d+ {2}online {2}\d+ MB {2}\d+ restarts up \S+\n {2}worker \d+ {3}pid \d+ {2}online {2}\d+ MB {2}\d+ restarts up \S+\ndatabase {5}reachable \(\/readyz 200\)\ncertificate {2}expires 2027-02-27 \(in 89 days; Caddy renews it\)\ndisk {9}\/ 23% used, 4\.1 GB free\nmaintenance {2}off\n$/);
  });

  test("each worker's traffic, from the metrics it reports to PM2: rate, p95 latency, 5xx answers, the database pool", () => {
    const monitor = { [METRICS.requests]: { value: 1200 }, [METRICS.rate]: { value: '12.5' }, [METRICS.latency]: { value: 34.32, unit: 'ms' }, [METRICS.serverErrors]: { value: 2 }, [METRICS.dbBusy]: { value: 1 }, [METRICS.dbWaiting]: { value: 0 } };
    const reporting = JSON.stringify(JSON.parse(jlist).map((p: Pm2Process) => (p.name === 'cemetery-backend' ? { ...p, pm2_env: { ...p.pm2_env, axm_monitor: monitor } } : p)));
    const workerLines = formatStatus(lines({ jlist: reporting })).text.split('\n').filter((l) => l.startsWith('  worker '));
    expect(workerLines).toHaveLength(2);
    for (const line of workerLines) expect(line).toMatch(/ restarts up \S+ {2}12\.5 req\/s {2}p95 34\.32 ms {2}2 5xx {2}db 1 busy 0 waiting$/);
  });

  test('not healthy: the database not ready, or PM2 down; no certificate served', () => {
    const notReady = formatStatus(lines({ readyz: '{"status":"not ready","reason":"database unreachable"} 503', certificate: '' }));
    expect(notReady.healthy).toBe(false);
    expect(notReady.text).toContain('database     NOT READY (/readyz 503 {"status":"not ready","reason":"database unreachable"})');
    expect(notReady.text).toContain('certificate  NONE served on 443');
    const down = formatStatus(lines({ jlist: 'down' }));
    expect(down.healthy).toBe(false);
    expect(down.text).toContain('workers      PM2 is not running (systemctl status pm2-cemetery)');
  });
});

describe('several hosts: which the verbs reach, and the fleet in one line', () => {
  const fleet = { ...outputs, hostAddresses: ['203.0.113.7', '203.0.113.8'] };

  test('status, releases, rollback and maintenance run on every host in order; the rest on the first; --host picks one', () => {
    expect(['status', 'releases', 'rollback', 'maintenance'].map((v) => targetHosts(v, 2))).toEqual([[0, 1], [0, 1], [0, 1], [0, 1]]);
    expect(['exec', 'shell', 'psql', 'token'].map((v) => targetHosts(v, 2))).toEqual([[0], [0], [0], [0]]);
    // Every host's log (at once, each line marked: streamLabelled).
    expect(targetHosts('logs', 2)).toEqual([0, 1]);
    expect(targetHosts('rollback', 2, '2')).toEqual([1]);
    expect(targetHosts('status', 1)).toEqual([0]);
    for (const bad of ['0', '3', 'two', '1;reboot', '']) expect(() => targetHosts('logs', 2, bad)).toThrow(`--host must be 1 to 2 (the stack's hostAddresses, in order), got "${bad}"`);
  });

  test("the hosts are the stack's hostAddresses; a stack from before fleets has its sshCommand's", () => {
    expect(hostAddresses(fleet)).toEqual(['203.0.113.7', '203.0.113.8']);
    expect(hostAddresses(outputs)).toEqual(['203.0.113.7']);
  });

  test("another host: the same login and port at its address, checked against the stack's known hosts", () => {
    const words = sshWords(fleet, '/tmp/k', { address: '203.0.113.8' });
    expect(words.slice(-3)).toEqual(['-o', 'GlobalKnownHostsFile=/dev/null', 'admin@203.0.113.8']);
    expect(words).toContain('UserKnownHostsFile=/tmp/k');
    expect(words.join(' ')).toContain('-p 2222');
  });

  test('the fleet line: one release and every host healthy, or what differs', () => {
    const ok = { release: 'r-0123456789ab', healthy: true };
    expect(fleetSummary([ok, ok])).toEqual({ text: 'fleet        2 hosts on r-0123456789ab; all healthy\n', healthy: true });
    expect(fleetSummary([ok, { release: 'r-ba9876543210', healthy: true }])).toEqual({
      text: 'fleet        releases differ: host 1 r-0123456789ab, host 2 r-ba9876543210; all healthy\n',
      healthy: false,
    });
    expect(fleetSummary([ok, undefined])).toEqual({ text: 'fleet        releases differ: host 1 r-0123456789ab, host 2 unknown; NOT healthy: host 2\n', healthy: false });
    expect(fleetSummary([ok, { ...ok, healthy: false }]).text).toBe('fleet        2 hosts on r-0123456789ab; NOT healthy: host 2\n');
  });
});

const haveSshd = existsSync(SSHD);
if (!haveSshd && process.env.CI) throw new Error(`${SSHD} is required in CI (.ci/run installs openssh-server)`);
(haveSshd ? describe : describe.skip)('npm run cemetery against a real sshd', () => {
  let sshd: LoopbackSshd;
  let dir: string;
  beforeAll(async () => {
    sshd = await startSshd();
    dir = tempDir('operator');
    writeFileSync(path.join(dir, 'key'), sshd.privateKey, { mode: 0o600 });
  });
  afterAll(async () => sshd?.stop());

  /** The command as an operator runs it, with the stack's outputs saved to a file. */
  const cemetery = (hostKey: string, ...argv: string[]) => {
    const file = path.join(dir, `outputs-${Math.random().toString(36).slice(2)}.json`);
    const sshCommand = sshCommandWords({ user: sshd.user, host: '127.0.0.1', port: sshd.port, knownHosts: '%d/.ssh/cemetery-test.known_hosts' }).join(' ');
    writeFileSync(file, JSON.stringify({ sshCommand, sshKnownHosts: knownHostsLine('127.0.0.1', sshd.port, hostKey) }));
    const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'scripts', 'operator', 'cli.ts'), '--outputs', file, '--identity', path.join(dir, 'key'), ...argv], {
      encoding: 'utf8',
      timeout: 60000,
      env: { ...process.env, SSH_AUTH_SOCK: '' },
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  test('the pinned key: in with no prompt; the words arrive as given; the host command\'s exit code comes back', () => {
    expect(cemetery(sshd.hostKey, 'exec', 'printf', '%s|', 'two words', "it's")).toMatchObject({ status: 0, stdout: "two words|it's|" });
    expect(cemetery(sshd.hostKey, 'exec', 'sh', '-c', 'exit 7').status).toBe(7);
  });

  test('a host with another key is refused (255), nothing runs', () => {
    const other = path.join(dir, 'other');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other], { stdio: 'ignore' });
    const marker = path.join(sshd.dir, 'ran');
    const r = cemetery(readFileSync(`${other}.pub`, 'utf8'), 'exec', 'touch', marker);
    expect(r.status).toBe(255);
    expect(r.stderr).toContain('Host key verification failed');
    expect(existsSync(marker)).toBe(false);
  });
});

(haveSshd ? describe : describe.skip)('npm run cemetery against two hosts (two real sshds, each with its own key, at 127.0.0.1 and 127.0.0.2)', () => {
  let hosts: LoopbackSshd[];
  let dir: string;
  beforeAll(async () => {
    const first = await startSshd();
    hosts = [first, await startSshd({ address: '127.0.0.2', port: first.port })];
    dir = tempDir('operator-fleet');
    // One deploy key for the stack: the second host authorizes the first's client key.
    const authorizedKeys = (h: LoopbackSshd) => path.join(path.dirname(h.dir), 'authorized_keys');
    writeFileSync(authorizedKeys(hosts[1]), readFileSync(authorizedKeys(hosts[0])));
    writeFileSync(path.join(dir, 'key'), hosts[0].privateKey, { mode: 0o600 });
  });
  afterAll(async () => Promise.all((hosts ?? []).map((h) => h.stop())));

  const cemetery = (knownKeys: string[], ...argv: string[]) => {
    const file = path.join(dir, `outputs-${Math.random().toString(36).slice(2)}.json`);
    const addresses = ['127.0.0.1', '127.0.0.2'];
    const sshCommand = sshCommandWords({ user: hosts[0].user, host: addresses[0], port: hosts[0].port, knownHosts: '%d/.ssh/cemetery-test.known_hosts' }).join(' ');
    const sshKnownHosts = addresses.map((a, i) => knownHostsLine(a, hosts[0].port, knownKeys[i])).join('\n');
    writeFileSync(file, JSON.stringify({ sshCommand, sshKnownHosts, hostAddresses: addresses }));
    const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'scripts', 'operator', 'cli.ts'), '--outputs', file, '--identity', path.join(dir, 'key'), ...argv], {
      encoding: 'utf8',
      timeout: 60000,
      env: { ...process.env, SSH_AUTH_SOCK: '' },
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  // The address the connection reached, as the host's sshd saw it.
  const serverAddress = ['exec', 'sh', '-c', 'echo "${SSH_CONNECTION}" | cut -d" " -f3'];

  test('--host 2 reaches the second host, checked against its own key; without --host, the first, saying so', () => {
    const keys = hosts.map((h) => h.hostKey);
    expect(cemetery(keys, '--host', '2', ...serverAddress)).toMatchObject({ status: 0, stdout: '127.0.0.2\n' });
    const first = cemetery(keys, ...serverAddress);
    expect(first).toMatchObject({ status: 0, stdout: '127.0.0.1\n' });
    expect(first.stderr).toContain('cemetery: host 1 of 2 (127.0.0.1); --host <n> for another');
  });

  test("the second host presenting the first host's key is refused (255): each host is pinned to its own", () => {
    const r = cemetery([hosts[0].hostKey, hosts[0].hostKey], '--host', '2', ...serverAddress);
    expect(r.status).toBe(255);
    expect(r.stderr).toContain('Host key verification failed');
  });

  test('a change for every host stops at the first host where it fails, and says which were not touched', () => {
    // No release tool on these hosts: releases fails on host 1, and host 2 is never asked.
    const r = cemetery(hosts.map((h) => h.hostKey), 'releases');
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain('== host 1 of 2 (127.0.0.1)');
    expect(r.stdout).not.toContain('== host 2');
    expect(r.stderr).toContain(`cemetery: stopped at host 1 (exit ${r.status}); not run on host 2`);
  });

  test("status asks every host, even when one cannot be reached, and ends with the fleet's line (exit 3)", () => {
    const r = cemetery([hosts[0].hostKey, hosts[0].hostKey], 'status');
    expect(r.status).toBe(3);
    expect(r.stdout).toContain('== host 2 of 2 (127.0.0.2)\nno status: exit 255 (ssh could not connect or verify the host)');
    expect(r.stdout).toMatch(/fleet {8}.*NOT healthy: host (1, )?2\n$/);
  });
});

test("a fleet's logs: every host's lines as they come, each marked with its host; the first failure's exit code", async () => {
  const { streamLabelled } = await import('../scripts/operator/stream');
  const { Writable } = await import('node:stream');
  // Each command prints its next line only once the other's last one has arrived here: the lines must be passed on
  // while the commands still run, whatever the machine's speed.
  const seen = tempDir('fleet-logs');
  const lines: string[] = [];
  const out = new Writable({
    write: (chunk, _enc, done) => {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        lines.push(line);
        writeFileSync(path.join(seen, line.split(' ').pop()!), '');
      }
      done();
    },
  });
  const waitFor = (name: string) => `while [ ! -e ${seen}/${name} ]; do sleep 0.05; done`;
  const code = await streamLabelled(
    [
      { label: '[host 1]', command: 'sh', args: ['-c', `echo a1; ${waitFor('b1')}; echo a2`] },
      { label: '[host 2]', command: 'sh', args: ['-c', `${waitFor('a1')}; echo b1; ${waitFor('a2')}; echo b2; exit 3`] },
    ],
    out,
  );
  expect(lines).toEqual(['[host 1] a1', '[host 2] b1', '[host 1] a2', '[host 2] b2']);
  expect(code).toBe(3);
  expect(await streamLabelled([{ label: '[host 1]', command: '/nonexistent/ssh', args: [] }], out)).toBe(255);
});
