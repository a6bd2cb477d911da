/**
 * The real ReleaseHost: root on the host, with the app user's PM2. The app
 * home, releases/ and shared/ are root's (the app-user step makes them so); the
 * tool refuses to work if one is a link or someone else's, so it never follows
 * a path the app user could have planted. What runs as the app user (PM2, the
 * migrations, the gate) is started through sudo with a clean environment.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { HOST_PATHS, RELEASE_ID_PATTERN } from '../../infra/host-layout';
import { parseJlist, type Pm2Process } from '../lib/pm2-list.cjs';
import { freePort } from '../lib/ports.cjs';
import { sleep } from '../lib/wait.cjs';
import type { LinkName, ReleaseHost } from './activate';
import { appProcesses, describeExit, desiredWorkers, lastLines, ReleaseError, releasesToPrune, reloadPace, workerDone, type InstalledRelease } from './plan';

export type HostOptions = { appUser: string; appHome: string; appName: string; appPort: number; uploads: string };

/** A directory of root's, not a link: where root may create, rename and delete without following anything. */
function requireRootDirectory(dir: string) {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch {
    throw new ReleaseError(`${dir} is missing: run pulumi up (the app-user step makes it)`);
  }
  const what = st.isSymbolicLink() ? `a link to ${fs.readlinkSync(dir)}` : !st.isDirectory() ? 'not a directory' : st.uid !== 0 ? `owned by uid ${st.uid}` : '';
  if (what) throw new ReleaseError(`${dir} is ${what}: expected a directory of root's (the app-user step makes it so). Something else put it there: look before you remove it.`);
}

/** A regular file, read without following a link (undefined when missing). */
function readRegularFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new ReleaseError(`${file} is a link: expected a file of root's`);
    throw err;
  }
  try {
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

function cwdOf(pid: number) {
  try {
    return fs.realpathSync(`/proc/${pid}/cwd`);
  } catch {
    return '?';
  }
}

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 2000, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new ReleaseError(`${cmd} ${args.join(' ')} failed: ${(r.stderr || String(r.error || '')).trim()}`);
  return r.stdout;
}

export class SystemReleaseHost implements ReleaseHost {
  readonly user: string;
  readonly home: string;
  readonly name: string;
  readonly uploads: string;
  readonly releases: string;
  readonly envFile: string;
  readonly checkLog: string;
  private readonly cpus = os.cpus().length;
  private groupId?: number;
  /** The list reload() read after reloading: the first serving() check uses it (a `pm2 jlist` is 3-4 s on a slow host). */
  private listAfterReload?: Pm2Process[];
  /** The list before reloading, read while the gate waits for the new release: reload() uses it once. */
  private listBeforeReload?: Promise<Pm2Process[]>;
  /** The gate's process, once it answered: told to stop, and awaited by reload() while PM2 reloads. */
  private candidateStopped?: Promise<void>;

  constructor(opts: HostOptions) {
    this.user = opts.appUser;
    this.home = opts.appHome;
    this.name = opts.appName;
    this.uploads = opts.uploads;
    this.releases = path.join(this.home, 'releases');
    this.envFile = path.join(this.home, 'shared', 'app.env');
    this.checkLog = path.join(this.home, 'logs', 'release-check.log');
  }

  /** Refuses to start on a layout the app user could have bent (a planted link, a directory of its own). */
  checkLayout() {
    for (const dir of [this.home, this.releases, path.dirname(this.envFile)]) requireRootDirectory(dir);
  }

  /** `pm2 ...` as the app user with no daemon running would start one outside systemd (without the unit's limits). */
  requireDaemon() {
    const unit = `pm2-${this.user}`;
    if (spawnSync('systemctl', ['is-active', '--quiet', unit]).status !== 0) throw new ReleaseError(`${unit}.service is not running (systemctl status ${unit})`);
  }

