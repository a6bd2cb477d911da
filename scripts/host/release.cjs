#!/usr/bin/env node
// cemetery-backend releases on the host. Installed as /usr/local/sbin/cemetery-release
// (root's, outside the app user's home) by the release step (scripts/host/release.sh),
// which runs `deploy`; by hand:
//
//   sudo cemetery-release list
//   sudo cemetery-release rollback [<id>]   (default: the previous live release)
//
// Every switch is health-gated: the release boots on a spare loopback port and
// must answer /readyz (database reachable, its migrations applied) before
// `current` moves and PM2 reloads; if it does not, nothing switches. After a
// switch PM2's process list is saved, so a reboot serves the same release.
// Runs as root with the Node.js of the host; no dependencies. Files in the app
// user's directories are written and read as the app user (never by root
// through a path that user controls), and switched with renames.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { parseEnv } = require('node:util');

// ---------------------------------------------------------------- pure parts

/** `pm2 jlist` output: a call that starts the daemon prints "[PM2] Spawning ..." lines first; the JSON is the last line. */
function parseJlist(text) {
  const lines = String(text).trim().split('\n');
  return JSON.parse(lines[lines.length - 1] || '[]');
}

/** The app's PM2 processes (any status), by name. */
const appProcesses = (list, name) => list.filter((p) => p.name === name);

/** How many workers the environment file asks for: PM2_INSTANCES, "max" (the default in production) = one per CPU. */
function desiredWorkers(envText, cpus) {
  const raw = parseEnv(envText).PM2_INSTANCES;
  if (!raw || raw === 'max') return cpus;
  if (!/^[1-9]\d{0,2}$/.test(raw)) throw new ReleaseError(`PM2_INSTANCES must be "max" or 1-999, got "${raw}"`);
  return Number(raw);
}

/** Releases to remove: all but the newest `keep` (newest first in `ids`), never one in `protect`. */
function releasesToPrune(ids, keep, protect) {
  const kept = new Set([...ids.slice(0, keep), ...protect]);
  return ids.filter((id) => !kept.has(id));
}

/** `release list`: newest first, with the install date, the live one and the rollback target marked. */
function formatReleases(releases, live, previous) {
  if (!releases.length) return 'no releases installed';
  return releases
    .map((r) => `${r.id === live ? '*' : ' '} ${r.id}  installed ${r.installedAt}${r.id === live ? '  (live)' : r.id === previous ? '  (previous: the rollback target)' : ''}`)
    .join('\n');
}

const lastLines = (text, n) => String(text).trimEnd().split('\n').slice(-n).join('\n');

// ---------------------------------------------------------------- the host

class ReleaseError extends Error {}

class Host {
  constructor(opts) {
    this.user = opts.appUser;
    this.home = opts.appHome;
    this.name = opts.appName;
    this.port = Number(opts.appPort);
    this.uploads = opts.uploads;
    this.releases = path.join(this.home, 'releases');
    this.envFile = path.join(this.home, 'shared', 'app.env');
    this.checkLog = path.join(this.home, 'logs', 'release-check.log');
  }

  /** A command as the app user, with a clean environment: nothing of root's reaches PM2's records. */
  asApp(cmd, args, opts = {}) {
    return ['sudo', ['-u', this.user, '-H', 'env', '-i', 'PATH=/opt/node/bin:/usr/local/bin:/usr/bin:/bin', `HOME=${this.home}`, ...(opts.env || []), cmd, ...args]];
  }

