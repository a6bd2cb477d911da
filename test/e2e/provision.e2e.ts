/**
 * The provisioning that `pulumi up -s local` would send, run for real on a
 * fresh Debian 13 VM through the stand-in for the engine and @pulumi/command
 * (local-stack.ts): successive `up`s run only what changed, as the engine
 * would. The host is checked, changed (a host script, the app code, releases
 * good and bad, a key rotation), rebooted, and checked again, under load where
 * it matters. Figures go to the console and to .bench/e2e-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { APP_DIST_DIR, HOST_LAYOUT, HOST_SCRIPTS_DIR, provisioningLayout, releaseId } from '../../infra/host-steps';
import { sleep, waitUntil } from '../../scripts/lib/wait.cjs';
import { ROOT } from '../support/db';
import { getFresh } from '../support/http';
import { stopAllLoads } from '../support/load';
import { MOCK_PASSWORD } from '../support/pulumi-mocks';
import { buildRelease, CADDY_ROOT_CA, E2E_MIGRATION, ran, rebuildCheckedOut, seconds, startLocalStack, type LocalStack, type Release } from './local-stack';
import { ssh } from './vm-ssh';

jest.setTimeout(60 * 60 * 1000);

const { appUser, appHome } = HOST_LAYOUT;
const report: Record<string, unknown> = { date: new Date().toISOString() };
let stack: LocalStack;
/** Later tests need a provisioned host; without one they stop at once instead of timing out. */
let provisioned = false;
const requireProvisioned = () => {
  if (!provisioned) throw new Error('the VM was not provisioned (see the first failure)');
};
const root = (command: string) => stack.root(command);
const asApp = (command: string) => stack.asApp(command);
const up = (label: string, opts: { replace?: 'all' } = {}) => stack.up(label, opts);

beforeAll(async () => {
  mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
  stack = await startLocalStack({
    report,
    log: (line) => process.stdout.write(`${line}\n`),
    // Few enough that the log flood test can see old rotations go.
    // The load comes from one address (qemu's gateway): no rate limit for it here.
    overrides: { 'cemetery-backend:logrotateRetain': '3', 'cemetery-backend:rateLimitPerMinute': '1000000' },
  });
}, 30 * 60 * 1000);

// A test that failed with its load still on would slow every test after it.
afterEach(() => stopAllLoads());