  /** A command as the app user, from its home, with a clean environment: nothing of root's reaches PM2's records. */
  private asApp(cmd: string, args: string[], env: string[] = []): [string, string[]] {
    return ['sudo', ['-u', this.user, '-H', 'env', '-i', `PATH=${HOST_PATHS.nodeBin}:/usr/local/bin:/usr/bin:/bin`, `HOME=${this.home}`, ...env, cmd, ...args]];
  }

  private pm2(...args: string[]) {
    const [cmd, argv] = this.asApp('pm2', args);
    const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.home });
    if (r.status !== 0) throw new ReleaseError(`pm2 ${args.join(' ')} failed:\n${lastLines(r.stdout + r.stderr, 20)}`);
    return r.stdout;
  }

  /** `pm2 ...` without blocking the tool; `onLine` sees each line of its output as PM2 prints it. */
  private pm2Async(args: string[], onLine: (line: string) => void = () => {}): Promise<string> {
    const [cmd, argv] = this.asApp('pm2', args);
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, argv, { cwd: this.home, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let all = '';
      let partial = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        all += chunk;
        const lines = (partial + chunk).split('\n');
        partial = lines.pop()!;
        lines.forEach(onLine);
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (all += chunk));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new ReleaseError(`pm2 ${args.join(' ')} failed:\n${lastLines(all, 20)}`))));
    });
  }

  private workers(): Pm2Process[] {
    return appProcesses(parseJlist(this.pm2('jlist')), this.name);
  }

  /** workers(), without blocking the tool. */
  private workersAsync(): Promise<Pm2Process[]> {
    return this.pm2Async(['jlist']).then((out) => appProcesses(parseJlist(out), this.name));
  }

  readEnv(file: string) {
    return readRegularFile(file);
  }

  /** A new file, created (never opened through a link: O_EXCL), 0640 root:<app user's group>. */
  writeEnv(file: string, text: string) {
    fs.rmSync(file, { force: true });
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o640);
    try {
      this.groupId ??= Number(run('id', ['-g', this.user]).trim());
      fs.fchownSync(fd, 0, this.groupId);
      fs.fchmodSync(fd, 0o640);
      fs.writeFileSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  rename(from: string, to: string) {
    fs.renameSync(from, to);
  }

  remove(file: string) {
    fs.rmSync(file, { force: true });
  }

  link(name: LinkName) {
    try {
      return path.basename(fs.readlinkSync(path.join(this.home, name)));
    } catch {
      return undefined;
    }
  }

  setLink(name: LinkName, id: string) {
    const tmp = path.join(this.home, `.${name}.${process.pid}`);
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(path.join(this.releases, id), tmp);
    fs.renameSync(tmp, path.join(this.home, name));
  }

  removeLink(name: LinkName) {
    fs.rmSync(path.join(this.home, name), { force: true });
  }

  /** Installed releases, newest first. A marker that is not a plain file (a planted link) is not read. */
  installed(): InstalledRelease[] {
    return fs
      .readdirSync(this.releases, { withFileTypes: true })
      .filter((d) => d.isDirectory() && RELEASE_ID_PATTERN.test(d.name))
      .map((d) => {
        const marker = readRegularFileOrUndefined(path.join(this.releases, d.name, '.installed-at'));
        return { id: d.name, installedAt: marker?.trim() ?? fs.lstatSync(path.join(this.releases, d.name)).mtime.toISOString() };
      })
      .sort((a, b) => b.installedAt.localeCompare(a.installedAt));
  }

  /** releases/<id> from the upload, once, root's and readable by the app user's group; a release already there is reused. */
  install(id: string, upload: string) {
    const dir = path.join(this.releases, id);
    if (fs.existsSync(dir)) return this.log(`release ${id} is already on the host`);
    for (const f of ['ecosystem.config.js', 'dist/server.js']) {
      if (!fs.existsSync(path.join(upload, f))) throw new ReleaseError(`the upload in ${upload} is not a release (no ${f})`);
    }
    const partial = `${dir}.partial`;
    fs.rmSync(partial, { recursive: true, force: true });
    run('cp', ['-R', '--no-dereference', '--preserve=timestamps', upload, partial]);
    fs.writeFileSync(path.join(partial, '.installed-at'), `${new Date().toISOString()}\n`);
    // -h with -R: links themselves, never what they point at.
    run('chown', ['-hR', `root:${this.user}`, partial]);
    run('chmod', ['-R', 'u=rwX,g=rX,o=', partial]);
    fs.renameSync(partial, dir);
    this.log(`release ${id} installed in ${dir}`);
  }

  migrate(id: string, envFile: string) {
    this.log(`applying the migrations of release ${id}`);
    const [cmd, argv] = this.asApp('node', [path.join(this.releases, id, 'dist', 'migrate.js')], [`CEMETERY_ENV_FILE=${envFile}`]);
    const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.home });
    if (r.status !== 0) throw new ReleaseError(`the migrations of release ${id} failed, so it was not switched:\n${lastLines(r.stdout + r.stderr, 20)}`);
    this.log(lastLines(r.stdout, 1));
  }

  async gate(id: string, envFile: string, timeoutSeconds: number) {
    const port = await freePort();
    // PM2's list for reload(), read meanwhile: the gate mostly waits.
    this.listBeforeReload = this.workersAsync();
    this.listBeforeReload.catch(() => {}); // a failure is reload()'s to report, if it comes to that
    this.log(`release ${id} started on port ${port}: waiting up to ${timeoutSeconds} s for /readyz`);
    // The app user opens its own log in its own logs directory, a link there removed first (as that user).
    const [cmd, argv] = this.asApp('sh', ['-c', 'umask 027 && rm -f "$2" && exec node "$1" >"$2" 2>&1', 'sh', path.join(this.releases, id, 'dist', 'server.js'), this.checkLog], [
      'NODE_ENV=production',
      `CEMETERY_ENV_FILE=${envFile}`,
      `PORT=${port}`,
      'HOST=127.0.0.1',
    ]);
    const child = spawn(cmd, argv, { stdio: 'ignore', cwd: this.home });
    let exited: { code: number | null; signal: string | null } | undefined;
    child.on('error', (err) => (exited = { code: null, signal: err.message }));
    child.on('exit', (code, signal) => (exited = { code, signal }));
    const started = Date.now();
    let last = 'no answer';
    let ready = false;
    try {
      while (Date.now() - started < timeoutSeconds * 1000) {
        if (exited) {
          last = `it exited with ${describeExit(exited.code, exited.signal)}`;
          break;
        }
        const answer = await get(port, '/readyz').catch(() => undefined);
        if (answer && answer.status === 200) {
          ready = true;
          return this.log(`release ${id} is ready (/readyz 200 on port ${port} after ${((Date.now() - started) / 1000).toFixed(1)} s)`);
        }
        if (answer) last = `/readyz answered ${answer.status} ${answer.body.trim()}`;
        await sleep(250);
      }
      if (!exited) last = `${last}, after ${timeoutSeconds} s`;
      throw new ReleaseError(`release ${id} did not become ready, so it was not switched: ${last}.\nLast lines of its log (${this.checkLog}):\n${this.tailAsApp(this.checkLog, 15).trimEnd()}`);
    } finally {
      const stopped = exited
        ? Promise.resolve()
        : (child.kill('SIGTERM'), Promise.race([new Promise((r) => child.once('exit', r)), sleep(10000)]).then(() => void (exited || child.kill('SIGKILL'))));
      // A release that answered stops while PM2 reloads (its graceful stop takes a few seconds); one that did not, now.
      if (ready) this.candidateStopped = stopped;
      else await stopped;
    }
  }

  /** The last lines of a file in the app user's directories, read as that user. */
  private tailAsApp(file: string, n: number) {
    const [cmd, argv] = this.asApp('tail', ['-n', String(n), file]);
    return spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.home }).stdout || '';
  }

  wantedWorkers() {
    return desiredWorkers(readRegularFile(this.envFile) ?? '', this.cpus);
  }

  async reload() {
    const processFile = path.join(this.home, 'current', 'ecosystem.config.js');
    const script = path.join(this.home, 'current', 'dist', 'server.js');
    const candidateStopped = this.candidateStopped;
    this.candidateStopped = undefined;
    let workers = await (this.listBeforeReload ?? this.workersAsync());
    this.listBeforeReload = undefined;
    // The process list must run `current`, not a release's own path: PM2 keeps script and cwd from the first start.
    if (workers.length && workers.some((w) => w.pm2_env.pm_exec_path !== script)) {
      this.log(`PM2 runs ${workers[0].pm2_env.pm_exec_path}: replacing the process list entry to run ${script} (a brief restart, once)`);
      this.pm2('delete', this.name);
      workers = [];
    }
    if (!workers.length) {
      this.pm2('start', processFile, '--env', 'production');
      this.log(`started ${this.name}`);
    } else {
      this.log(`reloading ${this.name}, ${reloadPace(workers.length)}`);
      await this.pm2Async(['startOrReload', processFile, '--env', 'production'], (line) => {
        const done = workerDone(line, this.name);
        if (done !== undefined) this.log(`worker ${done} reloaded`);
      });
    }
    await candidateStopped;
    const want = this.wantedWorkers();
    const after = this.workers();
    if (after.length !== want) {
      this.pm2('scale', this.name, String(want));
      this.log(`scaled ${this.name} from ${after.length} to ${want} workers`);
    } else {
      this.listAfterReload = after;
    }
    return want;
  }

  /** Every worker online and running the release's code (its working directory is the release, resolved when it started). */
  async serving(id: string, want: number) {
    const dir = fs.realpathSync(path.join(this.releases, id));
    const workers = this.listAfterReload ?? this.workers();
    this.listAfterReload = undefined;
    const wrong = workers.filter((w) => w.pm2_env.status !== 'online' || cwdOf(w.pid) !== dir);
    return workers.length === want && wrong.length === 0 ? '' : `${workers.length} of ${want} workers; not online on ${id}: ${wrong.map((w) => `${w.pid} (${w.pm2_env.status}, ${cwdOf(w.pid)})`).join(', ')}`;
  }

  save() {
    this.pm2('save', '--force');
  }

  /** One line on the host's audit trail (cemetery-audit, written by the release step): who is read from the session. */
  audit(action: string, outcome: 'ok' | 'failed', detail: string) {
    const r = spawnSync(HOST_PATHS.auditCommand, [action, outcome, detail], { encoding: 'utf8' });
    if (r.status !== 0) this.log(`could not write the audit trail: ${(r.stderr || String(r.error ?? '')).trim()}`);
  }

  /** All but the newest `keep` releases go (never current, previous or `keepAlso`), and the uploads of the ones gone. */
  prune(keep: number, keepAlso: string[]) {
    const protect = [this.link('current'), this.link('previous'), ...keepAlso].filter((id): id is string => Boolean(id));
    const ids = this.installed().map((r) => r.id);
    const remove = releasesToPrune(ids, keep, protect);
    for (const id of remove) fs.rmSync(path.join(this.releases, id), { recursive: true, force: true });
    const kept = new Set(ids.filter((id) => !remove.includes(id)));
    let uploads: string[] = [];
    if (fs.existsSync(this.uploads)) {
      uploads = fs.readdirSync(this.uploads).filter((n) => RELEASE_ID_PATTERN.test(n) && !kept.has(n));
      for (const n of uploads) fs.rmSync(path.join(this.uploads, n), { recursive: true, force: true });
    }
    if (remove.length || uploads.length) this.log(`pruned ${remove.length} release(s) and ${uploads.length} upload(s); kept ${[...kept].join(', ')}`);
  }

  /** A phase, on stdout as it happens (the release step shows it in `pulumi up`; never a secret, never a long line). */
  log(line: string) {
    console.log(`[release] ${line}`.slice(0, 2000));
  }
}

/** For markers: a link or anything else unreadable counts as no marker. */
function readRegularFileOrUndefined(file: string) {
  try {
    return readRegularFile(file);
  } catch {
    return undefined;
  }
}