  pm2(...args) {
    const [cmd, argv] = this.asApp('pm2', args);
    const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.home });
    if (r.status !== 0) throw new ReleaseError(`pm2 ${args.join(' ')} failed:\n${lastLines(r.stdout + r.stderr, 20)}`);
    return r.stdout;
  }

  workers() {
    return appProcesses(parseJlist(this.pm2('jlist')), this.name);
  }

  /** `pm2 ...` as the app user with no daemon running would start one outside systemd (without the unit's limits). */
  requireDaemon() {
    const unit = `pm2-${this.user}`;
    if (spawnSync('systemctl', ['is-active', '--quiet', unit]).status !== 0) throw new ReleaseError(`${unit}.service is not running (systemctl status ${unit})`);
  }

  /** Writes a file as the app user (umask 077): a path that user controls is never written by root. */
  writeAsApp(file, text) {
    const [cmd, argv] = this.asApp('sh', ['-c', 'umask 077 && cat > "$1"', 'sh', file]);
    const r = spawnSync(cmd, argv, { input: text, encoding: 'utf8', cwd: this.home });
    if (r.status !== 0) throw new ReleaseError(`could not write ${file}: ${(r.stderr || '').trim()}`);
  }

  /** The last lines of a file, read as the app user. */
  tailAsApp(file, n) {
    const [cmd, argv] = this.asApp('tail', ['-n', String(n), file]);
    return spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.home }).stdout || '';
  }

  link(name) {
    try {
      return path.basename(fs.readlinkSync(path.join(this.home, name)));
    } catch {
      return undefined;
    }
  }

  /** Points `<home>/<name>` at a release in one rename, so no reader ever sees it missing. */
  setLink(name, id) {
    const target = path.join(this.releases, id);
    const tmp = path.join(this.home, `.${name}.${process.pid}`);
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(target, tmp);
    fs.renameSync(tmp, path.join(this.home, name));
  }

  installed() {
    return fs
      .readdirSync(this.releases, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.endsWith('.partial'))
      .map((d) => {
        const marker = path.join(this.releases, d.name, '.installed-at');
        return { id: d.name, installedAt: fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8').trim() : fs.statSync(path.join(this.releases, d.name)).mtime.toISOString() };
      })
      .sort((a, b) => b.installedAt.localeCompare(a.installedAt));
  }

  /** releases/<id> from the upload, once: a release already on the host is reused as it is. */
  install(id, upload) {
    const dir = path.join(this.releases, id);
    if (fs.existsSync(dir)) return log(`release ${id} is already on the host`);
    for (const f of ['ecosystem.config.js', 'dist/server.js']) {
      if (!fs.existsSync(path.join(upload, f))) throw new ReleaseError(`the upload in ${upload} is not a release (no ${f})`);
    }
    fs.rmSync(`${dir}.partial`, { recursive: true, force: true });
    run('cp', ['-a', upload, `${dir}.partial`]);
    fs.writeFileSync(path.join(`${dir}.partial`, '.installed-at'), `${new Date().toISOString()}\n`);
    run('chown', ['-R', `${this.user}:${this.user}`, `${dir}.partial`]);
    fs.renameSync(`${dir}.partial`, dir);
    log(`release ${id} installed in ${dir}`);
  }

  migrate(id, envFile) {
    const [cmd, argv] = this.asApp('node', [path.join(this.releases, id, 'dist', 'migrate.js')], { env: [`CEMETERY_ENV_FILE=${envFile}`] });
    const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.home });
    if (r.status !== 0) throw new ReleaseError(`the migrations of release ${id} failed, so it was not switched:\n${lastLines(r.stdout + r.stderr, 20)}`);
    log(lastLines(r.stdout, 1));
  }

  /** The health gate: the release on a spare loopback port must answer /readyz 200 within `timeoutSeconds`. */
  async gate(id, envFile, timeoutSeconds) {
    const port = await freePort();
    // The app user opens its own log (sh's redirection), in its logs directory.
    const [cmd, argv] = this.asApp('sh', ['-c', 'umask 027 && exec node "$1" >"$2" 2>&1', 'sh', path.join(this.releases, id, 'dist', 'server.js'), this.checkLog], {
      env: ['NODE_ENV=production', `CEMETERY_ENV_FILE=${envFile}`, `PORT=${port}`, 'HOST=127.0.0.1'],
    });
    const child = spawn(cmd, argv, { stdio: 'ignore', cwd: this.home });
    let exited;
    child.on('error', (err) => (exited = { code: null, signal: err.message }));
    child.on('exit', (code, signal) => (exited = { code, signal }));
    const started = Date.now();
    let last = 'no answer';
    try {
      while (Date.now() - started < timeoutSeconds * 1000) {
        if (exited) {
          last = `it exited with ${exited.code === null ? `signal ${exited.signal}` : `code ${exited.code}${exited.code === 78 ? ' (a configuration error)' : ''}`}`;
          break;
        }
        const answer = await get(port, '/readyz').catch(() => undefined);
        if (answer && answer.status === 200) return log(`release ${id} is ready (/readyz 200 on port ${port} after ${((Date.now() - started) / 1000).toFixed(1)} s)`);
        if (answer) last = `/readyz answered ${answer.status} ${answer.body.trim()}`;
        await sleep(250);
      }
      if (!exited) last = `${last}, after ${timeoutSeconds} s`;
      throw new ReleaseError(
        `release ${id} did not become ready, so it was not switched: ${last}.\n` +
          `Last lines of its log (${this.checkLog}):\n${this.tailAsApp(this.checkLog, 15).trimEnd()}`,
      );
    } finally {
      if (!exited) {
        child.kill('SIGTERM');
        await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10000)]);
        if (!exited) child.kill('SIGKILL');
      }
    }
  }

  /** Starts the app from `current`, or reloads it worker by worker (the process file's settings and the env file are read again), then scales. */
  reload(cpus) {
    const processFile = path.join(this.home, 'current', 'ecosystem.config.js');
    const script = path.join(this.home, 'current', 'dist', 'server.js');
    let workers = this.workers();
    // The process list must run `current`, not a release's own path: PM2 keeps script and cwd from the first start.
    if (workers.length && workers.some((w) => w.pm2_env.pm_exec_path !== script)) {
      log(`PM2 runs ${workers[0].pm2_env.pm_exec_path}: replacing the process list entry to run ${script} (a brief restart, once)`);
      this.pm2('delete', this.name);
      workers = [];
    }
    if (!workers.length) {
      this.pm2('start', processFile, '--env', 'production');
      log(`started ${this.name}`);
    } else {
      this.pm2('startOrReload', processFile, '--env', 'production');
      log(`reloaded ${this.name}, one worker at a time`);
    }
    const want = desiredWorkers(fs.readFileSync(this.envFile, 'utf8'), cpus);
    const have = this.workers().length;
    if (have !== want) {
      this.pm2('scale', this.name, String(want));
      log(`scaled ${this.name} from ${have} to ${want} workers`);
    }
    return want;
  }

  /** Every worker online and running the release's code (its working directory is the release, resolved when it started). */
  async serving(id, want) {
    const dir = fs.realpathSync(path.join(this.releases, id));
    const workers = this.workers();
    const wrong = workers.filter((w) => w.pm2_env.status !== 'online' || cwdOf(w.pid) !== dir);
    return workers.length === want && wrong.length === 0 ? '' : `${workers.length} of ${want} workers; not online on ${id}: ${wrong.map((w) => `${w.pid} (${w.pm2_env.status}, ${cwdOf(w.pid)})`).join(', ')}`;
  }

  save() {
    this.pm2('save', '--force');
  }

  prune(keep, keepAlso) {
    const protect = [this.link('current'), this.link('previous'), ...keepAlso].filter(Boolean);
    const ids = this.installed().map((r) => r.id);
    const remove = releasesToPrune(ids, keep, protect);
    for (const id of remove) fs.rmSync(path.join(this.releases, id), { recursive: true, force: true });
    const kept = new Set(ids.filter((id) => !remove.includes(id)));
    let uploads = [];
    if (this.uploads && fs.existsSync(this.uploads)) {
      uploads = fs.readdirSync(this.uploads).filter((n) => /^r-[0-9a-f]+$/.test(n) && !kept.has(n));
      for (const n of uploads) fs.rmSync(path.join(this.uploads, n), { recursive: true, force: true });
    }
    if (remove.length || uploads.length) log(`pruned ${remove.length} release(s) and ${uploads.length} upload(s); kept ${[...kept].join(', ')}`);
  }
}

