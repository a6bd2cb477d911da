/**
 * Every shell file in scripts/ passes shellcheck. CI installs it (.ci/run) and
 * requires it; on a machine without it these checks are skipped with a notice.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './support/db';
import { parseLogfmt } from './support/logfmt';

const shellFiles = ['scripts/host', 'scripts', 'scripts/operator']
  .flatMap((dir) => readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith('.sh')).map((f) => path.join(dir, f)));

test('there are host scripts to check', () => {
  expect(shellFiles).toEqual(expect.arrayContaining(['scripts/host/lib.sh', 'scripts/host/system-limits.sh', 'scripts/host/nodejs.sh']));
});

const haveShellcheck = !spawnSync('shellcheck', ['--version']).error;
if (!haveShellcheck && process.env.CI) throw new Error('shellcheck is required in CI (.ci/run installs it)');
if (!haveShellcheck) console.warn('shellcheck is not installed: skipping the shell lint (apt-get install shellcheck)');

(haveShellcheck ? test.each(shellFiles) : test.skip.each(shellFiles))('%s passes shellcheck', (file) => {
  const result = spawnSync('shellcheck', ['-x', '-P', 'SCRIPTDIR', file], { cwd: ROOT, encoding: 'utf8' });
  expect(result.stdout + result.stderr).toBe('');
  expect(result.status).toBe(0);
});

// Libraries the steps source: they run in their sourcer's strict mode.
const LIBRARIES: Record<string, string> = { 'lib.sh': 'every step', 'caddyfile.sh': 'proxy.sh', 'postgres-lib.sh': 'postgres.sh, backups.sh and cemetery-db' };
test.each(shellFiles.filter((f) => !(path.basename(f) in LIBRARIES)))('%s runs with strict mode', (file) => {
  const source = readFileSync(path.join(ROOT, file), 'utf8');
  expect(/set -euo pipefail|source "\$\(dirname "\$0"\)\/lib\.sh"/.test(source)).toBe(true);
});

test('caddyfile.sh is sourced by proxy.sh, after lib.sh (strict mode)', () => {
  const proxy = readFileSync(path.join(ROOT, 'scripts/host/proxy.sh'), 'utf8');
  const lib = proxy.indexOf('source "$(dirname "$0")/lib.sh"');
  expect(lib).toBeGreaterThanOrEqual(0);
  expect(proxy.indexOf('source "$(dirname "$0")/caddyfile.sh"')).toBeGreaterThan(lib);
});

describe('a failing host step names itself', () => {
  const runStep = (script: string, args: string[], input = '') =>
    spawnSync('bash', [path.join(ROOT, 'scripts', 'host', script), ...args], { encoding: 'utf8', input });

  test('a missing argument', () => {
    const r = runStep('system-limits.sh', ['APP_USER=cemetery']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('cemetery-backend host step "system-limits" failed: missing argument NOFILE=...\n');
  });

  test('an argument that is not KEY=VALUE', () => {
    const r = runStep('app-user.sh', ['--user', 'cemetery']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`cemetery-backend host step "app-user" failed: bad argument '--user' (expected KEY=VALUE)`);
  });

  test('a secret step without its secret on stdin changes nothing and says why', () => {
    const r = runStep('postgres.sh', ['DB_NAME=cemetery', 'DB_USER=cemetery'], '');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('cemetery-backend host step "postgres" failed: expected the database password (16+ letters and digits) on stdin');
  });

  test('the backups step without its credentials on stdin changes nothing and says which line is missing', () => {
    const args = ['STANZA=cemetery', 'S3_BUCKET=b', 'S3_ENDPOINT=s3.example.org', 'S3_PORT=443', 'S3_REGION=eu-central-1', 'S3_URI_STYLE=path', 'S3_CREDENTIALS=stdin', 'REPO_PATH=/cemetery-backend/dev', 'RETENTION_DAYS=1', 'ARCHIVE_TIMEOUT=30', 'DB_NAME=cemetery', 'DB_USER=cemetery', 'AUDIT_LOG=/nonexistent/audit.log', 'MAINTENANCE_FLAG=/nonexistent/flag'];
    const r = runStep('backups.sh', args, 'Password0123456789Abc\nAKIAEXAMPLE\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('cemetery-backend host step "backups" failed: expected the S3 secret access key on the third line of stdin\n');
    // With the instance profile's credentials (target aws), a key pair on stdin is a mistake, refused as one.
    const aws = runStep('backups.sh', args.map((a) => (a === 'S3_CREDENTIALS=stdin' ? 'S3_CREDENTIALS=instance-profile' : a)), 'Password0123456789Abc\nAKIAEXAMPLE\nsecretsecret\n');
    expect(aws.status).toBe(1);
    expect(aws.stderr).toBe('cemetery-backend host step "backups" failed: S3_CREDENTIALS is instance-profile, and stdin holds an S3 key pair too: expected none\n');
  });

  test('a command that fails inside a step is reported with the step, the line and the command', () => {
    // useradd refuses the name, so nothing is created on the machine running the test.
    const r = runStep('app-user.sh', ['APP_USER=not a valid name', 'APP_HOME=/nonexistent-cemetery-home']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/cemetery-backend host step "app-user" failed \(line \d+: useradd .*\)/);
  });
});

describe('host steps never assign to their arguments (lib.sh makes each KEY=VALUE read-only)', () => {
  const { hostSteps, provisioningLayout, HOST_SCRIPTS_DIR } = require('../infra/host-steps') as typeof import('../infra/host-steps');
  const { balanced, parseProjectConfig } = require('../infra/config') as typeof import('../infra/config');
  const { stackFiles, withUserSecrets } = require('./support/pulumi-mocks') as typeof import('./support/pulumi-mocks');
  // Every argument any stack file passes to each script.
  const argsByScript = new Map<string, Set<string>>();
  for (const [stack, raw] of Object.entries(stackFiles())) {
    const all = withUserSecrets(raw);
    // Every optional argument set too: domainName and (where Caddy holds the certificate, not a balancer) acmeEmail here, the next key below.
    const withDomain = { 'cemetery-backend:domainName': 'example.org', ...all };
    const cfg = balanced(parseProjectConfig(withDomain, stack)) ? parseProjectConfig(withDomain, stack) : parseProjectConfig({ ...withDomain, 'cemetery-backend:acmeEmail': 'ops@example.org' }, stack);
    if (cfg.network === 'provideShared') continue;
    for (const step of hostSteps({ ...cfg, sshNextPublicKey: cfg.sshPublicKey?.replace('test@', 'next@') }, 'r-000000000000', provisioningLayout(cfg.sshUser, 'r-000000000000'), 'dev')) {
      const names = argsByScript.get(step.script) ?? new Set<string>();
      Object.keys(step.args).forEach((k) => names.add(k));
      argsByScript.set(step.script, names);
    }
  }

  test.each([...argsByScript.keys()])('%s', (script) => {
    const code = readFileSync(path.join(HOST_SCRIPTS_DIR, script), 'utf8')
      .split('\n')
      .filter((line: string) => !line.trim().startsWith('#'))
      .join('\n');
    const assigned = [...argsByScript.get(script)!].filter((name) => new RegExp(`(^|[\\s;(&|])(readonly |local |declare [-a-z]+ )?${name}=`, 'm').test(code));
    expect(assigned).toEqual([]);
  });
});

describe("pm2-module-setting.cjs: which of a module's settings differ from the stack's (the pm2-logrotate step sets only those)", () => {
  const helper = readFileSync(path.join(ROOT, 'scripts', 'host', 'pm2-module-setting.cjs'), 'utf8');
  const differing = (pm2Home: string, ...pairs: string[]) => {
    // As the step runs it: the program on stdin.
    const r = spawnSync(process.execPath, ['-', 'pm2-logrotate', ...pairs], { encoding: 'utf8', input: helper, env: { ...process.env, PM2_HOME: pm2Home } });
    return { status: r.status, lines: r.stdout.split('\n').filter(Boolean), stderr: r.stderr };
  };
  const wanted = ['max_size=10M', 'retain=30', 'compress=true', 'rotateInterval=0 0 * * *'];
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'cemetery-pm2-home-'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  test('nothing stored yet: every setting', () => {
    expect(differing(home, ...wanted)).toEqual({ status: 0, lines: wanted, stderr: '' });
  });

  test('only the ones PM2 stored otherwise (pmx keeps some as booleans and numbers); a value with spaces stays whole', () => {
    const stored = { 'pm2-logrotate': { max_size: '10M', retain: 7, compress: true, rotateInterval: '0 * * * *' }, other: { retain: 30 } };
    writeFileSync(path.join(home, 'module_conf.json'), JSON.stringify(stored));
    expect(differing(home, ...wanted)).toEqual({ status: 0, lines: ['retain=30', 'rotateInterval=0 0 * * *'], stderr: '' });
  });

  test('a call without key=value pairs is refused, not answered with nothing', () => {
    expect(differing(home, 'max_size')).toEqual({ status: 2, lines: [], stderr: 'usage: node - <module> <key>=<value>... < pm2-module-setting.cjs\n' });
    expect(differing(home).status).toBe(2);
  });
});

// As root (CI runs as root): they refuse anyone else, and set owners.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;
asRoot('the operator host commands: cemetery-audit and cemetery-maintenance (installed by the release step)', () => {
  const HOST = path.join(ROOT, 'scripts', 'host');
  let dir: string;
  let env: Record<string, string>;
  // Installed, each file follows a line that sets where it keeps its state (release.sh); here the environment sets it.
  const run = (command: 'cemetery-audit' | 'cemetery-maintenance', args: string[], extra: Record<string, string> = {}) => {
    const r = spawnSync('bash', [path.join(HOST, `${command}.sh`), ...args], { encoding: 'utf8', env: { ...env, ...extra } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const lines = () => readFileSync(env.AUDIT_LOG, 'utf8').trim().split('\n');
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cemetery-host-commands-'));
    writeFileSync(path.join(dir, 'cemetery-audit'), `#!/bin/bash\nexec bash ${HOST}/cemetery-audit.sh "$@"\n`, { mode: 0o755 });
    env = { PATH: `${dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`, AUDIT_LOG: path.join(dir, 'log', 'audit.log'), MAINTENANCE_FLAG: path.join(dir, 'flag', 'maintenance') };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('an entry says when, who (the sudo user, the fingerprint of the key from sshd\'s SSH_USER_AUTH, the address), what and the outcome, on one line whatever the detail holds', () => {
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'key')]);
    const pub = readFileSync(path.join(dir, 'key.pub'), 'utf8').trim().split(' ');
    writeFileSync(path.join(dir, 'auth'), `publickey ${pub[0]} ${pub[1]}\n`);
    const fingerprint = spawnSync('ssh-keygen', ['-lf', path.join(dir, 'key.pub')], { encoding: 'utf8' }).stdout.split(' ')[1];
    const detail = 'token create --name "x y"\\ \nsecond line';
    const session = { SUDO_USER: 'admin', SSH_USER_AUTH: path.join(dir, 'auth'), SSH_CONNECTION: '10.0.2.2 51234 10.0.2.15 22' };
    expect(run('cemetery-audit', ['token-create', 'ok', detail], session)).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(run('cemetery-audit', ['deploy', 'failed'])).toMatchObject({ status: 0 });
    const [first, second] = lines();
    expect(parseLogfmt(first)).toEqual({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), user: 'admin', key: fingerprint, from: '10.0.2.2', action: 'token-create', outcome: 'ok', detail: 'token create --name "x y"\\  second line' });
    // Not through sshd: no key, no address.
    expect(parseLogfmt(second)).toMatchObject({ user: 'root', key: 'unknown', from: 'local', action: 'deploy', outcome: 'failed', detail: '' });
    expect(spawnSync('stat', ['-c', '%U:%G %a', path.dirname(env.AUDIT_LOG), env.AUDIT_LOG], { encoding: 'utf8' }).stdout.trim().split('\n')).toEqual(['root:adm 750', 'root:adm 640']);
    expect(run('cemetery-audit', ['--show', '1']).stdout).toBe(`${second}\n`);
  });

  test('cemetery-audit refuses a call it cannot record', () => {
    expect(run('cemetery-audit', ['deploy'])).toMatchObject({ status: 2, stderr: 'usage: cemetery-audit ACTION OUTCOME [DETAIL] | cemetery-audit --show [N]\n' });
    expect(run('cemetery-audit', ['--show', 'all']).status).toBe(2);
  });

  test('maintenance on, status, off: the flag, exit codes scripts can rely on, one audit entry per switch', () => {
    expect(run('cemetery-maintenance', ['status'])).toEqual({ status: 0, stdout: 'maintenance is off: the proxy serves the app\n', stderr: '' });
    expect(run('cemetery-maintenance', ['on'])).toMatchObject({ status: 0, stdout: 'maintenance is on: the proxy answers 503 (Retry-After) to all but /healthz and /readyz\n' });
    expect(spawnSync('stat', ['-c', '%U %a', path.dirname(env.MAINTENANCE_FLAG)], { encoding: 'utf8' }).stdout.trim()).toBe('root 755');
    expect(run('cemetery-maintenance', ['on'])).toMatchObject({ status: 0, stdout: 'maintenance is already on\n' });
    expect(run('cemetery-maintenance', ['status'])).toMatchObject({ status: 3, stdout: expect.stringMatching(/^maintenance is on since \S+Z: the proxy answers 503\n$/) });
    expect(run('cemetery-maintenance', ['off'])).toMatchObject({ status: 0, stdout: 'maintenance is off: the proxy serves the app\n' });
    expect(run('cemetery-maintenance', ['off'])).toMatchObject({ status: 0, stdout: 'maintenance is already off\n' });
    expect(lines().map((l) => [parseLogfmt(l).action, parseLogfmt(l).outcome])).toEqual([['maintenance-on', 'ok'], ['maintenance-off', 'ok']]);
    expect(run('cemetery-maintenance', ['onn'])).toMatchObject({ status: 2, stderr: 'usage: cemetery-maintenance on|off|status\n' });
    expect(run('cemetery-maintenance', ['on', 'now']).status).toBe(2);
    expect(run('cemetery-maintenance', ['--help'])).toMatchObject({ status: 0, stdout: 'usage: cemetery-maintenance on|off|status\n' });
  });
});

describe('cemetery-archive-get (restore_command during a restore)', () => {
  // The statuses pgBackRest's archive-get exits with, from a stand-in on PATH (pgBackRest itself runs on the VM tier).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cemetery-archive-get-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'pgbackrest'), '#!/bin/sh\n[ "$1 $2 $3 $4" = "--stanza=cemetery archive-get 000000020000000000000009 pg_wal/RECOVERYXLOG" ] || exit 97\nexit "$EXIT_AS"\n', { mode: 0o755 });
  // Built as backups.sh installs it: its stanza's line, then the script.
  const command = path.join(dir, 'cemetery-archive-get');
  const mark = path.join(dir, 'unreadable');
  writeFileSync(command, `#!/bin/bash\nSTANZA=cemetery\nUNREADABLE_MARK=${mark}\n${readFileSync(path.join(ROOT, 'scripts/host/cemetery-archive-get.sh'), 'utf8')}`, { mode: 0o755 });
  const getWal = (exitAs: number) =>
    spawnSync(command, ['000000020000000000000009', 'pg_wal/RECOVERYXLOG'], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, EXIT_AS: String(exitAs) } });

  test.each([
    [0, 'the file restored'],
    [1, 'not in the repository: the end of the archive'],
    [143, 'a SIGTERM (fast shutdown): PostgreSQL exits cleanly'],
  ])('passes %i on (%s)', (status, _why) => {
    rmSync(mark, { force: true });
    expect(getWal(status)).toMatchObject({ status, stderr: '' });
    expect(existsSync(mark)).toBe(false);
  });

  test.each([[101, 'service: an HTTP 5xx'], [49, 'host-connect'], [99, 'any other']])('turns an error (%i, %s) into 126, which stops recovery instead of ending it, and says so', (status) => {
    rmSync(mark, { force: true });
    const r = getWal(status);
    expect(r.status).toBe(126);
    // The mark cemetery-db restore starts PostgreSQL again for.
    expect(existsSync(mark)).toBe(true);
    expect(r.stderr).toBe(`cemetery-archive-get: pgBackRest could not read 000000020000000000000009 from the archive (exit ${status}; see /var/log/pgbackrest): recovery stops here instead of ending early, and goes on when PostgreSQL is started again\n`);
  });
});
