/**
 * The provisioning that `pulumi up` would send, run for real on a fresh
 * Debian 13 VM (qemu, software emulation): the `local` stack's program under
 * mocks gives the remote commands; they run over SSH; then the host is checked,
 * rebooted, checked again, and provisioned a second time to prove nothing
 * changes. Timings go to the console and to .bench/e2e-<date>.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseStackConfig } from '../../infra/config';
import { HOST_LAYOUT } from '../../infra/host-steps';
import { parseJlist } from '../../scripts/lib/pm2.cjs';
import { freePort } from '../../scripts/lib/ports.cjs';
import { sleep, waitUntil } from '../../scripts/lib/wait.cjs';
import { ROOT } from '../support/db';
import { getFresh } from '../support/http';
import { runProgram, stackFiles } from '../support/pulumi-mocks';
import { startNodeMirror } from './node-mirror';
import { executePlan, remotePlan, ssh, type SshTarget, type StepTiming } from './remote-runner';

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
let plan: ReturnType<typeof remotePlan>;
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
  const config = {
    ...stackFiles().local,
    'cemetery-backend:sshPort': String(sshPort),
    'cemetery-backend:nodeDistMirror': mirror.guestUrl,
    'cemetery-backend:sshPrivateKey': readFileSync(target.keyFile, 'utf8'),
  };
  const { resources, dependencies } = await runProgram('local', config);
  plan = remotePlan(resources, dependencies);
  stackConfig = parseStackConfig(
    Object.fromEntries(Object.entries(config).map(([k, v]) => [k.replace('cemetery-backend:', ''), v])),
    'local',
    undefined,
  );
}, 30 * 60 * 1000);

afterAll(async () => {
  if (vmEnv) spawnSync('bash', [VM, 'stop'], { env: vmEnv, stdio: 'inherit' });
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

test('provisions the VM with the commands the program registers', async () => {
  const short = (names: string[]) => names.map((n) => n.replace('cemetery-dev-', ''));
  expect(short(plan.filter((s) => s.type === 'command:remote:Command').map((s) => s.name))).toEqual([
    'wait-for-host', 'system-limits', 'app-user', 'nodejs', 'pm2', 'pm2-logrotate', 'postgres', 'release', 'pm2-save',
  ]);
  expect(short(plan.filter((s) => s.type === 'command:remote:CopyToRemote').map((s) => s.name))).toEqual(['host-scripts', 'release-bundle', 'release-process-file']);
  const started = Date.now();
  const timings: StepTiming[] = await executePlan(plan, target, (line) => console.log(line));
  report.firstRun = { totalSeconds: seconds(started), steps: timings };
  provisioned = true;
  // The install path went through the mirror's checksum file.
  expect(mirror.requests).toEqual(expect.arrayContaining([`/v${stackConfig.nodeVersion}/SHASUMS256.txt`, `/v${stackConfig.nodeVersion}/node-v${stackConfig.nodeVersion}-linux-x64.tar.gz`]));
});

test('the host has the limits, Node.js, PM2 under systemd, logrotate, and serves', async () => {
  requireProvisioned();
  await checkHost();
});

test('after a reboot the app is back within 60 s of SSH answering, with the same limits', async () => {
  requireProvisioned();
  const before = Date.now();
  await ssh(target, 'sudo systemctl reboot').catch(() => undefined);
  await sleep(5000);
  vm('wait-ssh', '300');
  const sshBack = Date.now();
  await waitUntil('/readyz after reboot', async () => (await getFresh(`http://127.0.0.1:${appPort}/readyz`).catch(() => ({ status: 0 }))).status === 200, {
    timeoutMs: 60000,
    intervalMs: 500,
  });
  report.reboot = {
    rebootToSshSeconds: Math.round((sshBack - before) / 100) / 10,
    sshToServingSeconds: seconds(sshBack),
    rebootToServingSeconds: seconds(before),
  };
  await checkHost();
});

test('running every step again changes nothing and restarts nothing', async () => {
  requireProvisioned();
  const before = await pm2List();
  const daemon = (await root(`cat ${appHome}/.pm2/pm2.pid`)).trim();
  const started = Date.now();
  const timings = await executePlan(plan, target);
  report.rerun = { totalSeconds: seconds(started), steps: timings };
  const after = await pm2List();
  expect(after.map((p) => [p.name, p.pid, p.pm2_env.restart_time])).toEqual(before.map((p) => [p.name, p.pid, p.pm2_env.restart_time]));
  expect((await root(`cat ${appHome}/.pm2/pm2.pid`)).trim()).toBe(daemon);
});
