/**
 * The provisioning that `pulumi up` would send, run for real on a fresh
 * Debian 13 VM (qemu, software emulation), through the stand-in for the
 * engine and @pulumi/command (test/standin): the `local` stack's program under
 * mocks gives the resources; successive `up`s run only what changed, as the
 * engine would. Then the host is checked, changed (a host script, the app
 * code), re-provisioned, rebooted, and checked again. Timings go to the
 * console and to .bench/e2e-<date>.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseStackConfig } from '../../infra/config';
import { APP_DIST_DIR, HOST_LAYOUT, HOST_SCRIPTS_DIR, provisioningLayout, releaseId } from '../../infra/host-steps';
import { parseJlist } from '../../scripts/lib/pm2.cjs';
import { freePort } from '../../scripts/lib/ports.cjs';
import { sleep, waitUntil } from '../../scripts/lib/wait.cjs';
import { Engine, succeeded, type Step } from '../standin/engine';
import { ROOT } from '../support/db';
import { getFresh } from '../support/http';
import { startLoad } from '../support/load';
import { MOCK_PASSWORD, runProgram, stackFiles } from '../support/pulumi-mocks';
import { startNodeMirror } from './node-mirror';
import { ssh, type SshTarget } from './vm-ssh';

jest.setTimeout(60 * 60 * 1000);

const VM = path.join(ROOT, 'scripts', 'local-vm.sh');
const CACHE = process.env.VM_CACHE ?? path.join(os.homedir(), '.cache', 'cemetery-backend', 'vm');
const STATE = mkdtempSync(path.join(os.tmpdir(), 'cemetery-vm-'));
const { appUser, appHome } = HOST_LAYOUT;
const report: Record<string, unknown> = { date: new Date().toISOString() };
const seconds = (since: number) => Math.round((Date.now() - since) / 100) / 10;

let target: SshTarget;
let appPort: number;
let vmEnv: NodeJS.ProcessEnv;
let mirror: Awaited<ReturnType<typeof startNodeMirror>>;
let config: Record<string, string>;
let stackConfig: ReturnType<typeof parseStackConfig>;
/** Later tests need a provisioned host; without one they stop at once instead of timing out. */
let provisioned = false;
const requireProvisioned = () => {
  if (!provisioned) throw new Error('the VM was not provisioned (see the first failure)');
};

const vm = (...args: string[]) => execFileSync('bash', [VM, ...args], { env: vmEnv, stdio: 'inherit' });
const root = (command: string) => ssh(target, `sudo bash -c ${JSON.stringify(command)}`);
const asApp = (command: string) => root(`sudo -u ${appUser} -H env PATH=/opt/node/bin:/usr/bin:/bin bash -c ${JSON.stringify(command)}`);

const pm2List = async () => parseJlist(await asApp('pm2 jlist'));
const workers = async () => (await pm2List()).filter((p) => p.name === HOST_LAYOUT.appName && p.pm2_env.status === 'online');

beforeAll(async () => {
  mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
  const sshPort = await freePort();
  appPort = await freePort();
  vmEnv = { ...process.env, VM_CACHE: CACHE, VM_STATE: STATE, VM_SSH_PORT: String(sshPort), VM_APP_PORT: String(appPort) };

  let t = Date.now();
  vm('build');
  report.imageSeconds = seconds(t);
  t = Date.now();
  vm('start');
  report.bootToSshSeconds = seconds(t);
  target = { host: '127.0.0.1', port: sshPort, user: 'admin', keyFile: path.join(CACHE, 'id_ed25519') };

  // Test-only plumbing: this machine's HTTPS goes through an intercepting proxy.
  // A normal host does not need this; the product never does it.
  t = Date.now();
  for (const file of readdirSync('/usr/local/share/ca-certificates').filter((f) => f.endsWith('.crt'))) {
    await ssh(target, `sudo tee /usr/local/share/ca-certificates/${file} >/dev/null`, readFileSync(path.join('/usr/local/share/ca-certificates', file), 'utf8'));
  }
  // Node.js (npm, PM2) carries its own CA list: point it at the system's, through
  // SSH sessions (/etc/environment) and sudo (env_keep).
  await root(
    'update-ca-certificates >/dev/null' +
      ' && echo NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt >> /etc/environment' +
      ' && echo \'Defaults env_keep += "NODE_EXTRA_CA_CERTS"\' > /etc/sudoers.d/test-ca && chmod 0440 /etc/sudoers.d/test-ca',
  );
  report.caPlumbingSeconds = seconds(t);

  mirror = await startNodeMirror(path.join(CACHE, 'node-mirror'), stackFiles().local['cemetery-backend:nodeVersion'] ?? '24.21.0');

  // The `local` stack as a user would run it, pointed at this VM and the test mirror.
  config = {
    ...stackFiles().local,
    'cemetery-backend:sshPort': String(sshPort),
    'cemetery-backend:nodeDistMirror': mirror.guestUrl,
    'cemetery-backend:sshPrivateKey': readFileSync(target.keyFile, 'utf8'),
    // Few enough that the log flood test can see old rotations go.
    'cemetery-backend:logrotateRetain': '3',
  };
  stackConfig = parseStackConfig(
    Object.fromEntries(Object.entries(config).map(([k, v]) => [k.replace('cemetery-backend:', ''), v])),
    'local',
    undefined,
  );
}, 30 * 60 * 1000);