// ---------------------------------------------------------------- commands

/**
 * Makes `id` live. `envText`, when given, is the new environment file: it is
 * used for the migrations and the gate, and put in place only if they pass.
 */
async function activate(host, id, { envText, timeoutSeconds, migrate }) {
  const cpus = os.cpus().length;
  const live = host.link('current');
  const previous = host.link('previous');
  const nextEnv = `${host.envFile}.next`;
  const prevEnv = `${host.envFile}.prev`;
  const configChanged = envText !== undefined && (!fs.existsSync(host.envFile) || fs.readFileSync(host.envFile, 'utf8') !== envText);
  if (live === id && !configChanged) {
    const want = desiredWorkers(fs.readFileSync(host.envFile, 'utf8'), cpus);
    if ((await host.serving(id, want)) === '') return log(`release ${id} is live on ${want} workers: nothing to do`);
  }
  const envFile = configChanged ? nextEnv : host.envFile;
  try {
    if (configChanged) host.writeAsApp(nextEnv, envText);
    if (migrate) host.migrate(id, envFile);
    await host.gate(id, envFile, timeoutSeconds);
  } catch (err) {
    fs.rmSync(nextEnv, { force: true });
    if (live) throw new ReleaseError(`${err.message}\n${live} keeps serving.`);
    throw err;
  }

  // The switch: renames only, each undone in reverse if anything after it fails.
  const undo = [];
  try {
    if (configChanged) {
      if (fs.existsSync(host.envFile)) {
        fs.renameSync(host.envFile, prevEnv);
        undo.push(() => fs.renameSync(prevEnv, host.envFile));
      }
      fs.renameSync(nextEnv, host.envFile);
    }
    if (live && live !== id) {
      host.setLink('previous', live);
      undo.push(() => (previous ? host.setLink('previous', previous) : fs.rmSync(path.join(host.home, 'previous'), { force: true })));
    }
    host.setLink('current', id);
    if (live) undo.push(() => host.setLink('current', live));
    const want = host.reload(cpus);
    const problem = await waitFor(() => host.serving(id, want), 60);
    if (problem) throw new ReleaseError(`release ${id} did not come up under PM2: ${problem}`);
    host.save();
    fs.rmSync(prevEnv, { force: true });
    log(`release ${id} is live on ${want} workers${live && live !== id ? ` (was ${live})` : ''}; PM2's process list saved`);
  } catch (err) {
    if (!live) throw err;
    for (const step of undo.reverse()) step();
    let outcome;
    try {
      const want = host.reload(cpus);
      const problem = await waitFor(() => host.serving(live, want), 60);
      host.save();
      outcome = problem ? `switching back to ${live} did not work either: ${problem}` : `switched back to ${live}, which serves`;
    } catch (backErr) {
      outcome = `switching back to ${live} failed too: ${backErr.message}`;
    }
    throw new ReleaseError(`${err.message}\n${outcome}.`);
  }
}

