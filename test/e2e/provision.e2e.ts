/**
 * The provisioning that `pulumi up -s local` would send, run for real on a
 * fresh Debian 13 VM through the stand-in for the engine and @pulumi/command
 * (local-stack.ts): successive `up`s run only what changed, as the engine
 * would. The host is checked, changed (a host script, the app code, releases
 * good and bad, a key rotation), rebooted, and checked again, under load where
 * it matters. Figures go to the console and to .bench/e2e-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { HOST_LAYOUT, HOST_SCRIPTS_DIR, provisioningLayout, releaseId } from '../../infra/host-steps';
import { metadataGuardCommand } from '../../infra/metadata-guard';
import { sleep, waitUntil } from '../../scripts/lib/wait.cjs';
import { BACKUP_ARCHIVE_TIMEOUT_SECONDS, BACKUP_RPO_SECONDS } from '../../infra/config';
import { ROOT } from '../support/db';
import { getFresh } from '../support/http';
import { stopAllLoads, type LoadResult } from '../support/load';
import { MOCK_PASSWORD } from '../support/pulumi-mocks';
import { TAMPERED_VERSION } from './node-mirror';
import { appWorkers, buildRelease, E2E_MIGRATION, ran, rebuildCheckedOut, seconds, startLocalStack, writeReport, type LocalStack, type Release } from './local-stack';
import { ssh } from './vm-ssh';
import type { UpResult } from '../standin/engine';
import { S3_TEST_NAME, startS3Server, type S3Server } from './s3-server';
import { backdated, infoChecksum, statedChecksum } from './pgbackrest-info';
import { parseLogfmt } from '../support/logfmt';
import { tempDir } from '../support/temp-dir';
import { fleetScenarios } from './fleet-scenarios';

jest.setTimeout(60 * 60 * 1000);

const { appUser, appHome, auditLog, maintenanceFlag } = HOST_LAYOUT;
/** Tokens the scenarios made: no output of an `up` may hold one. */
const tokensMade: string[] = [];
const report: Record<string, unknown> = { date: new Date().toISOString() };
let stack: LocalStack;
/** Later tests need a provisioned host; without one they stop at once instead of timing out. */
let provisioned = false;
const requireProvisioned = () => {
  if (!provisioned) throw new Error('the VM was not provisioned (see the first failure)');
};
const root = (command: string, opts: { fresh?: boolean } = {}) => stack.root(command, opts);
const asApp = (command: string) => stack.asApp(command);
const up = (label: string, opts: { replace?: 'all' } = {}) => stack.up(label, opts);
/**
 * The first host's root disk as its first up left it: the lost host's replacement and the fleet boot from it (their
 * own SSH host keys, a blank data disk) instead of provisioning Debian's bare image again. The first up is the one
 * run from nothing.
 */
const provisionedRoot = path.join(tempDir('e2e-disk'), 'provisioned-root.qcow2');

beforeAll(async () => {
  mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
  stack = await startLocalStack({
    report,
    log: (line) => process.stdout.write(`${line}\n`),
    // Few enough that the log flood test can see old rotations go, and that the
    // releases below are enough to prove retention without deploys of their own.
    // The load comes from one address (qemu's gateway): no rate limit for it here.
    overrides: { 'cemetery-backend:logrotateRetain': '3', 'cemetery-backend:releasesToKeep': '4', 'cemetery-backend:rateLimitPerMinute': '1000000' },
  });
}, 30 * 60 * 1000);

// A test that failed with its load still on would slow every test after it.
afterEach(() => stopAllLoads());