afterAll(async () => {
  if (vmEnv) spawnSync('bash', [VM, 'stop'], { env: vmEnv, stdio: 'inherit' });
  // The scenarios built other releases into app/dist: build the checked-out sources again.
  spawnSync('node', [path.join(ROOT, 'scripts', 'build-app.mjs')], { stdio: 'inherit' });
  await mirror?.close();
  mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
  const file = path.join(ROOT, '.bench', `e2e-${String(report.date).replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`e2e figures:\n${JSON.stringify(report, null, 2)}`);
});

async function checkHost() {
  const nofile = String(stackConfig.nofileLimit);
  // limits.d and the systemd drop-in
  expect(await root(`cat /etc/security/limits.d/90-cemetery-backend.conf`)).toContain(`${appUser} hard nofile ${nofile}`);
  expect(await root(`cat /etc/systemd/system/pm2-${appUser}.service.d/10-nofile.conf`)).toContain(`LimitNOFILE=${nofile}`);
  // a login shell of the app user
  expect((await root(`su - ${appUser} -c 'ulimit -n'`)).trim()).toBe(nofile);
  // the PM2 daemon systemd started, and every worker
  const daemonPid = (await root(`cat ${appHome}/.pm2/pm2.pid`)).trim();
  expect((await root(`systemctl show -p MainPID --value pm2-${appUser}`)).trim()).toBe(daemonPid);
  const running = await workers();
  for (const pid of [daemonPid, ...running.map((w) => String(w.pid))]) {
    expect(await root(`grep 'Max open files' /proc/${pid}/limits`)).toMatch(new RegExp(`Max open files\\s+${nofile}\\s+${nofile}\\s+files`));
  }
  // Node.js, PM2, pm2-logrotate
  expect((await ssh(target, 'node --version')).trim()).toBe(`v${stackConfig.nodeVersion}`);
  const logrotate = JSON.parse(await root(`cat ${appHome}/.pm2/module_conf.json`))['pm2-logrotate'];
  expect(logrotate).toMatchObject({
    max_size: stackConfig.logrotateMaxSize,
    retain: String(stackConfig.logrotateRetain),
    compress: String(stackConfig.logrotateCompress),
    rotateInterval: stackConfig.logrotateRotateInterval,
  });
  expect((await root(`systemctl is-enabled pm2-${appUser}`)).trim()).toBe('enabled');
  // one worker per vCPU, serving through the forwarded port
  const vcpus = Number((await ssh(target, 'nproc')).trim());
  expect(running).toHaveLength(vcpus);
  expect((await getFresh(`http://127.0.0.1:${appPort}/readyz`)).status).toBe(200);
  return running;
}

const engine = new Engine((line) => process.stdout.write(`${line}\n`));
const short = (name: string) => name.replace('cemetery-dev-', '');
const ran = (steps: Step[]) => steps.map((s) => `${s.op} ${short(s.name)}`);

/** `pulumi up -s local` (with `--replace` for `replace`): the program under mocks, then the stand-in engine. */
async function up(label: string, opts: { replace?: 'all' } = {}): Promise<Step[]> {
  const program = await runProgram('local', config);
  const remote = (await Engine.plan(program)).map((r) => r);
  for (const r of remote) {
    const c = r.inputs.connection;
    if (c.user !== target.user || c.port !== target.port || c.host !== target.host) throw new Error(`${r.name} connects to ${c.user}@${c.host}:${c.port}, not the test VM`);
  }
  const started = Date.now();
  const steps = succeeded(await engine.up(program, { replace: opts.replace === 'all' ? remote.map((r) => r.name) : undefined }));
  (report.ups as unknown[]).push({ label, totalSeconds: seconds(started), steps: steps.map((s) => ({ ...s, name: short(s.name) })) });
  process.stdout.write(`up (${label}): ${ran(steps).join(', ') || 'nothing ran'} in ${seconds(started)} s\n`);
  return steps;
}
report.ups = [];

/** Changes a repository file for the length of `fn`, as a user's edit before `pulumi up` would. */
async function withEdit<T>(file: string, edit: (text: string) => string, fn: () => Promise<T>): Promise<T> {
  const original = readFileSync(file);
  writeFileSync(file, edit(original.toString('utf8')));
  try {
    return await fn();
  } finally {
    writeFileSync(file, original);
  }
}

test('the first up creates every remote resource the program registers, in dependency order', async () => {
  const started = Date.now();
  const steps = await up('first');
  report.firstRunSeconds = seconds(started);
  provisioned = true;
  // Each after its dependencies (Engine.plan); their relative order otherwise is the engine's to choose.
  expect(ran(steps).sort()).toEqual(
    ['host-scripts', 'release-bundle', 'release-process-file', 'wait-for-host', 'system-limits', 'app-user', 'nodejs', 'pm2', 'pm2-logrotate', 'postgres', 'release']
      .map((n) => `create ${n}`)
      .sort(),
  );
  // The install path went through the mirror's checksum file.
  expect(mirror.requests).toEqual(expect.arrayContaining([`/v${stackConfig.nodeVersion}/SHASUMS256.txt`, `/v${stackConfig.nodeVersion}/node-v${stackConfig.nodeVersion}-linux-x64.tar.gz`]));
});

test('the host has the limits, Node.js, PM2 under systemd, logrotate, and serves', async () => {
  requireProvisioned();
  await checkHost();
});

test('an up with no change runs nothing', async () => {
  requireProvisioned();
  expect(ran(await up('no change'))).toEqual([]);
});

test('a changed host script runs only its own step (and the scripts copy)', async () => {
  requireProvisioned();
  const marker = `# e2e edit ${Date.now()}`;
  const { scriptsDir } = provisioningLayout(target.user, releaseId());
  const expected = ['update host-scripts', 'replace system-limits', 'delete system-limits'];
  await withEdit(path.join(HOST_SCRIPTS_DIR, 'system-limits.sh'), (text) => `${text}${marker}\n`, async () => {
    expect(ran(await up('system-limits.sh edited'))).toEqual(expected);
    expect(await ssh(target, `tail -n 1 ${scriptsDir}/system-limits.sh`)).toBe(`${marker}\n`);
  });
  // Back to the committed script: the same two run again, and nothing else.
  expect(ran(await up('system-limits.sh restored'))).toEqual(expected);
  await checkHost();
});

test('a code-only change runs only the release resources', async () => {
  requireProvisioned();
  const before = releaseId();
  const expected = ['update release-bundle', 'update release-process-file', 'update release'];
  await withEdit(path.join(APP_DIST_DIR, 'server.js'), (text) => `${text}\n// e2e code change ${Date.now()}\n`, async () => {
    const changed = releaseId();
    expect(changed).not.toBe(before);
    expect(ran(await up('code changed'))).toEqual(expected);
    expect((await root(`readlink ${appHome}/current`)).trim()).toBe(`${appHome}/releases/${changed}`);
    expect((await getFresh(`http://127.0.0.1:${appPort}/readyz`)).status).toBe(200);
  });
  expect(ran(await up('code restored'))).toEqual(expected);
  expect((await root(`readlink ${appHome}/current`)).trim()).toBe(`${appHome}/releases/${before}`);
});

test('every step replaced (pulumi up --replace) changes nothing and restarts nothing', async () => {
  requireProvisioned();
  const before = await pm2List();
  const daemon = (await root(`cat ${appHome}/.pm2/pm2.pid`)).trim();
  const steps = await up('every resource replaced', { replace: 'all' });
  expect(steps.filter((s) => s.op === 'replace')).toHaveLength(11);
  const after = await pm2List();
  expect(after.map((p) => [p.name, p.pid, p.pm2_env.restart_time])).toEqual(before.map((p) => [p.name, p.pid, p.pm2_env.restart_time]));
  expect((await root(`cat ${appHome}/.pm2/pm2.pid`)).trim()).toBe(daemon);
});

// ---------------------------------------------------------------------------
// Releases: each a real build of changed sources, deployed by successive ups.

type Variant = { mark: string; throwOnBoot?: boolean; migration?: boolean };
const MIGRATION = path.join(ROOT, 'app', 'migrations', '1900000000000_e2e-marker.sql');
const MAIN = path.join(ROOT, 'app', 'src', 'main.ts');

/** Builds app/dist from the sources changed as `v` says (then puts the sources back): a release as CI would build it. */
function buildRelease(v: Variant): { id: string; build: string } {
  const main = readFileSync(MAIN, 'utf8');
  try {
    let changed = `${main}\n// e2e release ${v.mark}\n`;
    if (v.throwOnBoot) changed = changed.replace("import pino from 'pino';", "import pino from 'pino';\nthrow new Error('e2e: this release cannot start');");
    writeFileSync(MAIN, changed);
    if (v.migration) writeFileSync(MIGRATION, "CREATE TABLE e2e_marker (id serial PRIMARY KEY, note text NOT NULL);\nINSERT INTO e2e_marker (note) VALUES ('applied');\n");
    execFileSync('node', [path.join(ROOT, 'scripts', 'build-app.mjs')], { stdio: 'ignore' });
  } finally {
    writeFileSync(MAIN, main);
    rmSync(MIGRATION, { force: true });
  }
  return { id: releaseId(), build: readFileSync(path.join(APP_DIST_DIR, 'BUILD_ID'), 'utf8').trim() };
}

/** Every worker (by pid, as PM2 lists them) answering /version through the forwarded port, and where its code was loaded from. */
async function workersServing() {
  const pids = new Set((await workers()).map((w) => w.pid));
  const seen = new Map<number, { release: string; build: string }>();
  await waitUntil('an answer from every worker', async () => {
    const v = (await (await fetch(`http://127.0.0.1:${appPort}/version`, { headers: { connection: 'close' } })).json()) as { pid: number; release: string; build: string };
    seen.set(v.pid, { release: v.release, build: v.build });
    return [...pids].every((p) => seen.has(p));
  }, { timeoutMs: 30000, intervalMs: 20 });
  const cwd = async (pid: number) => (await root(`readlink -f /proc/${pid}/cwd`)).trim();
  return Promise.all([...pids].map(async (pid) => ({ pid, ...seen.get(pid)!, cwd: await cwd(pid) })));
}

async function expectServing(r: { id: string; build: string }) {
  const all = await workersServing();
  expect(all).toHaveLength(stackConfig.pm2Instances === 'max' ? Number((await ssh(target, 'nproc')).trim()) : Number(stackConfig.pm2Instances));
  for (const w of all) expect(w).toEqual({ pid: w.pid, release: r.id, build: r.build, cwd: `${appHome}/releases/${r.id}` });
}

const live = async () => (await root(`readlink ${appHome}/current`)).trim().split('/').pop();
const apiUrl = () => `http://127.0.0.1:${appPort}/api/sections?limit=5`;
const releases: Record<string, { id: string; build: string }> = {};

describe('releases', () => {
  test('v2 deployed under load: no failed request, and every worker runs v2 code', async () => {
    requireProvisioned();
    releases.v2 = buildRelease({ mark: 'v2' });
    const load = startLoad(apiUrl());
    const started = Date.now();
    expect(ran(await up('v2 under load'))).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    const deploySeconds = seconds(started);
    const result = await load.stop(5000);
    report.deployV2 = { deploySeconds, load: result };
    // Recorded for the release tool's unit tests (test/fixtures/pm2-jlist-host.txt).
    writeFileSync(path.join(ROOT, '.bench', 'pm2-jlist-host.txt'), await asApp('pm2 jlist'));
    expect(result.requests).toBeGreaterThanOrEqual(5000);
    expect(result.failed).toBe(0);
    await expectServing(releases.v2);
  });

  test('after a reboot v2 serves within 60 s of SSH answering, with the same limits', async () => {
    requireProvisioned();
    const before = Date.now();
    await ssh(target, 'sudo systemctl reboot').catch(() => undefined);
    await sleep(5000);
    vm('wait-ssh', '300');
    const sshBack = Date.now();
    await waitUntil('/readyz after reboot', async () => (await getFresh(`http://127.0.0.1:${appPort}/readyz`).catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 60000, intervalMs: 500 });
    report.rebootV2 = { rebootToSshSeconds: Math.round((sshBack - before) / 100) / 10, sshToServingSeconds: seconds(sshBack) };
    await checkHost();
    await expectServing(releases.v2);
  });

  test('a release that throws on boot is refused: the up fails naming it, v2 serves throughout; the next good release deploys', async () => {
    requireProvisioned();
    const bad = buildRelease({ mark: 'bad', throwOnBoot: true });
    const load = startLoad(apiUrl());
    const program = await runProgram('local', config);
    const result = await engine.up(program);
    const during = await load.stop(2000);
    report.badRelease = { load: during, ran: ran(result.steps) };
    expect(result.failed?.name).toBe('cemetery-dev-release');
    const message = result.failed!.message;
    expect(message).toContain(`release ${bad.id} did not become ready, so it was not switched: it exited with code 1`);
    expect(message).toContain('e2e: this release cannot start');
    expect(message).toContain(`${releases.v2.id} keeps serving`);
    expect(message).not.toContain(MOCK_PASSWORD);
    expect(during.failed).toBe(0);
    expect(await live()).toBe(releases.v2.id);
    await expectServing(releases.v2);

    releases.v3 = buildRelease({ mark: 'v3' });
    expect(ran(await up('v3 after the refused release'))).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    await expectServing(releases.v3);
  });

  test('a release with a new migration applies it once, also when deployed twice', async () => {
    requireProvisioned();
    const count = async (sql: string) => Number((await root(`sudo -u postgres psql -qAt -d cemetery -c "${sql}"`)).trim());
    releases.v4 = buildRelease({ mark: 'v4', migration: true });
    await up('v4 with a migration');
    await expectServing(releases.v4);
    releases.v5 = buildRelease({ mark: 'v5', migration: true });
    await up('v5, the same migration');
    await expectServing(releases.v5);
    expect(await count("SELECT count(*) FROM pgmigrations WHERE name = '1900000000000_e2e-marker'")).toBe(1);
    expect(await count('SELECT count(*) FROM e2e_marker')).toBe(1);
  });

  test('rollback on the host by id, under load: no failed request; the list shows the live release and the rollback target', async () => {
    requireProvisioned();
    const load = startLoad(apiUrl());
    const started = Date.now();
    await root(`${appHome}/bin/release rollback ${releases.v3.id}`);
    const rollbackSeconds = seconds(started);
    const result = await load.stop(2000);
    report.rollbackOnHost = { rollbackSeconds, load: result };
    expect(result.failed).toBe(0);
    await expectServing(releases.v3);
    const list = await root(`${appHome}/bin/release list`);
    expect(list).toMatch(new RegExp(`^\\* ${releases.v3.id} .*\\(live\\)$`, 'm'));
    expect(list).toMatch(new RegExp(`^  ${releases.v5.id} .*\\(previous: the rollback target\\)$`, 'm'));
  });

  test('pulumi up of an earlier build switches back to it, reusing the release on the host', async () => {
    requireProvisioned();
    expect(buildRelease({ mark: 'v2' })).toEqual(releases.v2); // builds are reproducible
    expect(ran(await up('v2 again'))).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    expect(engine.state.get('cemetery-dev-release')!.outputs.stdout).toContain(`release ${releases.v2.id} is already on the host`);
    await expectServing(releases.v2);
  });

  test('after seven deploys with releasesToKeep 5: five releases and five uploads remain, the live one among them', async () => {
    requireProvisioned();
    for (let i = 6; i <= 8; i++) {
      releases[`v${i}`] = buildRelease({ mark: `v${i}` });
      await up(`v${i}`);
    }
    const kept = (await root(`ls ${appHome}/releases`)).trim().split('\n');
    const uploads = (await ssh(target, `ls -d ${provisioningLayout(target.user, releases.v8.id).base}/r-*`)).trim().split('\n').map((p) => p.split('/').pop());
    report.retention = { releases: kept, uploads };
    expect(kept).toHaveLength(stackConfig.releasesToKeep);
    expect(kept).toContain(releases.v8.id);
    expect(kept).toContain(releases.v7.id); // the rollback target
    expect(uploads.sort()).toEqual([...kept].sort());
    await expectServing(releases.v8);
  });

  test('a 50 MB log flood is rotated within 90 s into a compressed file, at most `retain` kept', async () => {
    requireProvisioned();
    const logs = `${appHome}/logs`;
    const retain = stackConfig.logrotateRetain;
    // Older rotated files, as earlier days would have left them.
    await asApp(`for d in 01 02 03 04 05; do echo old > ${logs}/out__2020-01-\${d}_00-00-00.log.gz; done`);
    const started = Date.now();
    await asApp(`head -c 37500000 /dev/urandom | base64 >> ${logs}/out.log`);
    const rotated = await waitUntil('a compressed rotation of out.log', async () => {
      const files = (await root(`ls ${logs}`)).trim().split('\n');
      const fresh = files.filter((f) => /^out__\d{4}-\d\d-\d\d_.*\.log\.gz$/.test(f) && !f.startsWith('out__2020'));
      return fresh.length ? { files, fresh } : undefined;
    }, { timeoutMs: 90000, intervalMs: 2000 });
    report.logFlood = { rotatedAfterSeconds: seconds(started), files: rotated.files };
    const size = Number((await root(`stat -c %s ${logs}/${rotated.fresh[0]}`)).trim());
    expect(size).toBeGreaterThan(1000000); // the flood, gzipped (base64 of random bytes: ~75 %)
    expect(size).toBeLessThan(50000000);
    await waitUntil('old rotations removed', async () => (await root(`ls ${logs}`)).trim().split('\n').filter((f) => f.startsWith('out__')).length <= retain, { timeoutMs: 60000, intervalMs: 2000 });
    expect(Number((await root(`stat -c %s ${logs}/out.log`)).trim())).toBeLessThan(10000000);
  });

  test('kill -9 of one worker under load: a new worker serves again, the others keep serving', async () => {
    requireProvisioned();
    const [victim, ...others] = await workers();
    const load = startLoad(apiUrl());
    await sleep(2000);
    const killed = Date.now();
    await root(`kill -9 ${victim.pid}`);
    const replaced = await waitUntil('a replacement worker', async () => {
      const now = await workers();
      return now.length === others.length + 1 && !now.some((w) => w.pid === victim.pid) ? now : undefined;
    }, { timeoutMs: 60000, intervalMs: 250 });
    const recoverySeconds = seconds(killed);
    const result = await load.stop(3000);
    report.kill9 = { recoverySeconds, load: result };
    expect(replaced.map((w) => w.pid)).toEqual(expect.arrayContaining(others.map((w) => w.pid)));
    expect(result.ok).toBeGreaterThan(result.requests * 0.99);
    await expectServing(releases.v8);
  });

  test('the database password is in no command line, journal, PM2 file or log, and in no file but the 0600 environment file', async () => {
    requireProvisioned();
    const files = (await root(`grep -rlF --binary-files=text -e '${MOCK_PASSWORD}' /srv /home /etc /var /tmp /root /run /opt 2>/dev/null || true`)).trim().split('\n').filter(Boolean);
    expect(files).toEqual([`${appHome}/shared/app.env`]);
    expect((await root(`stat -c '%a %U' ${appHome}/shared/app.env`)).trim()).toBe(`600 ${appUser}`);
    expect((await root(`grep -lF -e '${MOCK_PASSWORD}' /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null || true`)).trim()).toBe('');
    expect((await root(`journalctl --no-pager | grep -cF -e '${MOCK_PASSWORD}' || true`)).trim()).toBe('0');
    expect(await asApp('pm2 env 0')).not.toContain(MOCK_PASSWORD);
  });
});