const USAGE = `usage: cemetery-release list
       cemetery-release rollback [<id>]
       cemetery-release deploy --id <id> --upload <dir> [--keep N] [--timeout S]   (provisioning; the environment file on stdin)`;

async function main(argv) {
  const { opts, rest } = parseArgs(argv);
  const host = new Host(opts);
  host.requireDaemon();
  const timeoutSeconds = Number(opts.timeout || 60);
  const keep = Number(opts.keep || 5);
  switch (rest[0]) {
    case 'list':
      console.log(formatReleases(host.installed(), host.link('current'), host.link('previous')));
      return;
    case 'rollback': {
      const target = rest[1] || host.link('previous');
      if (!target) throw new ReleaseError('there is no previous release to roll back to (cemetery-release list)');
      if (!/^r-[0-9a-f]+$/.test(target)) throw new ReleaseError(`not a release id: "${target}" (cemetery-release list)`);
      if (!fs.existsSync(path.join(host.releases, target))) throw new ReleaseError(`release ${target} is not on this host (cemetery-release list)`);
      await activate(host, target, { timeoutSeconds, migrate: false });
      return;
    }
    case 'deploy': {
      if (!opts.id || !opts.upload) throw new ReleaseError(USAGE);
      const envText = fs.readFileSync(0, 'utf8');
      if (!/^DATABASE_URL=/m.test(envText)) throw new ReleaseError('the environment on stdin has no DATABASE_URL');
      host.install(opts.id, opts.upload);
      await activate(host, opts.id, { envText, timeoutSeconds, migrate: true });
      host.prune(keep, [opts.id]);
      return;
    }
    default:
      throw new ReleaseError(USAGE);
  }
}

// ---------------------------------------------------------------- small helpers

function log(line) {
  console.log(`[release] ${line}`);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new ReleaseError(`${cmd} ${args.join(' ')} failed: ${(r.stderr || String(r.error || '')).trim()}`);
}

function parseArgs(argv) {
  const opts = {};
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)$/.exec(argv[i]);
    if (m) opts[m[1].replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[++i];
    else rest.push(argv[i]);
  }
  return { opts, rest };
}

function cwdOf(pid) {
  try {
    return fs.realpathSync(`/proc/${pid}/cwd`);
  } catch {
    return '?';
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (which returns '' when all is well, else what is wrong) for up to `seconds`. */
async function waitFor(check, seconds) {
  const until = Date.now() + seconds * 1000;
  let problem = await check();
  while (problem && Date.now() < until) {
    await sleep(500);
    problem = await check();
  }
  return problem;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function get(port, urlPath) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 2000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

module.exports = { parseJlist, appProcesses, desiredWorkers, releasesToPrune, formatReleases, lastLines };

if (require.main === module) {
  main(process.argv.slice(2)).catch((err) => {
    const known = err instanceof ReleaseError;
    process.stderr.write(`cemetery-backend release: ${known ? err.message : err.stack}\n`);
    process.exit(1);
  });
}