afterAll(async () => {
  await stack?.stop();
  // The scenarios built other releases into app/dist: build the checked-out sources again.
  rebuildCheckedOut();
  const file = path.join(ROOT, '.bench', `e2e-${String(report.date).replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`e2e figures:\n${JSON.stringify(report, null, 2)}`);
});

async function checkHost() {
  const nofile = String(stack.stackConfig.nofileLimit);
  // limits.d and the systemd drop-in
  expect(await root(`cat /etc/security/limits.d/90-cemetery-backend.conf`)).toContain(`${appUser} hard nofile ${nofile}`);
  expect(await root(`cat /etc/systemd/system/pm2-${appUser}.service.d/10-nofile.conf`)).toContain(`LimitNOFILE=${nofile}`);
  // a login shell of the app user
  expect((await root(`su - ${appUser} -c 'ulimit -n'`)).trim()).toBe(nofile);
  // the PM2 daemon systemd started, and every worker
  const daemonPid = (await root(`cat ${appHome}/.pm2/pm2.pid`)).trim();
  expect((await root(`systemctl show -p MainPID --value pm2-${appUser}`)).trim()).toBe(daemonPid);
  const running = await stack.workers();
  for (const pid of [daemonPid, ...running.map((w) => String(w.pid))]) {
    expect(await root(`grep 'Max open files' /proc/${pid}/limits`)).toMatch(new RegExp(`Max open files\\s+${nofile}\\s+${nofile}\\s+files`));
  }
  // Node.js, PM2, pm2-logrotate
  expect((await ssh(stack.target, 'node --version')).trim()).toBe(`v${stack.stackConfig.nodeVersion}`);
  const logrotate = JSON.parse(await root(`cat ${appHome}/.pm2/module_conf.json`))['pm2-logrotate'];
  expect(logrotate).toMatchObject({
    max_size: stack.stackConfig.logrotateMaxSize,
    retain: String(stack.stackConfig.logrotateRetain),
    compress: String(stack.stackConfig.logrotateCompress),
    rotateInterval: stack.stackConfig.logrotateRotateInterval,
  });
  expect((await root(`systemctl is-enabled pm2-${appUser}`)).trim()).toBe('enabled');
  // one worker per vCPU, serving through the forwarded port
  const vcpus = Number((await ssh(stack.target, 'nproc')).trim());
  expect(running).toHaveLength(vcpus);
  // serving through the proxy, as the public reaches it
  expect((await stack.web('/readyz')).status).toBe(200);
  return running;
}

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
    ['host-scripts', 'release-bundle', 'release-process-file', 'wait-for-host', 'ssh-authorized-keys', 'system-limits', 'app-user', 'nodejs', 'pm2', 'pm2-logrotate', 'postgres', 'proxy', 'release']
      .map((n) => `create ${n}`)
      .sort(),
  );
  // What the front door adds to a first provisioning.
  report.proxyStepSeconds = steps.find((s) => s.name.endsWith('-proxy'))!.seconds;
  // The install path went through the mirror's checksum file.
  expect(stack.mirrorRequests).toEqual(expect.arrayContaining([`/v${stack.stackConfig.nodeVersion}/SHASUMS256.txt`, `/v${stack.stackConfig.nodeVersion}/node-v${stack.stackConfig.nodeVersion}-linux-x64.tar.gz`]));
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
  const { scriptsDir } = provisioningLayout(stack.target.user, releaseId());
  const expected = ['update host-scripts', 'replace system-limits', 'delete system-limits'];
  await withEdit(path.join(HOST_SCRIPTS_DIR, 'system-limits.sh'), (text) => `${text}${marker}\n`, async () => {
    expect(ran(await up('system-limits.sh edited'))).toEqual(expected);
    expect(await ssh(stack.target, `tail -n 1 ${scriptsDir}/system-limits.sh`)).toBe(`${marker}\n`);
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
    expect((await stack.web('/readyz')).status).toBe(200);
  });
  expect(ran(await up('code restored'))).toEqual(expected);
  expect((await root(`readlink ${appHome}/current`)).trim()).toBe(`${appHome}/releases/${before}`);
});

test('every step replaced (pulumi up --replace) changes nothing and restarts nothing', async () => {
  requireProvisioned();
  const before = await stack.pm2List();
  const daemon = (await root(`cat ${appHome}/.pm2/pm2.pid`)).trim();
  const steps = await up('every resource replaced', { replace: 'all' });
  expect(steps.filter((s) => s.op === 'replace')).toHaveLength(13);
  const after = await stack.pm2List();
  expect(after.map((p) => [p.name, p.pid, p.pm2_env.restart_time])).toEqual(before.map((p) => [p.name, p.pid, p.pm2_env.restart_time]));
  expect((await root(`cat ${appHome}/.pm2/pm2.pid`)).trim()).toBe(daemon);
});

// ---------------------------------------------------------------------------
// The front door: Caddy on 80/443, the app on loopback, the host key checked.

describe('the front door', () => {
  test('HTTPS on 443 with a certificate for the domain from Caddy\'s CA; without that CA the certificate is refused', async () => {
    requireProvisioned();
    const ready = await stack.web('/readyz');
    expect(ready).toMatchObject({ status: 200 });
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });
    const peer = await new Promise<tls.PeerCertificate>((resolve, reject) => {
      void stack.proxyCa().then((ca) => {
        const socket = tls.connect({ host: '127.0.0.1', port: stack.httpsPort, servername: stack.domain, ca }, () => {
          resolve(socket.getPeerCertificate());
          socket.end();
        });
        socket.on('error', reject);
      });
    });
    expect(peer.subjectaltname).toBe(`DNS:${stack.domain}`);
    report.proxyCertificate = { subjectaltname: peer.subjectaltname, issuer: peer.issuer.CN, validTo: peer.valid_to };
    await expect(
      new Promise((resolve, reject) => tls.connect({ host: '127.0.0.1', port: stack.httpsPort, servername: stack.domain }, () => resolve('trusted')).on('error', reject)),
    ).rejects.toThrow(/self-signed certificate|unable to get local issuer certificate/);
  });

  test('port 80 redirects to https://<domain>', async () => {
    requireProvisioned();
    const redirect = await stack.web('/api/sections?limit=1', { scheme: 'http' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe(`https://${stack.domain}/api/sections?limit=1`);
  });

  test('writes through the proxy need a token made with cemetery-admin on the host; a revoked one is refused', async () => {
    requireProvisioned();
    const write = (headers: Record<string, string> = {}) =>
      stack.web('/api/sections', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ name: `e2e ${Date.now()}`, grid: { rows: 2, plotsPerRow: 2 } }) });
    const refused = await write();
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).message).toBe('write requests need a token: Authorization: Bearer <token>');
    // Printed once, on stdout: the token never appears in a command line.
    const token = (await root('cemetery-admin token create --name e2e')).trim();
    expect(token).toMatch(/^cmt_[A-Za-z0-9_-]{43}$/);
    expect((await write({ authorization: `Bearer ${token}` })).status).toBe(201);
    expect(await root('cemetery-admin token list')).toMatch(/\te2e\tcreated \S+\tactive\n/);
    await root('cemetery-admin token revoke --name e2e');
    expect((await write({ authorization: `Bearer ${token}` })).status).toBe(401);
  });

  test('the app port is closed from outside the VM: the app listens on loopback only', async () => {
    requireProvisioned();
    await expect(getFresh(`http://127.0.0.1:${stack.appPort}/readyz`)).rejects.toThrow();
    const listening = (await root(`ss -ltnH 'sport = :${stack.stackConfig.appPort}'`)).trim().split('\n').map((l) => l.trim().split(/\s+/)[3]);
    expect([...new Set(listening)]).toEqual([`127.0.0.1:${stack.stackConfig.appPort}`]);
  });

  test('requests per second: the app directly (on the VM) and through the proxy over HTTPS, one client, one run', async () => {
    requireProvisioned();
    const load = readFileSync(path.join(ROOT, 'scripts', 'bench', 'http-load.cjs'), 'utf8');
    const run = async (url: string, extra = '') => JSON.parse(await ssh(stack.target, `sudo /opt/node/bin/node - ${url} --connections 16 --seconds 10 ${extra}`, load)) as { requests: number; failed: number; rps: number };
    const direct = await run(`http://127.0.0.1:${stack.stackConfig.appPort}${API_PATH}`);
    const proxied = await run(`https://127.0.0.1${API_PATH}`, `--host ${stack.domain} --ca ${CADDY_ROOT_CA}`);
    report.proxyThroughput = { direct, proxied, proxiedOverDirect: Math.round((proxied.rps / direct.rps) * 100) / 100 };
    console.log(`requests/s: direct ${direct.rps}, through the proxy (HTTPS) ${proxied.rps}`);
    expect(direct).toMatchObject({ failed: 0 });
    expect(proxied).toMatchObject({ failed: 0 });
    expect(direct.requests).toBeGreaterThan(100);
    expect(proxied.requests).toBeGreaterThan(100);
  });

  test('a wrong sshHostKey fails the up before any step runs on the host, saying so', async () => {
    requireProvisioned();
    const keyFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'cemetery-hostkey-')), 'impostor');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const right = stack.config['cemetery-backend:sshHostKey'];
    // sshd's "Accepted publickey" lines. Each count's own login adds one; the bracket keeps sudo's log of
    // this very command line (which the journal holds too) from matching.
    const logins = async () => Number((await root(`journalctl --no-pager -o cat | grep -c 'Accepted publicke[y]' || true`)).trim());
    const before = await logins();
    stack.config['cemetery-backend:sshHostKey'] = readFileSync(`${keyFile}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const started = Date.now();
    let result;
    try {
      result = await stack.tryUp('a wrong sshHostKey');
    } finally {
      stack.config['cemetery-backend:sshHostKey'] = right;
    }
    const loginsDuringUp = (await logins()) - before - 1;
    report.wrongHostKey = { failedAfterSeconds: seconds(started), ran: ran(result.steps), failed: result.failed?.name, message: result.failed?.message, loginsDuringUp };
    // The right key again, before any assertion can stop this test: the copies take back their connection; every command kept its state.
    const restored = ran(await up('the right sshHostKey again'));
    expect(result.failed?.message).toMatch(/ssh: handshake failed: ssh: host key mismatch/);
    // Copies whose files did not change dial nothing (their update only records the new connection); no command ran.
    expect(result.steps.filter((s) => !/-(host-scripts|release-bundle|release-process-file)$/.test(s.name))).toEqual([]);
    expect(loginsDuringUp).toBe(0);
    expect(restored.filter((s) => !/^update (host-scripts|release-bundle|release-process-file)$/.test(s))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Releases: each a real build of changed sources, deployed by successive ups.

async function expectServing(r: Release) {
  const all = await stack.workersServing();
  expect(all).toHaveLength(stack.stackConfig.pm2Instances === 'max' ? Number((await ssh(stack.target, 'nproc')).trim()) : Number(stack.stackConfig.pm2Instances));
  for (const w of all) expect(w).toEqual({ pid: w.pid, id: r.id, build: r.build, cwd: `${appHome}/releases/${r.id}` });
}

const API_PATH = '/api/sections?limit=5';
const releases: Record<string, Release> = {};

describe('releases', () => {
  test('v2 deployed under load: no failed request, and every worker runs v2 code', async () => {
    requireProvisioned();
    releases.v2 = buildRelease({ mark: 'v2' });
    const load = stack.load(API_PATH);
    const started = Date.now();
    expect(ran(await up('v2 under load'))).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    const deploySeconds = seconds(started);
    const result = await load.stop(2000);
    report.deployV2 = { deploySeconds, load: result };
    // Recorded for the release tool's unit tests (test/fixtures/pm2-jlist-host.txt).
    writeFileSync(path.join(ROOT, '.bench', 'pm2-jlist-host.txt'), await asApp('pm2 jlist'));
    expect(result.requests).toBeGreaterThanOrEqual(2000);
    expect(result.failed).toBe(0);
    await expectServing(releases.v2);
  });

  test('after a reboot v2 serves within 60 s of SSH answering, with the same limits', async () => {
    requireProvisioned();
    const before = Date.now();
    await ssh(stack.target, 'sudo systemctl reboot').catch(() => undefined);
    await sleep(5000);
    stack.vm('wait-ssh', '300');
    const sshBack = Date.now();
    await waitUntil('/readyz through the proxy after reboot', async () => (await stack.web('/readyz').catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 60000, intervalMs: 500 });
    report.rebootV2 = { rebootToSshSeconds: Math.round((sshBack - before) / 100) / 10, sshToServingSeconds: seconds(sshBack) };
    await checkHost();
    await expectServing(releases.v2);
  });

  test('a release that throws on boot is refused: the up fails naming it, v2 serves throughout; the next good release deploys', async () => {
    requireProvisioned();
    const bad = buildRelease({ mark: 'bad', throwOnBoot: true });
    const load = stack.load(API_PATH);
    const result = await stack.tryUp('a release that throws on boot');
    const during = await load.stop(1000);
    report.badRelease = { load: during, ran: ran(result.steps) };
    expect(result.failed?.name).toBe('cemetery-dev-release');
    const message = result.failed!.message;
    expect(message).toContain(`release ${bad.id} did not become ready, so it was not switched: it exited with code 1`);
    expect(message).toContain('e2e: this release cannot start');
    expect(message).toContain(`${releases.v2.id} keeps serving`);
    expect(message).not.toContain(MOCK_PASSWORD);
    expect(during.failed).toBe(0);
    expect(await stack.live()).toBe(releases.v2.id);
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
    expect(await count(`SELECT count(*) FROM pgmigrations WHERE name = '${E2E_MIGRATION}'`)).toBe(1);
    expect(await count('SELECT count(*) FROM e2e_marker')).toBe(1);
  });

  test('rollback on the host by id, under load: no failed request; the list shows the live release and the rollback target', async () => {
    requireProvisioned();
    const load = stack.load(API_PATH);
    const started = Date.now();
    await root(`cemetery-release rollback ${releases.v3.id}`);
    const rollbackSeconds = seconds(started);
    const result = await load.stop(2000);
    report.rollbackOnHost = { rollbackSeconds, load: result };
    expect(result.failed).toBe(0);
    await expectServing(releases.v3);
    const list = await root(`cemetery-release list`);
    expect(list).toMatch(new RegExp(`^\\* ${releases.v3.id} .*\\(live\\)$`, 'm'));
    expect(list).toMatch(new RegExp(`^  ${releases.v5.id} .*\\(previous: the rollback target\\)$`, 'm'));
  });

  test('pulumi up of an earlier build switches back to it, reusing the release on the host', async () => {
    requireProvisioned();
    expect(buildRelease({ mark: 'v2' })).toEqual(releases.v2); // builds are reproducible
    expect(ran(await up('v2 again'))).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    expect(stack.engine.state.get('cemetery-dev-release')!.outputs.stdout).toContain(`release ${releases.v2.id} is already on the host`);
    await expectServing(releases.v2);
  });

  test('after seven deploys with releasesToKeep 5: five releases and five uploads remain, the live one among them', async () => {
    requireProvisioned();
    for (let i = 6; i <= 8; i++) {
      releases[`v${i}`] = buildRelease({ mark: `v${i}` });
      await up(`v${i}`);
    }
    const kept = (await root(`ls ${appHome}/releases`)).trim().split('\n');
    const uploads = (await ssh(stack.target, `ls -d ${provisioningLayout(stack.target.user, releases.v8.id).base}/r-*`)).trim().split('\n').map((p) => p.split('/').pop());
    report.retention = { releases: kept, uploads };
    expect(kept).toHaveLength(stack.stackConfig.releasesToKeep);
    expect(kept).toContain(releases.v8.id);
    expect(kept).toContain(releases.v7.id); // the rollback target
    expect(uploads.sort()).toEqual([...kept].sort());
    await expectServing(releases.v8);
  });

  test('a 50 MB log flood is rotated within 90 s into a compressed file, at most `retain` kept', async () => {
    requireProvisioned();
    const logs = `${appHome}/logs`;
    const retain = stack.stackConfig.logrotateRetain;
    // Older rotations, as earlier days would have left them.
    await asApp(['01', '02', '03', '04', '05'].map((d) => `echo old > ${logs}/out__2020-01-${d}_00-00-00.log.gz`).join('; '));
    const started = Date.now();
    await asApp(`head -c 37500000 /dev/urandom | base64 >> ${logs}/out.log`);
    // The .gz appears when the rotation starts; out.log is emptied when it is done.
    const rotated = await waitUntil('out.log rotated into a gzipped file', async () => {
      const files = (await root(`ls ${logs}`)).trim().split('\n');
      const fresh = files.filter((f) => /^out__\d{4}-\d\d-\d\d_.*\.log\.gz$/.test(f) && !f.startsWith('out__2020'));
      const size = Number((await root(`stat -c %s ${logs}/out.log`)).trim());
      return fresh.length && size < 10000000 ? { files, fresh } : undefined;
    }, { timeoutMs: 90000, intervalMs: 2000 });
    report.logFlood = { rotatedAfterSeconds: seconds(started), files: rotated.files };
    const gz = `${logs}/${rotated.fresh[0]}`;
    // The whole flood is in it. (pm2-logrotate 2.7.0 can leave bytes after the gzip stream, which gzip reports and skips.)
    expect(Number((await root(`gzip -dc ${gz} 2>/dev/null | wc -c`)).trim())).toBeGreaterThanOrEqual(50000000);
    const size = Number((await root(`stat -c %s ${gz}`)).trim());
    expect(size).toBeGreaterThan(30000000); // base64 of random bytes gzips to about 3/4
    expect(size).toBeLessThan(50000000);
    await waitUntil('old rotations removed', async () => (await root(`ls ${logs}`)).trim().split('\n').filter((f) => f.startsWith('out__')).length <= retain, { timeoutMs: 60000, intervalMs: 2000 });
    expect((await root(`ls ${logs}`)).trim().split('\n')).not.toContain('out__2020-01-01_00-00-00.log.gz');
  });

  test('kill -9 of one worker under load: a new worker serves again, the others keep serving', async () => {
    requireProvisioned();
    const [victim, ...others] = await stack.workers();
    const load = stack.load(API_PATH);
    await sleep(2000);
    const killed = Date.now();
    await root(`kill -9 ${victim.pid}`);
    const replaced = await waitUntil('a replacement worker', async () => {
      const now = await stack.workers();
      return now.length === others.length + 1 && !now.some((w) => w.pid === victim.pid) ? now : undefined;
    }, { timeoutMs: 60000, intervalMs: 250 });
    const recoverySeconds = seconds(killed);
    const result = await load.stop(1500);
    report.kill9 = { recoverySeconds, load: result };
    expect(replaced.map((w) => w.pid)).toEqual(expect.arrayContaining(others.map((w) => w.pid)));
    expect(result.ok).toBeGreaterThan(result.requests * 0.99);
    await expectServing(releases.v8);
  });

  test('the database password is in no command line, journal, PM2 file or log, and in no file but the 0600 environment file', async () => {
    requireProvisioned();
    // The password goes to grep on stdin (-f -): a command line holding it would land in sudo's log, the journal.
    const grep = (args: string) => ssh(stack.target, `sudo sh -c 'grep ${args} -f - || true'`, `${MOCK_PASSWORD}\n`);
    const files = (await grep('-rlF --binary-files=text /srv /home /etc /var /tmp /root /run /opt 2>/dev/null')).trim().split('\n').filter(Boolean);
    expect(files).toEqual([`${appHome}/shared/app.env`]);
    expect((await root(`stat -c '%a %U' ${appHome}/shared/app.env`)).trim()).toBe(`600 ${appUser}`);
    expect((await grep('-lF /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null')).trim()).toBe('');
    expect((await ssh(stack.target, `sudo sh -c 'journalctl --no-pager | grep -cF -f - || true'`, `${MOCK_PASSWORD}\n`)).trim()).toBe('0');
    const [worker] = await stack.workers();
    expect(await asApp(`pm2 env ${worker.pm_id}`)).not.toContain(MOCK_PASSWORD);
  });

  test('rotating the deploy key: two ups, the second with the new key; the old key is refused afterwards, nothing restarted', async () => {
    requireProvisioned();
    const keyFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'cemetery-key-')), 'deploy-2027');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy-2027', '-f', keyFile]);
    const newPublic = readFileSync(`${keyFile}.pub`, 'utf8').trim();
    const before = await stack.pm2List();
    // 1. authorize the new key next to the old one; the connection still uses the old key
    stack.config['cemetery-backend:sshNextPublicKey'] = newPublic;
    expect(ran(await up('next key authorized'))).toEqual(['update ssh-authorized-keys']);
    expect((await ssh(stack.target, 'cat ~/.ssh/authorized_keys')).trim().split('\n')).toEqual([stack.config['cemetery-backend:sshPublicKey'], newPublic]);
    // 2. connect with the new key and authorize only it: every step's connection changed, so every step runs once more
    stack.config['cemetery-backend:sshPublicKey'] = newPublic;
    stack.config['cemetery-backend:sshPrivateKey'] = readFileSync(keyFile, 'utf8');
    delete stack.config['cemetery-backend:sshNextPublicKey'];
    const steps = await up('switched to the new key');
    expect(steps.filter((s) => s.op === 'replace' || s.op === 'create')).toEqual([]);
    const oldTarget = { ...stack.target };
    stack.target.keyFile = keyFile;
    expect((await ssh(stack.target, 'cat ~/.ssh/authorized_keys')).trim()).toBe(newPublic);
    await expect(ssh(oldTarget, 'true')).rejects.toThrow();
    const after = await stack.pm2List();
    expect(after.map((p) => [p.name, p.pid, p.pm2_env.restart_time])).toEqual(before.map((p) => [p.name, p.pid, p.pm2_env.restart_time]));
  });
});