afterAll(async () => {
  await stack?.stop();
  // The scenarios built other releases into app/dist: build the checked-out sources again.
  rebuildCheckedOut();
  writeReport('e2e', report);
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
  // The only PM2 daemon on the host (the pm2 step's `pm2 startup` starts none for root).
  // (No $ in the command: root() passes it to bash -c in double quotes.)
  const pm2Daemons = (await root(`ps -eo pid=,user=,args= | grep '[P]M2 v'`)).trim().split('\n').map((line) => line.trim().split(/\s+/).slice(0, 2).join(' '));
  expect(pm2Daemons).toEqual([`${daemonPid} ${appUser}`]);
  // One `pm2 jlist` (2-3 s under emulation) for the workers and, below, the module.
  const processes = await stack.pm2List();
  const running = appWorkers(processes);
  for (const pid of [daemonPid, ...running.map((w) => String(w.pid))]) {
    expect(await root(`grep 'Max open files' /proc/${pid}/limits`)).toMatch(new RegExp(`Max open files\\s+${nofile}\\s+${nofile}\\s+files`));
  }
  // The register on the VM's second disk (dataVolumeDevice), its cluster's files and settings bound from it; PostgreSQL
  // starts only with them mounted.
  expect((await root('findmnt -n -o SOURCE /srv/cemetery-data; findmnt -n -o SOURCE /var/lib/postgresql; findmnt -n -o SOURCE /etc/postgresql')).trim().split('\n')).toEqual([
    '/dev/vdb',
    '/dev/vdb[/postgresql/lib]',
    '/dev/vdb[/postgresql/etc]',
  ]);
  expect((await root('systemctl show -p Requires --value postgresql@17-main')).split(/\s+/)).toEqual(expect.arrayContaining(['var-lib-postgresql.mount', 'etc-postgresql.mount']));
  expect((await root('systemctl is-enabled postgresql@17-main')).trim()).toBe('enabled');
  // Node.js, PM2, pm2-logrotate
  expect((await ssh(stack.target, 'node --version')).trim()).toBe(`v${stack.stackConfig.nodeVersion}`);
  // PM2 and pm2-logrotate from the repository's lockfiles: PM2 in a root-owned prefix named by its lockfile, the unit running it;
  // pm2-logrotate from the tarball built from its lockfile (PM2 ran no npm); no PM2 inside Node.js's own prefix.
  const lockId = (dir: string) => createHash('sha256').update(readFileSync(path.join(HOST_SCRIPTS_DIR, dir, 'package-lock.json'))).digest('hex').slice(0, 12);
  const prefix = `/opt/pm2-${lockId('pm2')}`;
  expect((await root(`readlink -f /usr/local/bin/pm2; stat -c '%U %a' ${prefix} ${prefix}/node_modules/pm2; grep -o 'ExecStart=[^ ]*' /etc/systemd/system/pm2-${appUser}.service`)).trim().split('\n')).toEqual([
    `${prefix}/node_modules/pm2/bin/pm2`,
    'root 755',
    'root 755',
    `ExecStart=${prefix}/node_modules/pm2/bin/pm2`,
  ]);
  expect((await root('ls /opt/node/lib/node_modules /opt/node/bin')).split(/\s+/)).not.toContain('pm2');
  const moduleConf = JSON.parse(await root(`cat ${appHome}/.pm2/module_conf.json`));
  expect(Object.keys(moduleConf['tar-modules'] ?? {})).toEqual(['pm2-logrotate']);
  expect(moduleConf['module-db-v2']?.['pm2-logrotate']).toBeUndefined();
  expect((await root(`cat ${appHome}/.pm2/modules/pm2-logrotate/.cemetery-lock`)).trim()).toBe(lockId('pm2-logrotate-module'));
  expect(processes.filter((p) => p.name === 'pm2-logrotate').map((p) => p.pm2_env.status)).toEqual(['online']);
  const logrotate = moduleConf['pm2-logrotate'];
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
  await stack.keepRootDisk(provisionedRoot);
  // Each after its dependencies (Engine.plan); their relative order otherwise is the engine's to choose.
  expect(ran(steps).sort()).toEqual(
    ['host-scripts', 'release-bundle', 'release-process-file', 'wait-for-host', 'ssh-authorized-keys', 'system-limits', 'app-user', 'nodejs', 'pm2', 'pm2-logrotate', 'data-volume', 'postgres', 'proxy', 'release']
      .map((n) => `create ${n}`)
      .sort(),
  );
  // What the front door adds to a first provisioning.
  report.proxyStepSeconds = steps.find((s) => s.name.endsWith('-proxy'))!.seconds;
  // The tarball came from the mirror; its checksum file was not consulted (the pin decides).
  expect(stack.mirrorRequests).toContain(`/v${stack.stackConfig.nodeVersion}/node-v${stack.stackConfig.nodeVersion}-linux-x64.tar.gz`);
  expect(stack.mirrorRequests.filter((r) => r.endsWith('SHASUMS256.txt'))).toEqual([]);
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

// ---------------------------------------------------------------------------
// The front door: Caddy on 80/443, the app on loopback, the host key checked.

describe('the front door', () => {
  test('HTTPS on 443 with a certificate for the domain from Caddy\'s CA, and HSTS; without that CA the certificate is refused', async () => {
    requireProvisioned();
    const ready = await stack.web('/readyz');
    expect(ready).toMatchObject({ status: 200 });
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });
    expect(ready.headers['strict-transport-security']).toBe('max-age=31536000');
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

  test('writes through the proxy need a token made with cemetery-admin on the host, however the path is spelled; a revoked one is refused', async () => {
    requireProvisioned();
    const write = (urlPath: string, headers: Record<string, string> = {}) =>
      stack.web(urlPath, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ name: `e2e ${Date.now()} ${Math.random()}`, grid: { rows: 2, plotsPerRow: 2 } }) });
    const total = async () => JSON.parse((await stack.web('/api/sections?limit=1')).body).total as number;
    const before = await total();
    const refused = await write('/api/sections');
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).message).toBe('write requests need a token: Authorization: Bearer <token>');
    // Other spellings of the same path, as an attacker would send them to the public address.
    const spellings = ['/%61pi/sections', '/api/%73ections', '/%61%70%69/%73%65%63%74%69%6f%6e%73', '/API/sections', '//api/sections', '/api//sections', '/api/sections/', '/api/./sections', '/x/../api/sections', '/api%2fsections', '/api/sections?x=1', '/api/sections;x=1'];
    const answers = await Promise.all(spellings.map(async (p) => `${p} ${(await write(p)).status}`));
    report.proxySpellings = answers;
    expect(answers.filter((a) => /\s[23]\d\d$/.test(a))).toEqual([]);
    expect(await total()).toBe(before);
    // Printed once, on stdout: the token never appears in a command line.
    const token = (await root('cemetery-admin token create --name e2e')).trim();
    expect(token).toMatch(/^cmt_[A-Za-z0-9_-]{43}$/);
    tokensMade.push(token);
    expect((await write('/api/sections', { authorization: `Bearer ${token}` })).status).toBe(201);
    expect(await root('cemetery-admin token list')).toMatch(/\te2e\tcreated \S+\tactive\n/);
    await root('cemetery-admin token revoke --name e2e');
    expect((await write('/api/sections', { authorization: `Bearer ${token}` })).status).toBe(401);
  });

  test('the app port is closed from outside the VM: the app listens on loopback only', async () => {
    requireProvisioned();
    await expect(getFresh(`http://127.0.0.1:${stack.appPort}/readyz`)).rejects.toThrow();
    const listening = (await root(`ss -ltnH 'sport = :${stack.stackConfig.appPort}'`)).trim().split('\n').map((l) => l.trim().split(/\s+/)[3]);
    expect([...new Set(listening)]).toEqual([`127.0.0.1:${stack.stackConfig.appPort}`]);
  });

  test("Caddy's admin API: nothing on localhost:2019; its socket answers root, and refuses the app user and the SSH user; a reload still goes through it", async () => {
    requireProvisioned();
    const socket = '/run/caddy/admin.sock';
    // An empty Host header ('Host;' to curl): Caddy 2.6.2 accepts only that on a unix socket.
    const ask = `curl -sS -o /dev/null -w '%{http_code}' -H 'Host;' --unix-socket ${socket} http://caddy/config/`;
    expect(await root(ask)).toBe('200');
    const tries = await stack.rootScript(
      [appUser, stack.target.user]
        .map((who) => `echo "${who} socket: $(sudo -u ${who} ${ask} 2>&1 | tr '\\n' ' ')"; echo "${who} 2019: $(sudo -u ${who} curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:2019/config/ 2>&1 | tr '\\n' ' ')"; echo "${who} dir: $(sudo -u ${who} ls ${socket} 2>&1)"`)
        .join('\n'),
    );
    report.caddyAdminRefusals = tries.trim().split('\n');
    for (const who of [appUser, stack.target.user]) {
      expect(tries).toMatch(new RegExp(`^${who} socket: curl: \\(7\\) .*000$`, 'm'));
      expect(tries).toMatch(new RegExp(`^${who} 2019: curl: \\(7\\) Failed to connect to 127\\.0\\.0\\.1 port 2019.*000$`, 'm'));
      expect(tries).toMatch(new RegExp(`^${who} dir: ls: cannot access '${socket}': Permission denied$`, 'm'));
    }
    expect((await root(`stat -c '%U %a' /run/caddy`)).trim()).toBe('caddy 700');
    // A config change still applies gracefully through the socket: systemctl reload (caddy reload, as the caddy user) works, and Caddy keeps serving.
    const pid = (await root('systemctl show -p MainPID --value caddy')).trim();
    await root('systemctl reload caddy');
    expect((await root('systemctl show -p MainPID --value caddy')).trim()).toBe(pid);
    expect((await stack.web('/readyz')).status).toBe(200);
  });

  test('a wrong sshHostKey fails the up before any step runs on the host, saying so', async () => {
    requireProvisioned();
    const keyFile = path.join(tempDir('hostkey'), 'impostor');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const right = stack.config['cemetery-backend:sshHostKey'];
    // sshd's "Accepted publickey" lines. Each count's own login adds one; the bracket keeps sudo's log of
    // this very command line (which the journal holds too) from matching.
    const logins = async () => Number((await root(`journalctl --no-pager -o cat | grep -c 'Accepted publicke[y]' || true`, { fresh: true })).trim());
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
// Trust boundaries: what the app user (or whoever breaks into it) can reach.

/** Root's files outside the app's own directories: owner, mode and link target of every entry; the content of every file where config and code live. */
async function rootFiles(): Promise<string[]> {
  const listing = await root(
    "find /etc /root /usr/local /opt /boot -xdev -printf '%p %U:%G %m %l\\n' | sort" +
      ' && find /etc /root /usr/local -xdev -type f -print0 | sort -z | xargs -0 sha256sum',
  );
  return listing.trim().split('\n');
}
const diff = (before: string[], after: string[]) => {
  const [was, now] = [new Set(before), new Set(after)];
  return { gone: before.filter((l) => !now.has(l)), added: after.filter((l) => !was.has(l)) };
};
let rootFilesBefore: string[] = [];
/** The directories the app user could write, where links were planted (a file of its own, in its logs). */
const PLANTED = `${appHome}/logs/planted.list`;
/** Plants (or removes) in each listed directory a link to a file and one to a directory of root's. */
const PLANT = `
  const fs = require('fs');
  const [action, list] = process.argv.slice(1);
  for (const dir of fs.readFileSync(list, 'utf8').split('\\n').filter(Boolean)) {
    for (const [name, target] of [['planted-file', '/etc/sudoers'], ['planted-dir', '/root']]) {
      try { fs.rmSync(dir + '/' + name, { force: true }); if (action === 'plant') fs.symlinkSync(target, dir + '/' + name); } catch {}
    }
  }`;

describe('trust boundaries', () => {
  test('as the app user, root\'s paths are closed: no code, link, env file or release of root\'s can be written, replaced or planted', async () => {
    requireProvisioned();
    const live = await stack.live();
    const attempts = [
      `mv ${appHome}/logs ${appHome}/logs.moved`,
      `ln -sfn /etc ${appHome}/logs.planted`,
      `ln -sfn /etc ${appHome}/current`,
      `ln -s /etc ${appHome}/releases/r-000000000000`,
      `ln -s /etc/shadow ${appHome}/shared/app.env.next`,
      `touch ${appHome}/shared/app.env`,
      `touch ${appHome}/releases/${live}/dist/server.js`,
      `mkdir ${appHome}/releases/${live}/planted`,
      `touch /usr/local/lib/cemetery-backend/release.cjs`,
      `touch /usr/local/sbin/cemetery-release`,
      // The PM2 that root runs (pm2 startup, pm2 save) and the module tarball root builds: root's, from the lockfiles.
      `touch /opt/pm2/node_modules/pm2/bin/pm2`,
      `touch /opt/pm2/node_modules/pm2/lib/API.js`,
      `ln -sfn /tmp /opt/pm2`,
      `ln -sfn /tmp /usr/local/bin/pm2`,
      `touch /opt/pm2-logrotate-*/pm2-logrotate.tar.gz`,
      // The maintenance switch and the audit trail are root's: no planted flag takes the site down, no line is forged or read.
      `touch ${maintenanceFlag}`,
      `ln -s /etc/shadow ${maintenanceFlag}`,
      `echo forged >> ${auditLog}`,
      `cat ${auditLog}`,
      `touch /usr/local/sbin/cemetery-maintenance /usr/local/sbin/cemetery-audit`,
    ];
    const allowed = await asApp(attempts.map((a) => `(${a}) 2>/dev/null && echo 'ALLOWED: ${a}'`).join('; ') + '; true');
    expect(allowed.trim()).toBe('');
    const owners = await root(`stat -c '%n %U:%G %a' ${appHome} ${appHome}/releases ${appHome}/releases/${live} ${appHome}/shared ${appHome}/shared/app.env ${appHome}/logs ${appHome}/.pm2`);
    expect(owners.trim().split('\n')).toEqual([
      `${appHome} root:${appUser} 750`,
      `${appHome}/releases root:${appUser} 750`,
      `${appHome}/releases/${live} root:${appUser} 750`,
      `${appHome}/shared root:${appUser} 750`,
      `${appHome}/shared/app.env root:${appUser} 640`,
      `${appHome}/logs ${appUser}:${appUser} 750`,
      `${appHome}/.pm2 ${appUser}:${appUser} 700`,
    ]);
  });

  test('links planted in every directory the app user can write; then the deploy key rotated, whose second up runs every step again: root follows no link, nothing restarts, the old key is refused', async () => {
    requireProvisioned();
    rootFilesBefore = await rootFiles();
    // Where the app user can write, as the host itself says (not a list kept here); in each, a link to a
    // file and one to a directory of root's; and in logs/, the gate's log as a link to root's shadow file.
    // Printed: the writable directories that are not sticky and world-writable (/tmp and the like) nor inside one of the app user's own.
    const found = (
      await stack.appScript(
        `find / \\( -path /proc -o -path /sys \\) -prune -o -type d -writable -print 2>/dev/null > ${PLANTED}; ` +
          // One process plants them all (a fork per link takes minutes under emulation).
          `node -e ${JSON.stringify(PLANT.replace(/\s*\n\s*/g, ' '))} plant ${PLANTED}; ` +
          `ln -sfn /etc/shadow ${appHome}/logs/release-check.log; ` +
          `grep -v -e "^${appHome}/[^/]*/." -e "^/tmp/." -e "^/var/tmp/." -e "^/dev/shm/." -e "^/run/lock/." ${PLANTED} | while IFS= read -r d; do [ -k "$d" ] || echo "$d"; done; ` +
          `echo "count $(wc -l < ${PLANTED})"`,
      )
    ).trim().split('\n');
    const count = Number(found.pop()!.replace('count ', ''));
    report.plantedLinks = { directories: count, links: count * 2 + 1, notSticky: found };
    // Besides the sticky world-writable ones, only the app user's own: nothing of root's.
    expect(found.sort()).toEqual([`${appHome}/.npm`, `${appHome}/.pm2`, `${appHome}/logs`].sort());

    // The deploy key rotated (README: Rotating the deploy key), with the links in place.
    const keyFile = path.join(tempDir('key'), 'deploy-2027');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy-2027', '-f', keyFile]);
    const newPublic = readFileSync(`${keyFile}.pub`, 'utf8').trim();
    const before = await stack.pm2List();
    const daemon = (await root(`cat ${appHome}/.pm2/pm2.pid`)).trim();
    // 1. authorize the new key next to the old one; the connection still uses the old key
    stack.config['cemetery-backend:sshNextPublicKey'] = newPublic;
    expect(ran(await up('next key authorized'))).toEqual(['update ssh-authorized-keys']);
    expect((await ssh(stack.target, 'cat ~/.ssh/authorized_keys')).trim().split('\n')).toEqual([stack.config['cemetery-backend:sshPublicKey'], newPublic]);
    // 2. connect with the new key and authorize only it: every step's connection changed, so every step runs once more
    stack.config['cemetery-backend:sshPublicKey'] = newPublic;
    stack.config['cemetery-backend:sshPrivateKey'] = readFileSync(keyFile, 'utf8');
    delete stack.config['cemetery-backend:sshNextPublicKey'];
    const steps = await up('switched to the new key, links planted');
    expect(steps.filter((s) => s.op === 'update')).toHaveLength(14);
    expect(steps.filter((s) => s.op !== 'update')).toEqual([]);
    const oldTarget = { ...stack.target };
    stack.target.keyFile = keyFile;
    expect((await ssh(stack.target, 'cat ~/.ssh/authorized_keys')).trim()).toBe(newPublic);
    // A fresh login: the shared connection made with the old key would still be open.
    await expect(ssh(oldTarget, 'true', undefined, { fresh: true })).rejects.toThrow();
    const after = await stack.pm2List();
    expect(after.map((p) => [p.name, p.pid, p.pm2_env.restart_time])).toEqual(before.map((p) => [p.name, p.pid, p.pm2_env.restart_time]));
    expect((await root(`cat ${appHome}/.pm2/pm2.pid`)).trim()).toBe(daemon);
    expect(diff(rootFilesBefore, await rootFiles())).toEqual({ gone: [], added: [] });
  });

  test("a Node.js tarball the mirror's own SHASUMS256.txt vouches for, but the pin does not, is refused: the up fails saying so, nothing is installed", async () => {
    requireProvisioned();
    const pinned = stack.config['cemetery-backend:nodeVersion'];
    const liveNode = (await root('readlink -f /opt/node')).trim();
    // The mirror serves other bytes under a new version, with a checksum file that agrees with them; the stack's pin is the real build's.
    stack.config['cemetery-backend:nodeVersion'] = TAMPERED_VERSION;
    let result;
    try {
      result = await stack.tryUp('a tampered Node.js tarball');
    } finally {
      if (pinned === undefined) delete stack.config['cemetery-backend:nodeVersion'];
      else stack.config['cemetery-backend:nodeVersion'] = pinned;
    }
    report.tamperedNode = { ran: ran(result.steps), failed: result.failed?.name, message: result.failed?.message };
    expect(result.failed?.name).toMatch(/-nodejs$/);
    expect(result.failed?.message).toMatch(
      new RegExp(`refusing http://10\\.0\\.2\\.2:\\d+/v${TAMPERED_VERSION}/node-v${TAMPERED_VERSION}-linux-x64\\.tar\\.gz: its SHA-256 is [0-9a-f]{64}, the pinned one is ${stack.config['cemetery-backend:nodeTarballSha256']} .*nothing was installed`),
    );
    // Nothing of it on the host: no directory, no link moved, no leftover download.
    expect((await root(`ls -d /opt/node-v${TAMPERED_VERSION}* 2>/dev/null | wc -l; readlink -f /opt/node; find /tmp -maxdepth 2 -name 'node-v${TAMPERED_VERSION}*' | wc -l`)).trim().split('\n')).toEqual(['0', liveNode, '0']);
    // Only the nodejs step ran, and failed (steps lists those that succeeded); the pm2 step after it never started.
    expect(ran(result.steps)).toEqual([]);
    // With the pinned version back, nothing is left to do.
    expect(ran(await up('the pinned Node.js again'))).toEqual([]);
  });

  test('the metadata guard from the user data: the app user and the SSH user cannot reach 169.254.169.254, root can; applying it twice adds nothing', async () => {
    requireProvisioned();
    // A stand-in for the instance metadata service, on the VM's loopback (target ssh has no cloud-init user data:
    // the rule is applied here with the same command the user data runs at every boot).
    // Its port is not 80 (Caddy holds :80 on every address); the rule covers every port of the address.
    await root(
      'ip addr add 169.254.169.254/32 dev lo 2>/dev/null || true; ' +
        `systemd-run --quiet --unit=fake-imds ${HOST_LAYOUT.nodeBin}/node -e "require('http').createServer((q, s) => s.end('instance metadata')).listen(8169, '169.254.169.254')"`,
    );
    try {
      const metadata = (user: string) => root(`sudo -u ${user} curl -sS -m 3 http://169.254.169.254:8169/latest/ 2>&1 || true`);
      await waitUntil('the stand-in metadata service', async () => (await metadata('root')) === 'instance metadata', { timeoutMs: 120000, intervalMs: 500 });
      expect(await metadata(appUser)).toBe('instance metadata'); // before the guard: open to all
      // On stdin: the command has lines (bootcmd gets them from the user data's JSON).
      await stack.rootScript(metadataGuardCommand());
      await stack.rootScript(metadataGuardCommand());
      const answers = { root: await metadata('root'), [appUser]: await metadata(appUser), [stack.target.user]: await metadata(stack.target.user) };
      report.metadataGuard = answers;
      expect(answers.root).toBe('instance metadata');
      // Refused, or (here) timed out: on loopback the refusal's own packet goes back to 169.254.169.254 and meets the rule.
      expect(answers[appUser]).toMatch(/^curl: \((7|28)\) (Failed to connect to 169\.254\.169\.254 port 8169|Connection timed out)/);
      expect(answers[stack.target.user]).toMatch(/^curl: \((7|28)\) (Failed to connect to 169\.254\.169\.254 port 8169|Connection timed out)/);
      for (const tables of ['iptables', 'ip6tables']) expect((await root(`${tables} -S OUTPUT | grep -c cemetery-metadata-guard`)).trim()).toBe('1');
    } finally {
      await root('systemctl stop fake-imds 2>/dev/null; ip addr del 169.254.169.254/32 dev lo 2>/dev/null; true');
    }
  });
});

// ---------------------------------------------------------------------------
// Releases: each a real build of changed sources, deployed by successive ups, under load through the proxy.

async function expectServing(r: Release) {
  const all = await stack.workersServing();
  expect(all).toHaveLength(stack.stackConfig.pm2Instances === 'max' ? Number((await ssh(stack.target, 'nproc')).trim()) : Number(stack.stackConfig.pm2Instances));
  for (const w of all) expect(w).toEqual({ pid: w.pid, id: r.id, build: r.build, cwd: `${appHome}/releases/${r.id}` });
}

const releases: Record<string, Release> = {};
/** Release ids that may answer /version while the load runs (the live one, and the one being switched to). */
let answering: string[] = [];

/**
 * Runs `during` under load through the proxy; the load must see no failure of any kind and must have run while `during` did.
 * A failure is printed with the proxy's own account of it (Caddy's error lines from the journal) and PM2's.
 */
async function underLoad<T>(label: string, allowed: string[], during: () => Promise<T>): Promise<{ value: T; load: LoadResult; answeredDuring: number }> {
  answering = allowed;
  const since = (await root('date +%s')).trim();
  const load = await stack.load(() => answering);
  await waitUntil('the load under way', () => load.requests > 0, { timeoutMs: 60000, intervalMs: 200 });
  const sentBefore = load.requests;
  const value = await during();
  const answeredDuring = load.requests - sentBefore;
  const result = await load.stop();
  console.log(`${label} under load: ${result.requests} requests (${answeredDuring} during), releases ${JSON.stringify(result.releases)}, failures ${JSON.stringify(result.failures)}, resent on a closed kept-alive connection ${JSON.stringify(result.resent)}`);
  if (result.failed) {
    const caddy = await root(`journalctl -u caddy --since @${since} --no-pager -o short-iso-precise | grep -v '"level":"info"' | tail -n 20 || true`);
    const pm2 = await root(`tail -n 30 ${appHome}/.pm2/pm2.log || true`);
    console.log(`${label}: what the proxy logged meanwhile:\n${caddy}\nPM2's log:\n${pm2}`);
  }
  return { value, load: result, answeredDuring };
}

describe('releases', () => {
  test('v2 deployed under load: only the release resources run; no failed request, no answer but v1 or v2; every worker runs v2 code', async () => {
    requireProvisioned();
    releases.v1 = { id: (await stack.live())!, build: JSON.parse((await stack.web('/version')).body).build };
    releases.v2 = buildRelease({ mark: 'v2' });
    expect(releases.v2.id).not.toBe(releases.v1.id);
    const started = Date.now();
    const { value: steps, load, answeredDuring } = await underLoad('v2 deploy', [releases.v1.id, releases.v2.id], () => up('v2 under load'));
    report.deployV2 = { deploySeconds: seconds(started), load };
    expect(ran(steps)).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    // The release step's phases, shown as they happened: in order, one line per worker reloaded.
    const shown = stack.shown.filter((o) => o.resource === 'cemetery-dev-release' && o.at >= started);
    const phases = [
      `[release] release ${releases.v2.id} installed in`,
      `[release] applying the migrations of release ${releases.v2.id}`,
      `[release] release ${releases.v2.id} started on port`,
      `[release] release ${releases.v2.id} is ready`,
      '[release] reloading cemetery-backend, one worker at a time',
      `[release] release ${releases.v2.id} is live on`,
    ].map((start) => shown.findIndex((o) => o.line.startsWith(start)));
    report.deployV2Shown = shown.map((o) => `${((o.at - started) / 1000).toFixed(1)} s: ${o.line}`);
    expect(phases.every((i) => i >= 0)).toBe(true);
    expect([...phases].sort((a, b) => a - b)).toEqual(phases);
    const workersReloaded = shown.slice(phases[4], phases[5]).filter((o) => /^\[release\] worker \d+ reloaded$/.test(o.line));
    expect(workersReloaded).toHaveLength((await stack.workers()).length);
    // Streamed, not printed at the end: the gate's line arrived before the reload was over.
    expect(shown[phases[3]].at).toBeLessThan(shown[phases[5]].at);
    expect(load.failures).toEqual({});
    expect(answeredDuring).toBeGreaterThan(0);
    expect((await root(`readlink ${appHome}/current`)).trim()).toBe(`${appHome}/releases/${releases.v2.id}`);
    // Recorded for the release tool's unit tests (test/fixtures/pm2-jlist-host.txt).
    writeFileSync(path.join(ROOT, '.bench', 'pm2-jlist-host.txt'), await asApp('pm2 jlist'));
    await expectServing(releases.v2);
  });

  test('a release that throws on boot is refused: the up fails naming it, only v2 answers throughout; the next good release deploys', async () => {
    requireProvisioned();
    const bad = (releases.bad = buildRelease({ mark: 'bad', throwOnBoot: true }));
    const { value: result, load } = await underLoad('a refused release', [releases.v2.id], () => stack.tryUp('a release that throws on boot'));
    report.badRelease = { load, ran: ran(result.steps) };
    expect(result.failed?.name).toBe('cemetery-dev-release');
    const message = result.failed!.message;
    expect(message).toContain(`release ${bad.id} did not become ready, so it was not switched: it exited with code 1`);
    expect(message).toContain('e2e: this release cannot start');
    expect(message).toContain(`${releases.v2.id} keeps serving`);
    expect(message).not.toContain(MOCK_PASSWORD);
    expect(load.failures).toEqual({});
    expect(await stack.live()).toBe(releases.v2.id);
    await expectServing(releases.v2);

    // The next good release carries a new migration.
    releases.v3 = buildRelease({ mark: 'v3', migration: true });
    expect(ran(await up('v3, with a migration, after the refused release'))).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    await expectServing(releases.v3);
  });

  test('a migration shipped by two releases is applied once', async () => {
    requireProvisioned();
    const count = async (sql: string) => Number((await root(`sudo -u postgres psql -qAt -d cemetery -c "${sql}"`)).trim());
    releases.v4 = buildRelease({ mark: 'v4', migration: true });
    await up('v4, the same migration');
    await expectServing(releases.v4);
    expect(await count(`SELECT count(*) FROM pgmigrations WHERE name = '${E2E_MIGRATION}'`)).toBe(1);
    expect(await count('SELECT count(*) FROM e2e_marker')).toBe(1);
  });

  test('rollback by id from the workstation (npm run cemetery -- rollback <id>), under load: no failed request, no answer but v4 or v3; the list shows the live release and the rollback target', async () => {
    requireProvisioned();
    const started = Date.now();
    const { value: rolledBack, load, answeredDuring } = await underLoad('rollback', [releases.v4.id, releases.v3.id], () => stack.operator(['rollback', releases.v3.id]));
    report.rollbackOnHost = { rollbackSeconds: seconds(started), load };
    expect(rolledBack).toMatchObject({ status: 0 });
    expect(load.failures).toEqual({});
    expect(answeredDuring).toBeGreaterThan(0);
    await expectServing(releases.v3);
    const list = await root(`cemetery-release list`);
    expect(list).toMatch(new RegExp(`^\\* ${releases.v3.id} .*\\(live\\)$`, 'm'));
    expect(list).toMatch(new RegExp(`^  ${releases.v4.id} .*\\(previous: the rollback target\\)$`, 'm'));
  });

  test('pulumi up of an earlier build switches back to it, reusing the release on the host', async () => {
    requireProvisioned();
    expect(buildRelease({ mark: 'v2' })).toEqual(releases.v2); // builds are reproducible
    expect(ran(await up('v2 again'))).toEqual(['update release-bundle', 'update release-process-file', 'update release']);
    expect(stack.engine.state.get('cemetery-dev-release')!.outputs.stdout).toContain(`release ${releases.v2.id} is already on the host`);
    await expectServing(releases.v2);
  });

  test('with releasesToKeep 4, after five releases: the oldest is gone with its upload; four remain, the live one and the rollback target among them', async () => {
    requireProvisioned();
    const kept = (await root(`ls ${appHome}/releases`)).trim().split('\n');
    const uploads = (await ssh(stack.target, `ls -d ${provisioningLayout(stack.target.user, releases.v2.id).base}/r-*`)).trim().split('\n').map((p) => p.split('/').pop());
    report.retention = { releases: kept, uploads };
    expect(stack.stackConfig.releasesToKeep).toBe(4);
    expect(kept).not.toContain(releases.v1.id);
    expect(kept).toHaveLength(4);
    expect(kept).toEqual(expect.arrayContaining([releases.v2.id, releases.v3.id, releases.v4.id]));
    expect(await stack.live()).toBe(releases.v2.id);
    expect((await root(`readlink ${appHome}/previous`)).trim()).toBe(`${appHome}/releases/${releases.v3.id}`);
    expect(uploads.sort()).toEqual([...kept].sort());
    expect(stack.shown.some((o) => o.resource === 'cemetery-dev-release' && o.line.startsWith('[release] pruned 1 release(s)'))).toBe(true);
  });

  test('deploys, a refused release, a rollback and prunes with the links still planted changed none of root\'s files', async () => {
    requireProvisioned();
    const after = await rootFiles();
    report.rootFilesChecked = { before: rootFilesBefore.length, after: after.length };
    expect(diff(rootFilesBefore, after)).toEqual({ gone: [], added: [] });
    // The gate wrote its log as the app user, in place of the planted link.
    expect((await root(`stat -c '%F %U' ${appHome}/logs/release-check.log`)).trim()).toBe(`regular file ${appUser}`);
    await stack.appScript(`node -e ${JSON.stringify(PLANT.replace(/\s*\n\s*/g, ' '))} remove ${PLANTED}`);
  });

  test('a 15 MB log flood is rotated into a compressed file (max_size 10M, checked every 30 s), at most `retain` kept', async () => {
    requireProvisioned();
    const logs = `${appHome}/logs`;
    const retain = stack.stackConfig.logrotateRetain;
    // Older rotations, as earlier days would have left them.
    await asApp(['01', '02', '03', '04', '05'].map((d) => `echo old > ${logs}/out__2020-01-${d}_00-00-00.log.gz`).join('; '));
    // What was rotated before the flood is not the flood's: the daily rotation (rotateInterval, at midnight) may have
    // run during the tier, and may even take a part of the flood into a file of its own if midnight falls inside it.
    const before = new Set((await root(`ls ${logs}`)).trim().split('\n'));
    const started = Date.now();
    // Appended while pm2-logrotate is stopped: one of its checks (every 30 s) in the middle of the append would rotate
    // part of it and truncate the rest as it came (copy-then-truncate), which no single file would then hold, and an
    // emulated host on a busy machine can take seconds over the append (CI run 37 waited 300 s for a whole file).
    // Started again, the module checks 30 s later and finds the flood whole.
    await stack.appScript(`set -e\nflood=$(mktemp)\nhead -c 11250000 /dev/urandom | base64 >"$flood"\npm2 stop pm2-logrotate >/dev/null\ncat "$flood" >>${logs}/out.log\npm2 restart pm2-logrotate >/dev/null\nrm "$flood"\n`);
    const paths = (files: string[]) => files.map((f) => `${logs}/${f}`).join(' ');
    // Each new .gz: its size, and how many bytes it decompresses to (gzip goes on past the bytes pm2-logrotate 2.7.0
    // can leave after a gzip stream, and stops short of an unfinished one). A script: its $variables are its own.
    const gzSizes = async (files: string[]) =>
      (await stack.rootScript(`for f in ${paths(files)}; do echo "$(stat -c %s "$f") $(gzip -dc "$f" 2>/dev/null | wc -c)"; done`))
        .trim()
        .split('\n')
        .map((line) => line.split(' ').map(Number) as [number, number]);
    // Done when out.log was emptied and one new .gz holds the whole flood. pm2-logrotate 2.7.0 rotates again a file
    // whose compression outlasts its 30 s check (app.js: nothing marks a rotation in progress), so a slow machine can
    // leave two files of the same lines: the test counts them and asserts neither how many nor their total.
    const rotated = await waitUntil('out.log rotated into a gzipped file', async () => {
      const files = (await root(`ls ${logs}`)).trim().split('\n');
      const fresh = files.filter((f) => /^out__\d{4}-\d\d-\d\d_.*\.log\.gz$/.test(f) && !before.has(f));
      const size = Number((await root(`stat -c %s ${logs}/out.log`)).trim());
      if (!fresh.length || size >= 10000000) return undefined;
      const whole = (await gzSizes(fresh)).find(([, plain]) => plain >= 15000000);
      return whole ? { files, fresh, compressed: whole[0], plain: whole[1] } : undefined;
      // Generous: gzip under emulation on a busy machine is slow; the figure goes to the report.
    }, { timeoutMs: 300000, intervalMs: 5000 });
    report.logFlood = { rotatedAfterSeconds: seconds(started), files: rotated.files, rotations: rotated.fresh.length };
    // Compressed: base64 of random bytes gzips to about 3/4.
    expect(rotated.compressed / rotated.plain).toBeGreaterThan(0.6);
    expect(rotated.compressed / rotated.plain).toBeLessThan(0.85);
    await waitUntil('old rotations removed', async () => (await root(`ls ${logs}`)).trim().split('\n').filter((f) => f.startsWith('out__')).length <= retain, { timeoutMs: 180000, intervalMs: 2000 });
    expect((await root(`ls ${logs}`)).trim().split('\n')).not.toContain('out__2020-01-01_00-00-00.log.gz');
  });

  test('kill -9 of one worker under load: a new worker serves again, the others keep serving, no request fails', async () => {
    requireProvisioned();
    const [victim, ...others] = await stack.workers();
    const killed = Date.now();
    const { value: replaced, load } = await underLoad('kill -9 of a worker', [releases.v2.id], async () => {
      await root(`kill -9 ${victim.pid}`);
      return waitUntil('a replacement worker', async () => {
        const now = await stack.workers();
        return now.length === others.length + 1 && !now.some((w) => w.pid === victim.pid) ? now : undefined;
      }, { timeoutMs: 180000, intervalMs: 250 });
    });
    report.kill9 = { recoverySeconds: seconds(killed), load };
    expect(replaced.map((w) => w.pid)).toEqual(expect.arrayContaining(others.map((w) => w.pid)));
    // A GET on a connection the killed worker held is tried again by Caddy (lb_try_duration): users see nothing.
    expect(load.failures).toEqual({});
    await expectServing(releases.v2);
  });

  test('npm run cemetery against the VM, through the pinned host key: status, logs, releases, exec, shell, psql, token, maintenance (rollback: its own scenario); another host key is refused', async () => {
    requireProvisioned();
    const transcript: string[] = [];
    const outputs = await stack.stackOutputs();
    const op = async (argv: string[], input?: string) => {
      const r = await stack.operator(argv, { input, outputs });
      // The transcript goes to the log: a token made here is printed there as its prefix only.
      transcript.push(`$ npm run cemetery -- -s local ${argv.join(' ')}  (exit ${r.status})\n${r.stdout.replace(/(cmt_)[A-Za-z0-9_-]{43}/g, '$1… (redacted)')}`);
      return r;
    };
    const live = (await stack.live())!;
    const previous = (await root(`readlink ${appHome}/previous`)).trim().split('/').pop()!;

    const status = await op(['status']);
    expect(status.status).toBe(0);
    expect(status.stdout).toContain(`release      ${live} (rollback target ${previous})`);
    expect(status.stdout).toMatch(new RegExp(`^workers {6}${(await stack.workers()).length} of ${(await stack.workers()).length} online$`, 'm'));
    // Each worker's traffic, from the metrics it reports to PM2 (app/src/metrics.ts).
    expect(status.stdout).toMatch(/^ {2}worker \d+ .* restarts up \S+ {2}[\d.]+ req\/s {2}p95 [\d.]+ ms {2}\d+ 5xx {2}db \d+ busy \d+ waiting$/m);
    expect(status.stdout).toMatch(/^database {5}reachable \(\/readyz 200\)$/m);
    expect(status.stdout).toMatch(/^certificate {2}expires \d{4}-\d\d-\d\d /m);
    expect(status.stdout).toMatch(/^maintenance {2}off$/m);

    const logs = await op(['logs', '-n', '5']);
    expect(logs.status).toBe(0);
    const logLines = logs.stdout.trim().split('\n');
    expect(logLines).toHaveLength(5);
    for (const line of logLines) expect(JSON.parse(line)).toHaveProperty('time');

    const list = await op(['releases']);
    expect(list.stdout).toMatch(new RegExp(`^\\* ${live} .*\\(live\\)$`, 'm'));
    expect(list.stdout).toMatch(/ action=deploy outcome=ok /);

    expect(await op(['exec', 'cat', '/etc/hostname'])).toMatchObject({ status: 0, stdout: 'cemetery-vm\n' });
    expect((await op(['exec', 'sh', '-c', 'exit 4'])).status).toBe(4);
    expect((await op(['shell'], 'id -un\n')).stdout).toContain(`${stack.target.user}\n`);
    expect((await op(['psql'], "SELECT 'psql ' || count(*) FROM pgmigrations;\n")).stdout).toMatch(/psql \d+/);

    const made = await op(['token', 'create', '--name', 'operator']);
    expect(made.stdout.trim()).toMatch(/^cmt_[A-Za-z0-9_-]{43}$/);
    tokensMade.push(made.stdout.trim());
    expect((await op(['token', 'list'])).stdout).toMatch(/\toperator\tcreated \S+\tactive\n/);
    expect((await op(['token', 'revoke', '--name', 'operator'])).status).toBe(0);

    expect((await op(['maintenance', 'on'])).status).toBe(0);
    expect((await op(['maintenance', 'status'])).status).toBe(3);
    expect((await stack.web('/api/sections?limit=1')).status).toBe(503);
    const during = await op(['status']);
    expect(during.stdout).toMatch(/^maintenance {2}on$/m);
    expect((await op(['maintenance', 'off'])).status).toBe(0);
    expect((await stack.web('/api/sections?limit=1')).status).toBe(200);

    // Outputs whose pinned key is another host's: refused before anything runs.
    const impostor = path.join(tempDir('operator'), 'host');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', impostor]);
    const refused = await stack.operator(['exec', 'sudo', 'touch', '/root/operator-ran'], { outputs: { ...outputs, sshKnownHosts: `${String(outputs.sshKnownHosts).split(' ')[0]} ${readFileSync(`${impostor}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ')}` } });
    expect(refused.status).toBe(255);
    expect(refused.stderr).toContain('Host key verification failed');
    expect((await root('ls /root/operator-ran 2>&1 || true')).trim()).toMatch(/No such file/);
    report.operatorTranscript = transcript;
    console.log(`operator transcript:\n${transcript.join('\n')}`);
  });

  test('maintenance on, under load: at once a 503 page with Retry-After to all but the probes, kept through a Caddy reload; off: served again; 503s only while it was on', async () => {
    requireProvisioned();
    const live = (await stack.live())!;
    let onAt = 0;
    let offAt = 0;
    const { value: seen, load } = await underLoad('maintenance on and off', [live], async () => {
      onAt = Date.now();
      const on = await root('cemetery-maintenance on');
      const page = await stack.web('/api/sections?limit=1');
      const probe = await stack.web('/readyz');
      await root('systemctl reload caddy');
      const afterReload = await stack.web('/version');
      // Exit code 3 while on (a script's $? is its own on stdin: rootScript).
      const status = await stack.rootScript('cemetery-maintenance status; echo "exit $?"');
      const off = await root('cemetery-maintenance off');
      offAt = Date.now();
      const back = await stack.web('/api/sections?limit=1');
      return { on, page, probe, afterReload, status, off, back };
    });
    report.maintenance = { load };
    expect(seen.on).toMatch(/^maintenance is on/);
    expect(seen.page.status).toBe(503);
    expect(seen.page.headers['retry-after']).toBe('120');
    expect(seen.page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(seen.page.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(seen.page.body).toContain('<h1>Down for maintenance</h1>');
    expect(seen.probe.status).toBe(200);
    expect(seen.afterReload.status).toBe(503);
    expect(seen.status).toMatch(/^maintenance is on since \S+: the proxy answers 503\nexit 3\n$/);
    expect(seen.off).toMatch(/^maintenance is off/);
    expect(seen.back.status).toBe(200);
    // The load: served before and after; every failure a maintenance page, sent before `off` was done and answered after `on` began.
    expect(load.ok).toBeGreaterThan(0);
    expect(load.failed).toBeLessThanOrEqual(load.firstFailures.length);
    for (const f of load.firstFailures) {
      expect(f.kind).toMatch(/^status 503: <!doctype html>/);
      const sent = load.startedAt + f.at * 1000;
      expect(sent + f.took * 1000).toBeGreaterThanOrEqual(onAt - 200); // at and took are rounded to tenths
      expect(sent).toBeLessThanOrEqual(offAt + 200);
    }
  });

  test('the audit trail: deploys done and refused, the rollback, maintenance and token changes, each with who (SSH user, key, address), when and the outcome; root\'s alone', async () => {
    requireProvisioned();
    await root('cemetery-admin token create --name audited >/dev/null');
    await root('cemetery-admin token revoke --name audited');
    const entries = (await root('cemetery-audit --show 200'))
      .trim()
      .split('\n')
      .map(parseLogfmt);
    report.audit = entries.slice(-12);
    const find = (action: string, outcome: string, detail: RegExp) => entries.find((e) => e.action === action && e.outcome === outcome && detail.test(e.detail));
    expect(find('deploy', 'ok', new RegExp(`^release ${releases.v2.id} over ${releases.v1.id}$`))).toBeDefined();
    expect(find('deploy', 'failed', new RegExp(`^release ${releases.bad.id} over ${releases.v2.id}: release ${releases.bad.id} did not become ready`))).toBeDefined();
    expect(find('rollback', 'ok', new RegExp(`^to ${releases.v3.id} from ${releases.v4.id}$`))).toBeDefined();
    expect(find('maintenance-on', 'ok', /^$/)).toBeDefined();
    expect(find('maintenance-off', 'ok', /^$/)).toBeDefined();
    // The last two: this session's, through sudo, with the key this harness logged in with.
    const fingerprint = execFileSync('ssh-keygen', ['-lf', stack.target.keyFile]).toString().split(' ')[1];
    expect(entries.slice(-2)).toEqual([
      { time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), user: stack.target.user, key: fingerprint, from: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+$/), action: 'token-create', outcome: 'ok', detail: 'token create --name audited' },
      { time: expect.any(String), user: stack.target.user, key: fingerprint, from: expect.any(String), action: 'token-revoke', outcome: 'ok', detail: 'token revoke --name audited' },
    ]);
    expect((await root(`stat -c '%U:%G %a' ${path.dirname(auditLog)} ${auditLog}`)).trim().split('\n')).toEqual(['root:adm 750', 'root:adm 640']);
  });

  test('the database password is in no command line, journal, PM2 file or log, and in no file but the environment file (root\'s, the app user reads it)', async () => {
    requireProvisioned();
    // Nor in anything an `up` showed (its commands' output as it ran, its failures), nor any token made here.
    const shown = stack.shown.map((o) => o.line).join('\n');
    expect(shown).toContain('[release]');
    for (const secret of [MOCK_PASSWORD, ...tokensMade]) expect(shown).not.toContain(secret);
    // The password goes to grep on stdin (-f -): a command line holding it would land in sudo's log, the journal.
    // (Through the journal's pipe, grep takes its patterns from the ssh session's stdin, fd 3: -f - would read the pipe.)
    const grep = (args: string) => ssh(stack.target, `sudo sh -c 'grep ${args} -f - || true'`, `${MOCK_PASSWORD}\n`);
    const files = (await grep('-rlF --binary-files=text /srv /home /etc /var /tmp /root /run /opt 2>/dev/null')).trim().split('\n').filter(Boolean);
    expect(files).toEqual([`${appHome}/shared/app.env`]);
    expect((await root(`stat -c '%a %U:%G' ${appHome}/shared/app.env`)).trim()).toBe(`640 root:${appUser}`);
    expect((await grep('-lF /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null')).trim()).toBe('');
    expect((await ssh(stack.target, `sudo sh -c 'exec 3<&0; journalctl --no-pager | grep -cF -f /dev/fd/3 || true'`, `${MOCK_PASSWORD}\n`)).trim()).toBe('0');
    const [worker] = await stack.workers();
    expect(await asApp(`pm2 env ${worker.pm_id}`)).not.toContain(MOCK_PASSWORD);
  });
});

/**
 * Sections written one after another through the proxy with a token, until `stop()`: the names acknowledged
 * (201), and what went wrong otherwise, by kind. A write not acknowledged may or may not have landed; one
 * acknowledged must survive.
 */
const writers = new Set<{ stop: () => Promise<unknown> }>();
function startWriter(prefix: string, token: string) {
  const acked: Array<{ name: string; at: number }> = [];
  const failures: Record<string, number> = {};
  let stopped = false;
  let n = 0;
  const done = (async () => {
    while (!stopped) {
      const name = `${prefix}-${++n}`;
      try {
        // A patient client: a write the app finishes after the client gave up would land unacknowledged, later.
        const r = await registerHost().web('/api/sections', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }), timeoutMs: 120000 });
        if (r.status === 201) acked.push({ name, at: Date.now() });
        else failures[`status ${r.status}`] = (failures[`status ${r.status}`] ?? 0) + 1;
      } catch (err) {
        const kind = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        failures[kind] = (failures[kind] ?? 0) + 1;
        await sleep(200);
      }
    }
  })();
  const writer = {
    acked,
    failures,
    attempted: () => n,
    async stop() {
      stopped = true;
      writers.delete(writer);
      await done;
      return { acked: acked.map((a) => a.name), attempted: n, failures };
    },
  };
  writers.add(writer);
  return writer;
}

/** The host with the register: the VM, until a new host replaces it after it is lost (below). */
let dbHost: LocalStack | undefined;
const registerHost = () => dbHost ?? stack;
/** SQL as postgres on that host, on stdin (no quoting through the login shell); rows as lines. */
const sql = async (query: string) => (await registerHost().rootScript(`cd / && sudo -u postgres psql -d cemetery -v ON_ERROR_STOP=1 -qAt <<'SQL'\n${query}\nSQL`)).trim();
/** The WAL segment being written now (holding the last commit, or later), named as the archive names it. */
const currentSegment = () => sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
/**
 * The WAL segment of a record written now, after every write before it: one that archive_timeout will switch and
 * archive by itself. The insert position alone may name a segment that archive_timeout just began and that holds only
 * what PostgreSQL marks unimportant (its own switch, standby snapshots), which no timeout switches before the next
 * checkpoint writes something (checkpoint_timeout, 5 min: xlog.c RequestXLogSwitch(true), checkpointer.c
 * CheckArchiveTimeout). A logical message is an important record; pg_walfile_name names the segment of its last byte.
 */
const segmentOfNewWal = () => sql("SELECT pg_walfile_name(pg_logical_emit_message(false, 'cemetery-e2e', 'archived by itself?'))");
/**
 * How many timed checkpoints the register host's checkpointer has woken for since PostgreSQL started (performed or
 * skipped: checkpointer.c counts num_timed before it looks whether anything was written). A segment archived by
 * itself while this has not moved was switched by archive_timeout, not by the first timed checkpoint, which comes
 * checkpoint_timeout (5 min) after a start: the proof that every start wakes the checkpointer (backups.sh), whatever
 * the machine's speed.
 */
const timedCheckpoints = async () => Number(await sql('SELECT num_timed FROM pg_stat_checkpointer'));
/** What the register host's archiver has done, as one line for a failure message or the log. */
const archiverState = async () => `${(await registerHost().root("cemetery-db info | grep '^archiving:'")).trim()}; writing ${await currentSegment()}`;
/**
 * Waits until the register host has archived `segment` (by itself: archive_timeout) and returns when it did (epoch s).
 * A timeout names the archiver's state and the end of pgBackRest's archive-push log.
 */
async function archivedThrough(segment: string, what: string, timeoutMs = 300000) {
  try {
    return await waitUntil(`${what} (${segment}) in the archive`, async () => {
      const [last, at] = (await sql("SELECT coalesce(last_archived_wal, ''), extract(epoch FROM last_archived_time) FROM pg_stat_archiver")).split('|');
      // The last file archived may be a segment, or a backup's .backup file named after the segment it began in.
      const archived = last.length === 24 ? last >= segment : last.slice(0, 24) > segment;
      return archived ? Number(at) : undefined;
    }, { timeoutMs, intervalMs: 1000 });
  } catch (err) {
    const log = await registerHost().rootScript('tail -n 15 /var/log/pgbackrest/cemetery-archive-push.log 2>&1; tail -n 15 /var/log/postgresql/postgresql-*-main.log 2>&1').catch((e: Error) => e.message);
    throw new Error(`${(err as Error).message}\n${await archiverState().catch((e: Error) => e.message)}\n${log}`);
  }
}
/** pgBackRest's retry window on the lost host's replacement (see lose the host). */
const PGBACKREST_IO_TIMEOUT_SECONDS = 10;
/** The names of the sections whose name starts with `prefix`, and a checksum of them. */
async function sectionsNamed(prefix: string) {
  const names = (await sql(`SELECT name FROM sections WHERE name LIKE '${prefix}-%' ORDER BY name`)).split('\n').filter(Boolean);
  return { names, md5: createHash('md5').update(names.join('\n')).digest('hex') };
}

describe('the register survives: on-host backups to S3 (backupBucket)', () => {
  let s3: S3Server;
  /** The lost host's replacement, from the moment it boots (stopped after the tests). */
  let newHost: LocalStack | undefined;
  /**
   * The replacement's provisioning, up to the operator's first try (restoreFrom forgotten): lose the host
   * begins it as the lost host's last writes go on (only the restore must follow the crash), and checks what it found.
   */
  let replacementFirstTry: Promise<{ host: LocalStack; refused: UpResult }> | undefined;
  let writer = '';
  const REPO = '/cemetery-backend/local';

  // A test that failed mid-way must not leave a writer writing into the next one's counts.
  afterEach(() => Promise.all([...writers].map((w) => w.stop())));
  afterAll(async () => {
    try {
      await replacementFirstTry?.catch(() => undefined); // a VM still booting is stopped too
      await newHost?.stop();
    } finally {
      await s3?.close();
    }
  });
  const requireBackups = () => {
    requireProvisioned();
    if (!s3 || !writer) throw new Error('backups were not set up (see the first failure)');
  };

  test('backupBucket set: the next up runs the backups step alone; a full backup and the WAL reach the bucket; pgBackRest\'s file is root\'s, readable by postgres, not by the app user; the timers are on', async () => {
    requireProvisioned();
    report.backups = {};
    s3 = await startS3Server('cemetery-backups');
    await stack.trustTestService(S3_TEST_NAME, s3.caPem);
    Object.assign(stack.config, {
      'cemetery-backend:backupBucket': s3.bucket,
      'cemetery-backend:backupS3Region': 'us-east-1',
      'cemetery-backend:backupS3Endpoint': s3.endpoint,
      'cemetery-backend:backupS3AccessKeyId': s3.accessKeyId,
      'cemetery-backend:backupS3SecretAccessKey': s3.secretAccessKey,
    });
    const started = Date.now();
    const steps = await up('backups on');
    (report.backups as Record<string, unknown>).firstUpSeconds = seconds(started);
    expect(ran(steps)).toEqual(['create backups']);
    expect(s3.keys(`${REPO}/backup/cemetery/`).some((k) => /\/\d{8}-\d{6}F\/backup\.manifest$/.test(k))).toBe(true);
    expect(s3.keys(`${REPO}/archive/cemetery/`).length).toBeGreaterThan(0);
    // As an operator asks, from the workstation.
    const { status, stdout: info } = await stack.operator(['db', 'info']);
    expect(status).toBe(0);
    expect(info).toMatch(/status: ok/);
    expect(info).toMatch(/full backup: \d{8}-\d{6}F/);
    expect(info).toMatch(/^archiving: last WAL [0-9A-F]{24}\S* at \S+, \d+ failed/m);
    // Each push is bounded, and leaves its lines where cemetery-db points.
    expect(await sql('SHOW archive_command')).toBe('timeout --foreground 120 pgbackrest --stanza=cemetery --log-level-file=info archive-push %p');
    expect(await root('cat /var/log/pgbackrest/cemetery-archive-push.log')).toMatch(/archive-push command end: completed successfully/);
    expect((await root('stat -c "%U:%G %a" /etc/pgbackrest/pgbackrest.conf')).trim()).toBe('root:postgres 640');
    expect(await asApp('cat /etc/pgbackrest/pgbackrest.conf 2>&1 || true')).toMatch(/Permission denied/);
    expect((await root('systemctl is-enabled cemetery-db-backup-full.timer cemetery-db-backup-incr.timer')).trim().split('\n')).toEqual(['enabled', 'enabled']);
    // A failed backup is tried again, three times at most, as systemd read the unit.
    expect((await root('systemctl show -p Restart -p RestartUSec -p StartLimitBurst cemetery-db-backup@incr.service')).trim().split('\n').sort()).toEqual(['Restart=on-failure', 'RestartUSec=15min', 'StartLimitBurst=4']);
    // Applied again, nothing changes and nothing restarts.
    expect(ran(await up('backups unchanged'))).toEqual([]);
    writer = (await root('cemetery-admin token create --name backups-writer')).trim();
    tokensMade.push(writer);
  });

  /** A new VM for the lost host's stack (its backup settings, its bucket), booted and provisioned as an operator's first `up` would. */
  async function provisionReplacement() {
    const host = await startLocalStack({
      report: (report.lostHost = {}) as Record<string, unknown>,
      log: (line) => process.stdout.write(`[new host] ${line}\n`),
      rootFrom: provisionedRoot,
      overrides: {
        ...Object.fromEntries(Object.entries(stack.config).filter(([k]) => k.startsWith('cemetery-backend:backup') || k === 'cemetery-backend:rateLimitPerMinute')),
      },
    });
    newHost = host;
    await host.trustTestService(S3_TEST_NAME, s3.caPem);
    return { host, refused: await host.tryUp('new host, restoreFrom forgotten') };
  }

  test('a write acknowledged through the API reaches the archive by itself (archive_timeout): the RPO measured', async () => {
    requireBackups();
    const before = await root('date +%s.%N');
    const r = await stack.web('/api/sections', { method: 'POST', headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'rpo-1' }) });
    expect(r.status).toBe(201);
    const segment = await segmentOfNewWal();
    const archivedAt = await archivedThrough(segment, 'the write\'s WAL segment');
    const rpo = Math.round((archivedAt - Number(before)) * 10) / 10;
    (report.backups as Record<string, unknown>).rpoSeconds = rpo;
    console.log(`RPO: the write's WAL was archived ${rpo} s after the request was sent (archive_timeout ${BACKUP_ARCHIVE_TIMEOUT_SECONDS} s; target ${BACKUP_RPO_SECONDS} s)`);
    expect(s3.keys(`${REPO}/archive/cemetery/`).some((k) => k.includes(`/${segment}-`))).toBe(true);
  });

  test('restore refuses a time before the oldest backup, and one in the future, changing nothing', async () => {
    requireBackups();
    const early = await stack.rootScript('cemetery-db restore --time 2020-01-01T00:00:00Z 2>&1; echo "exit $?"');
    expect(early).toMatch(/--time 2020-01-01T00:00:00Z is before the oldest backup ended \(\S+\): the repository keeps backups for backupRetentionDays, and the earliest time it can restore is \S+\nexit 1\n$/);
    const future = await stack.rootScript('cemetery-db restore --time 2999-01-01T00:00:00Z 2>&1; echo "exit $?"');
    expect(future).toMatch(/--time 2999-01-01T00:00:00Z is in the future\nexit 1\n$/);
    expect((await stack.web('/readyz')).status).toBe(200);
  });

  test('point in time: sections deleted by mistake come back with cemetery-db restore --time <a restore point\'s time>; nothing written after it is there', async () => {
    requireBackups();
    const w = startWriter('pitr', writer);
    await waitUntil('20 sections written', () => w.acked.length >= 20, { timeoutMs: 300000, intervalMs: 200 });
    const { acked, failures } = await w.stop();
    // Every write answered: none can land after the mark.
    expect(failures).toEqual({});
    const before = await sectionsNamed('pitr');
    expect(before.names).toEqual(expect.arrayContaining(acked));
    // A restore point, as the release step records one before each release: its time is the target.
    const marked = await root('cemetery-db mark before-mistake');
    const target = /restore point before-mistake at (\S+Z) /.exec(marked)![1];
    await sleep(1100);
    await sql("DELETE FROM sections WHERE name LIKE 'pitr-%'");
    expect((await sectionsNamed('pitr')).names).toEqual([]);
    const later = await stack.web('/api/sections', { method: 'POST', headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'after-1' }) });
    expect(later.status).toBe(201);

    const started = Date.now();
    const out = await root(`cemetery-db restore --time ${target}`);
    const restoreSeconds = seconds(started);
    expect(out).toMatch(new RegExp(`restored cemetery as of ${target} in \\d+ s`));
    const after = await sectionsNamed('pitr');
    expect(after).toEqual(before);
    expect((await sectionsNamed('after')).names).toEqual([]);
    await waitUntil('the app serving from the restored database', async () => (await stack.web('/readyz')).status === 200, { timeoutMs: 120000, intervalMs: 500 });
    expect((await stack.web('/api/sections?limit=1')).status).toBe(200);
    expect((await root('cemetery-maintenance status; true')).trim()).toMatch(/^maintenance is off/);
    const audit = await root('cemetery-audit --show 10');
    expect(audit).toContain(`action=db-restore-point outcome=ok detail="before-mistake at ${target}"`);
    expect(audit).toContain(`action=db-restore outcome=ok detail="${target}"`);
    Object.assign(report.backups as object, { pointInTime: { rows: acked.length, restoreSeconds } });
    console.log(`point in time: ${acked.length} sections deleted and restored in ${restoreSeconds} s; the one written after ${target} is gone`);
  });

  test('kill -9 under write load, of a backend (the OOM killer\'s pick) and then of the postmaster: each time PostgreSQL ends and systemd starts it again; every acknowledged write is there, and the next write reaches the archive by itself', async () => {
    requireBackups();
    const w = startWriter('crash', writer);
    await waitUntil('writes under way', () => w.acked.length >= 5, { timeoutMs: 300000, intervalMs: 200 });
    const pgData = (await stack.rootScript("pg_lsclusters --no-header | awk '{ print $6 }'")).trim();
    const postmasterPid = async () => (await root(`head -n 1 ${pgData}/postmaster.pid 2>/dev/null || true`)).trim();
    const crashes: Record<string, { backSeconds: number; writingAgainSeconds: number }> = {};
    const killedAt = Date.now();
    // A backend first (one of the app's connections; the OOM killer spares the postmaster: Debian's unit sets its
    // OOMScoreAdjust=-900), then the postmaster itself.
    for (const victim of ['backend', 'postmaster'] as const) {
      const postmaster = await postmasterPid();
      const pid = victim === 'postmaster' ? postmaster : await sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename <> 'postgres' ORDER BY backend_start LIMIT 1");
      expect(pid).toMatch(/^\d+$/);
      const ackedBefore = w.acked.length;
      const at = Date.now();
      await root(`kill -9 ${pid}`);
      await waitUntil(`a new postmaster after the ${victim}'s kill`, async () => {
        const now = await postmasterPid();
        return now !== '' && now !== postmaster && (await stack.rootScript('pg_isready -q -h 127.0.0.1; echo "$?"')).trim() === '0';
      }, { timeoutMs: 180000, intervalMs: 500 });
      const backSeconds = seconds(at);
      await waitUntil(`writes acknowledged again after the ${victim}'s kill`, () => w.acked.length >= ackedBefore + 5, { timeoutMs: 300000, intervalMs: 200 });
      crashes[victim] = { backSeconds, writingAgainSeconds: seconds(at) };
    }
    // After the backend's crash the postmaster did not restart itself (restart_after_crash off): it ended, and systemd
    // started it, which reloaded it once ready.
    expect(await stack.rootScript("grep -cF 'shutting down because \"restart_after_crash\" is off' /var/log/postgresql/postgresql-*-main.log || true")).not.toMatch(/^0\s*$/);
    const timedAtStart = await timedCheckpoints();
    const { acked, attempted, failures } = await w.stop();
    const writerStoppedSeconds = seconds(killedAt);
    // Archiving goes on after the crashes: the segment written now reaches the bucket by itself.
    const segment = await segmentOfNewWal();
    await archivedThrough(segment, 'the WAL written after the restarts');
    const archivedSeconds = seconds(killedAt);
    const stored = new Set((await sectionsNamed('crash')).names);
    const lost = acked.filter((name) => !stored.has(name));
    Object.assign(report.backups as object, { crashes: { ...crashes, acknowledged: acked.length, attempted, lost: lost.length, failures, writerStoppedSeconds, archivedSeconds } });
    console.log(`kill -9: ${Object.entries(crashes).map(([v, c]) => `the ${v}'s: PostgreSQL back in ${c.backSeconds} s, writes acknowledged again at ${c.writingAgainSeconds} s`).join('; ')}; the writer stopped at ${writerStoppedSeconds} s, ${segment} archived at ${archivedSeconds} s; ${acked.length} of ${attempted} writes acknowledged, ${lost.length} lost; failures ${JSON.stringify(failures)}`);
    if (archivedSeconds - writerStoppedSeconds > BACKUP_RPO_SECONDS) {
      console.log(`kill -9: archiving took ${Math.round(archivedSeconds - writerStoppedSeconds)} s after the writes:\n${await registerHost().rootScript("grep -hE 'ERROR|WARN|archive-push command (begin|end)' /var/log/pgbackrest/*archive-push*.log | tail -n 20; grep -hiE 'archiv|terminat|ready to accept|checkpoint|SIGHUP' /var/log/postgresql/postgresql-*-main.log | tail -n 25")}`);
    }
    expect(lost).toEqual([]);
    // archive_timeout switched it, before the checkpointer's first timed wake since the last start.
    expect(await timedCheckpoints()).toBe(timedAtStart);
  });

  test('the S3 secret key is in no command line, journal or log, in nothing an up showed, and in no file but pgBackRest\'s', async () => {
    requireBackups();
    const shown = stack.shown.map((o) => o.line).join('\n');
    expect(shown).toContain('[backups]');
    expect(shown).not.toContain(s3.secretAccessKey);
    const grep = (args: string) => ssh(stack.target, `sudo sh -c 'grep ${args} -f - || true'`, `${s3.secretAccessKey}\n`);
    expect((await grep('-rlF --binary-files=text /srv /home /etc /var /tmp /root /run /opt 2>/dev/null')).trim().split('\n')).toEqual(['/etc/pgbackrest/pgbackrest.conf']);
    expect((await grep('-lF /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null')).trim()).toBe('');
    expect((await ssh(stack.target, `sudo sh -c 'exec 3<&0; journalctl --no-pager | grep -cF -f /dev/fd/3 || true'`, `${s3.secretAccessKey}\n`)).trim()).toBe('0');
  });

  test('after a reboot the release that served before serves again, with the same limits, and backups go on: archiving on, a write in the archive, both backup timers waiting for their next run (how long it took is reported)', async () => {
    requireBackups();
    const releaseOf = (workers: Awaited<ReturnType<LocalStack['workersServing']>>) => [...new Set(workers.map((w) => `${w.id} ${w.build} ${w.cwd}`))];
    const serving = releaseOf(await stack.workersServing());
    expect(serving).toHaveLength(1);
    const before = Date.now();
    await stack.reboot();
    const sshBack = Date.now();
    await waitUntil('/readyz through the proxy after reboot', async () => (await stack.web('/readyz').catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 300000, intervalMs: 500 });
    const sshToServingSeconds = seconds(sshBack);
    await checkHost();
    expect(releaseOf(await stack.workersServing())).toEqual(serving);
    expect(await sql('SHOW archive_mode')).toBe('on');
    const timedAtStart = await timedCheckpoints();
    const r = await stack.web('/api/sections', { method: 'POST', headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'rebooted-1' }) });
    expect(r.status).toBe(201);
    const written = Date.now() / 1000;
    // By itself: archive_timeout switched the write's segment, before the checkpointer's first timed wake (the unit's
    // reload woke it once PostgreSQL was ready; without it, the write waited up to 5 min: CI run 46, 255 s).
    const archivedAt = await archivedThrough(await segmentOfNewWal(), 'a write after the reboot');
    expect(await timedCheckpoints()).toBe(timedAtStart);
    // Enabled, active, and with a next run: systemd leaves NextElapseUSecRealtime empty for a timer that will not fire.
    const timers = (await stack.rootScript('for t in full incr; do u=cemetery-db-backup-$t.timer; echo "$u $(systemctl is-enabled $u) $(systemctl is-active $u) $([ -n "$(systemctl show -p NextElapseUSecRealtime --value $u)" ] && echo next-run-set)"; done')).trim().split('\n');
    expect(timers).toEqual(['cemetery-db-backup-full.timer enabled active next-run-set', 'cemetery-db-backup-incr.timer enabled active next-run-set']);
    // What the boot logged (PM2's resurrect, PostgreSQL's start, the timers) holds neither secret.
    for (const secret of [MOCK_PASSWORD, s3.secretAccessKey]) {
      expect((await ssh(stack.target, `sudo sh -c 'exec 3<&0; journalctl -b --no-pager | grep -cF -f /dev/fd/3 || true'`, `${secret}\n`)).trim()).toBe('0');
    }
    report.reboot = { rebootToSshSeconds: Math.round((sshBack - before) / 100) / 10, sshToServingSeconds, writeArchivedSeconds: Math.round((archivedAt - written) * 10) / 10 };
    console.log(`reboot: SSH back after ${(report.reboot as { rebootToSshSeconds: number }).rebootToSshSeconds} s, serving ${sshToServingSeconds} s later; a write was in the archive ${Math.round((archivedAt - written) * 10) / 10} s after it was acknowledged`);
  });

  test('lose the host: a new VM (the first host\'s packages, a blank data disk, host keys of its own) is refused the lost host\'s bucket until restoreFrom latest is set; then, through a bucket outage during recovery, it has every section acknowledged before the crash (but the last RPO\'s), and serves', async () => {
    requireBackups();
    const w = startWriter('lost', writer);
    await waitUntil('writes under way', () => w.acked.length >= 5, { timeoutMs: 300000, intervalMs: 200 });
    // A segment holding writes that must survive: the archive fails as the new host's recovery asks for it.
    const lostFrom = await currentSegment();
    // The new VM boots and is provisioned meanwhile (its own ports and state), up to the operator's first try.
    replacementFirstTry = provisionReplacement();
    replacementFirstTry.catch(() => undefined); // awaited below
    // Writes go on while the host dies: the ones acknowledged a whole RPO before the crash must survive.
    await sleep((BACKUP_RPO_SECONDS + 15) * 1000);
    const lostStack = stack;
    const archiverAtCrash = await archiverState();
    const crashAt = Date.now();
    lostStack.crash();
    const { acked } = await w.stop();
    const mustSurvive = w.acked.filter((a) => a.at <= crashAt - BACKUP_RPO_SECONDS * 1000).map((a) => a.name);
    // The operator's first try forgot restoreFrom: the bucket holds the lost host's backups, which a new database must
    // not overwrite. The up stopped at the backups step, saying what to set, and PostgreSQL does not archive.
    const { host: replacement, refused } = await replacementFirstTry;
    // Its disk had PostgreSQL installed and its new data disk no cluster: the postgres step made one (its output is not
    // shown: it reads the password), on that disk, which replaced the first host's in fstab.
    expect((await replacement.rootScript("pg_lsclusters --no-header | awk '{ print $1, $2, $4, $6 }'; grep -c ' /srv/cemetery-data ' /etc/fstab; findmnt -n -o SOURCE /var/lib/postgresql")).trim().split('\n')).toEqual([
      '17 main online /var/lib/postgresql/17/main',
      '1',
      '/dev/vdb[/postgresql/lib]',
    ]);
    expect(refused.failed?.name).toMatch(/-backups$/);
    expect(refused.failed?.message).toMatch(/holds the backups of another database \(a lost host's\?\), and this host's is new: set restoreFrom latest/);
    expect((await replacement.rootScript("cd / && sudo -u postgres psql -qAt -c 'SHOW archive_mode'; ls /etc/postgresql/*/main/conf.d/ | grep -c cemetery-backups || true")).trim().split('\n')).toEqual(['off', '0']);
    dbHost = replacement;
    replacement.config['cemetery-backend:restoreFrom'] = 'latest';
    // An outage of the bucket longer than pgBackRest's retries, from the new host's first request for that segment:
    // the restore waits it out instead of ending recovery early (cemetery-archive-get). The test shortens the retries
    // (io-timeout, 60 s by default, in pgBackRest's include directory) so the outage can be short: the same path.
    await replacement.rootScript(`set -e
mkdir -p /etc/pgbackrest/conf.d
printf '[global]\\nio-timeout=${PGBACKREST_IO_TIMEOUT_SECONDS}\\n' > /etc/pgbackrest/conf.d/e2e-io-timeout.conf
chown root:postgres /etc/pgbackrest/conf.d/e2e-io-timeout.conf
chmod 0640 /etc/pgbackrest/conf.d/e2e-io-timeout.conf`);
    const outage = s3.outageFrom(new RegExp(`^(GET|HEAD) .*/archive/cemetery/.*${lostFrom}`), 3 * PGBACKREST_IO_TIMEOUT_SECONDS * 1000);
    const started = Date.now();
    try {
      await replacement.up('new host, restoreFrom latest');
    } finally {
      s3.disarm();
    }
    const upSeconds = seconds(started);
    const outageSeen = await Promise.race([outage, sleep(0).then(() => undefined)]);
    // Where the archive ended and where the new host's recovery stopped, for the log (and any failure below).
    const segments = s3.keys(`${REPO}/archive/cemetery/`).map((k) => /\/([0-9A-F]{24})-/.exec(k)?.[1]).filter(Boolean);
    console.log(`lose the host: at the crash the old host had ${archiverAtCrash}; the repository's newest segments: ${segments.slice(-4).join(' ')}`);
    const recoveryLog = await replacement.rootScript("grep -hE 'redo (starts|done)|selected new timeline|archive recovery complete|consistent recovery|cemetery-archive-get|startup process' /var/log/postgresql/postgresql-*-main.log | tail -n 12");
    console.log(`lose the host: the bucket's outage from the request for ${lostFrom}: ${outageSeen ? `${outageSeen.refused} requests refused` : 'never began'}\n${recoveryLog}`);
    // pgBackRest retried through it (more than the request that began it was refused), then gave up on that segment.
    expect(outageSeen?.refused).toBeGreaterThan(1);
    const unreadable = await replacement.rootScript(`grep -cF 'cemetery-archive-get: pgBackRest could not read ${lostFrom} from the archive' /var/log/postgresql/postgresql-*-main.log || true`);
    expect(Number(unreadable.trim())).toBeGreaterThan(0);
    const names = new Set((await sectionsNamed('lost')).names);
    const missing = mustSurvive.filter((n) => !names.has(n));
    const lostAcked = acked.filter((n) => !names.has(n));
    Object.assign(report.backups as object, { lostHost: { acknowledged: acked.length, mustSurvive: mustSurvive.length, present: acked.length - lostAcked.length, lostAcknowledged: lostAcked.length, upSeconds, outageRefused: outageSeen?.refused ?? 0 } });
    console.log(`lose the host: ${acked.length} writes acknowledged, ${lostAcked.length} of them lost (the last ${BACKUP_RPO_SECONDS} s may be); the new host's up took ${upSeconds} s`);
    expect(missing).toEqual([]);
    expect((await replacement.web('/readyz')).status).toBe(200);
    const page = await replacement.web('/api/sections?limit=1');
    expect(page.status).toBe(200);
    expect(JSON.parse(page.body).total).toBeGreaterThanOrEqual(names.size);
    const audit = await replacement.root('cemetery-audit --show 20');
    expect(audit).toMatch(/action=db-restore outcome=ok detail="latest"/);
    // The first release on the new host came after a restore point.
    expect(audit).toMatch(/action=db-restore-point outcome=ok detail="before-r-[0-9a-f]{12} at \S+Z"/);
  });

  test('pruning honours backupRetentionDays: with the full backups back-dated (the newest inside the window, the rest before it), the timer\'s next backup expires every full older than the newest one before the window, with the WAL only they needed; restore then refuses a time before the window\'s start', async () => {
    requireBackups();
    // On the lost host's replacement, whose repository holds every full backup the scenarios took: the first host's
    // first, the one after its point-in-time restore (a new timeline), and the replacement's own.
    const host = registerHost();
    type Backup = { label: string; type: string; timestamp: { start: number; stop: number }; archive: { start: string; stop: string } };
    const backups = async () => (JSON.parse(await host.rootScript('cd / && sudo -u postgres pgbackrest --stanza=cemetery --output=json info')) as Array<{ backup: Backup[] }>)[0].backup;
    const labels = (list: Backup[]) => list.map((b) => b.label);
    const walSegments = () => s3.keys(`${REPO}/archive/cemetery/`).map((k) => /\/([0-9A-F]{24})-/.exec(k)?.[1]).filter((s): s is string => !!s);
    const retentionDays = Number((await host.root("sed -n 's/^repo1-retention-full=//p' /etc/pgbackrest/pgbackrest.conf")).trim());
    expect(retentionDays).toBeGreaterThanOrEqual(1);
    const fulls = (await backups()).filter((b) => b.type === 'full');
    expect(fulls.length).toBeGreaterThanOrEqual(3);
    // Until now every backup ended inside the window: the expire that follows each backup (pgBackRest's expire-auto)
    // ran and kept them all.
    expect(await host.rootScript("grep -c 'time-based archive retention not met' /var/log/pgbackrest/cemetery-expire.log || true")).not.toMatch(/^0\s*$/);

    // The newest full ended half the window ago, the one before a day before the window began, older ones two days
    // before (an hour apart, in their order); an incremental or differential moves with its full.
    const now = Number((await host.root('date +%s')).trim());
    const DAY = 86400;
    const endAt = (i: number) => i === fulls.length - 1 ? now - (retentionDays * DAY) / 2
      : i === fulls.length - 2 ? now - (retentionDays + 1) * DAY
      : now - (retentionDays + 2) * DAY - (fulls.length - 2 - i) * 3600;
    const fullShift = new Map(fulls.map((b, i) => [b.label, b.timestamp.stop - endAt(i)]));
    const shifts = Object.fromEntries((await backups()).map((b) => [b.label, fullShift.get(b.label.split('_')[0])!]));
    for (const name of ['backup.info', 'backup.info.copy']) {
      const key = `${REPO}/backup/cemetery/${name}`;
      const text = s3.read(key);
      // This rendering of pgBackRest's checksum gives the one pgBackRest wrote.
      expect(infoChecksum(text)).toBe(statedChecksum(text));
      s3.write(key, backdated(text, shifts));
    }
    const dated = (await backups()).filter((b) => b.type === 'full');
    expect(dated.map((b) => b.timestamp.stop)).toEqual(fulls.map((_, i) => endAt(i)));

    const kept = fulls.slice(-2);
    const expired = fulls.slice(0, -2);
    const windowStart = kept[0].archive.start;
    const walBefore = walSegments();
    expect(walBefore.filter((s) => s < windowStart).length).toBeGreaterThan(0);
    // As the daily timer does: an incremental backup, then pgBackRest's expire.
    const started = Date.now();
    await host.root('systemctl start cemetery-db-backup@incr.service').catch(async (err: Error) => {
      const why = await host.rootScript('journalctl -u cemetery-db-backup@incr.service -n 30 --no-pager; tail -n 30 /var/log/pgbackrest/cemetery-expire.log /var/log/pgbackrest/cemetery-backup.log').catch((e: Error) => e.message);
      throw new Error(`${err.message}\n${why}`);
    });
    const backupSeconds = seconds(started);
    const after = await backups();
    expect(labels(after.filter((b) => b.type === 'full'))).toEqual(labels(kept));
    expect(after.filter((b) => b.type === 'incr' && b.label.startsWith(`${kept[1].label}_`)).length).toBeGreaterThan(0);
    for (const b of expired) expect(s3.keys(`${REPO}/backup/cemetery/${b.label}/`)).toEqual([]);
    for (const b of kept) expect(s3.keys(`${REPO}/backup/cemetery/${b.label}/`)).toContain(`${REPO.slice(1)}/backup/cemetery/${b.label}/backup.manifest`);
    // The WAL before the oldest kept backup's start is gone; from it on (what a restore to any later time needs), kept.
    const walAfter = walSegments();
    expect(walAfter.filter((s) => s < windowStart)).toEqual([]);
    expect(walAfter).toEqual(expect.arrayContaining(walBefore.filter((s) => s >= windowStart)));
    // The restore window now begins where the oldest kept backup ended.
    const iso = (epoch: number) => new Date(epoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const refused = await host.rootScript(`cemetery-db restore --time ${iso(endAt(fulls.length - 2) - 3600)} 2>&1; echo "exit $?"`);
    expect(refused).toContain(`is before the oldest backup ended (${iso(endAt(fulls.length - 2))})`);
    expect(refused).toMatch(/\nexit 1\n$/);
    expect((await host.web('/readyz')).status).toBe(200);
    const expireLog = await host.rootScript("grep -hE 'expire time-based backup|remove archive' /var/log/pgbackrest/cemetery-expire.log | tail -n 4");
    Object.assign(report.backups as object, { pruning: { retentionDays, fullsBefore: fulls.length, expired: expired.length, walSegmentsRemoved: walBefore.length - walAfter.filter((s) => walBefore.includes(s)).length, backupSeconds } });
    console.log(`pruning (${retentionDays}-day retention): ${expired.length} of ${fulls.length} full backups expired (${labels(expired).join(', ')}), ${walBefore.filter((s) => s < windowStart).length} WAL segments before ${windowStart} removed; the timer's backup took ${backupSeconds} s\n${expireLog}`);
  });

  test('the disk under the register full: writes answer 503 saying so, reads are served, PostgreSQL runs on, nothing is lost; once space is freed writes work again', async () => {
    requireBackups();
    // On the new host (the lost-host scenario's): no restore replays this host's tablespace afterwards.
    const host = dbHost!;
    expect(host).toBeDefined();
    // A small filesystem of its own under the sections table (a tablespace), as a data volume that fills up.
    const mnt = '/mnt/cemetery-e2e-small';
    await host.rootScript(`set -e
fallocate -l 48M /var/lib/cemetery-e2e-small.img
mkfs.ext4 -q -m 0 /var/lib/cemetery-e2e-small.img
mkdir -p ${mnt}
mount -o loop /var/lib/cemetery-e2e-small.img ${mnt}
install -d -o postgres -g postgres -m 0700 ${mnt}/pg
`);
    await sql(`CREATE TABLESPACE e2e_small LOCATION '${mnt}/pg'`);
    await sql('ALTER TABLE sections SET TABLESPACE e2e_small');
    const pgData = (await host.rootScript("pg_lsclusters --no-header | awk '{ print $6 }'")).trim();
    const postmaster = (await host.root(`head -n 1 ${pgData}/postmaster.pid`)).trim();
    const before = await sql("SELECT count(*) || ' ' || md5(string_agg(name, ',' ORDER BY id)) FROM sections");
    await host.rootScript(`dd if=/dev/zero of=${mnt}/fill bs=1M status=none || true; sync; df --output=avail -B1 ${mnt} | tail -n 1`);
    const post = (name: string) => host.web('/api/sections', { method: 'POST', headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
    // Rows fit on the table's last page until it is full; the next needs a new page, which the disk cannot give.
    const written: string[] = [];
    let full: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 1; i <= 400 && !full; i++) {
      const r = await post(`full-${i}`);
      if (r.status === 201) written.push(`full-${i}`);
      else if (r.status === 503) full = r;
      else throw new Error(`POST full-${i}: ${r.status} ${r.body}`);
    }
    expect(full).toBeDefined();
    expect(full!.headers['retry-after']).toBe('60');
    expect(JSON.parse(full!.body).message).toBe('the database is out of disk space: nothing was written; reads still work');
    expect((await host.web('/api/sections?limit=5')).status).toBe(200);
    expect((await host.web('/readyz')).status).toBe(200);
    // An error, not a crash: the same postmaster.
    expect((await host.root(`head -n 1 ${pgData}/postmaster.pid`)).trim()).toBe(postmaster);

    await host.root(`rm ${mnt}/fill`);
    expect((await post('freed-1')).status).toBe(201);
    const [count] = before.split(' ');
    expect(await sql('SELECT count(*) FROM sections')).toBe(String(Number(count) + written.length + 1));
    expect(await sql("SELECT count(*) || ' ' || md5(string_agg(name, ',' ORDER BY id)) FROM sections WHERE name NOT LIKE 'full-%' AND name <> 'freed-1'")).toBe(before);
    expect((await sectionsNamed('full')).names.sort()).toEqual([...written].sort());
    Object.assign(report.backups as object, { diskFull: { writtenBeforeFull: written.length } });
    console.log(`disk full: ${written.length} sections written before the table needed a page the disk did not have; then 503, reads served`);
  });
});

// Last: the single host's VMs are gone by now, so the fleet's two have the machine to themselves. (Booting them
// during the replacement host's last two scenarios cost time: CI 53, those took 182 s instead of 42 s.)
fleetScenarios({
  report,
  provisionedRoot: () => {
    requireProvisioned();
    return provisionedRoot;
  },
});
