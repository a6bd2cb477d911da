/**
 * The release tool (scripts/release-tool): its decisions on recorded `pm2
 * jlist` output and plain values; its switch and undo (activate) on a fake
 * host that records every operation and fails where a test says; its command
 * line, through the bundle the host runs (scripts/host/release.cjs).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseJlist } from '../scripts/lib/pm2-list.cjs';
import { activate, type LinkName, type ReleaseHost } from '../scripts/release-tool/activate';
import { parseInvocation } from '../scripts/release-tool/cli';
import { appProcesses, desiredWorkers, formatReleases, releasesToPrune, workerDone } from '../scripts/release-tool/plan';
import { ROOT } from './support/db';

const recorded = readFileSync(path.join(ROOT, 'test', 'fixtures', 'pm2-jlist-host.txt'), 'utf8');

describe('PM2 process list', () => {
  test('the JSON is the last line, after the lines PM2 prints when it spawns its daemon', () => {
    const list = parseJlist(`[PM2] Spawning PM2 daemon with pm2_home=/srv/x/.pm2\n[PM2] PM2 Successfully daemonized\n${recorded}`);
    expect(list.length).toBeGreaterThan(0);
  });

  test("the app's workers, not the pm2-logrotate module", () => {
    const list = parseJlist(recorded);
    const app = appProcesses(list, 'cemetery-backend');
    expect(app.length).toBe(2);
    expect(list.some((p) => p.name === 'pm2-logrotate')).toBe(true);
    // What the tool checks: PM2 runs the app through `current`, and holds no secret.
    for (const p of app) expect(p.pm2_env.pm_exec_path).toBe('/srv/cemetery-backend/current/dist/server.js');
    expect(recorded).not.toMatch(/DATABASE_URL|postgres:\/\//);
  });
});

test.each([
  ['PM2_INSTANCES=max\n', 4, 4],
  ['PM2_INSTANCES=3\n', 4, 3],
  ['DATABASE_URL=postgres://u:p@h/d\n', 2, 2],
])('workers wanted by %j on %d CPUs: %d', (env, cpus, want) => {
  expect(desiredWorkers(env, cpus)).toBe(want);
});

describe('reload progress', () => {
  test("each worker's line of `pm2 startOrReload` (as PM2 7 prints it on a pipe, coloured) names the worker; other lines and other apps' do not", () => {
    // Captured from `pm2 startOrReload` of a two-worker cluster app piped to a file.
    const output = [
      '\x1b[32m[PM2] \x1b[39mApplying action reloadProcessId on app [demo](ids: [ 0, 1 ])',
      '\x1b[32m[PM2] \x1b[39m[demo](0) \u2713',
      '\x1b[32m[PM2] \x1b[39m[demo](1) \u2713',
      '[PM2] [pm2-logrotate](2) \u2713',
    ];
    expect(output.map((line) => workerDone(line, 'demo'))).toEqual([undefined, 0, 1, undefined]);
  });
});

describe('retention', () => {
  const ids = ['r-7', 'r-6', 'r-5', 'r-4', 'r-3', 'r-2', 'r-1']; // newest first
  test('keeps the newest N', () => {
    expect(releasesToPrune(ids, 5, ['r-7'])).toEqual(['r-2', 'r-1']);
  });
  test('never the live release or the rollback target, however old', () => {
    expect(releasesToPrune(ids, 2, ['r-1', 'r-3'])).toEqual(['r-5', 'r-4', 'r-2']);
  });
});

test('the list marks the live release and the rollback target', () => {
  const text = formatReleases(
    [
      { id: 'r-b', installedAt: '2026-11-28T10:00:00.000Z' },
      { id: 'r-a', installedAt: '2026-11-27T10:00:00.000Z' },
    ],
    'r-b',
    'r-a',
  );
  expect(text).toBe('* r-b  installed 2026-11-28T10:00:00.000Z  (live)\n  r-a  installed 2026-11-27T10:00:00.000Z  (previous: the rollback target)');
});

// ---------------------------------------------------------------------------
// activate: the switch and its undo, on a fake host.

type Op = keyof Omit<ReleaseHost, 'envFile'>;
const ENV = '/srv/app/shared/app.env';

/** A host in memory: files, links, the release PM2 serves. `fail` makes one operation throw (its nth call). */
class FakeHost implements ReleaseHost {
  readonly envFile = ENV;
  files = new Map<string, string>();
  links = new Map<LinkName, string>();
  /** The release PM2 last loaded: what `current` pointed at when it reloaded. */
  serves?: string;
  journal: string[] = [];
  private calls = new Map<Op, number>();
  constructor(private readonly fail: { op: Op; call?: number; message?: string } | undefined = undefined) {}

  private record(op: Op, detail = '') {
    const n = (this.calls.get(op) ?? 0) + 1;
    this.calls.set(op, n);
    this.journal.push(`${op}${detail ? ` ${detail}` : ''}`);
    if (this.fail?.op === op && (this.fail.call ?? 1) === n) throw new Error(this.fail.message ?? `${op} failed`);
  }
  readEnv(file: string) {
    return this.files.get(file);
  }
  writeEnv(file: string, text: string) {
    this.record('writeEnv', path.basename(file));
    this.files.set(file, text);
  }
  rename(from: string, to: string) {
    this.record('rename', `${path.basename(from)} ${path.basename(to)}`);
    this.files.set(to, this.files.get(from)!);
    this.files.delete(from);
  }
  remove(file: string) {
    this.files.delete(file);
  }
  link(name: LinkName) {
    return this.links.get(name);
  }
  setLink(name: LinkName, id: string) {
    this.record('setLink', `${name} ${id}`);
    this.links.set(name, id);
  }
  removeLink(name: LinkName) {
    this.record('removeLink', name);
    this.links.delete(name);
  }
  migrate(id: string, envFile: string) {
    this.record('migrate', `${id} ${path.basename(envFile)}`);
  }
  async gate(id: string, envFile: string) {
    this.record('gate', `${id} ${path.basename(envFile)}`);
  }
  wantedWorkers() {
    return 2;
  }
  async reload() {
    this.record('reload', this.links.get('current'));
    this.serves = this.links.get('current');
    return 2;
  }
  async serving(id: string) {
    this.record('serving', id);
    return this.serves === id ? '' : `not on ${id}`;
  }
  save() {
    this.record('save');
  }
  log() {}
}

/** A host serving r-old, with r-older as its rollback target and the old env file. */
function liveHost(fail?: ConstructorParameters<typeof FakeHost>[0]) {
  const host = new FakeHost(fail);
  host.files.set(ENV, 'DATABASE_URL=old\n');
  host.links.set('current', 'r-old');
  host.links.set('previous', 'r-older');
  host.serves = 'r-old';
  return host;
}
const deploy = (host: FakeHost, id = 'r-new') => activate(host, id, { envText: 'DATABASE_URL=new\n', migrate: true, timeoutSeconds: 1, settleSeconds: 0.01 });
const state = (host: FakeHost) => ({ env: host.files.get(ENV), next: host.files.get(`${ENV}.next`), prev: host.files.get(`${ENV}.prev`), current: host.links.get('current'), previous: host.links.get('previous'), serves: host.serves });

describe('activate', () => {
  test('a good release: migrations and the gate on the new env file, then env, previous, current, reload, save', async () => {
    const host = liveHost();
    await deploy(host);
    expect(host.journal.filter((j) => !j.startsWith('serving'))).toEqual([
      'writeEnv app.env.next',
      'migrate r-new app.env.next',
      'gate r-new app.env.next',
      'rename app.env app.env.prev',
      'rename app.env.next app.env',
      'setLink previous r-old',
      'setLink current r-new',
      'reload r-new',
      'save',
    ]);
    expect(state(host)).toEqual({ env: 'DATABASE_URL=new\n', next: undefined, prev: undefined, current: 'r-new', previous: 'r-old', serves: 'r-new' });
  });

  test.each<[string, Op]>([
    ['its migrations fail', 'migrate'],
    ['its gate fails', 'gate'],
  ])('when %s, nothing switches: the env file, both links and PM2 are as they were', async (_what, op) => {
    const host = liveHost({ op, message: `${op}: boom` });
    await expect(deploy(host)).rejects.toThrow(`${op}: boom\nr-old keeps serving.`);
    expect(state(host)).toEqual({ env: 'DATABASE_URL=old\n', next: undefined, prev: undefined, current: 'r-old', previous: 'r-older', serves: 'r-old' });
    expect(host.journal.some((j) => /^(rename|setLink|reload|save)/.test(j))).toBe(false);
  });

  test('when PM2 fails on the new release, env, previous and current are undone in reverse, and the old release reloaded', async () => {
    const host = liveHost({ op: 'reload', call: 1, message: 'pm2 startOrReload failed' });
    await expect(deploy(host)).rejects.toThrow('pm2 startOrReload failed\nswitched back to r-old, which serves.');
    expect(host.journal.filter((j) => !j.startsWith('serving')).slice(-6)).toEqual([
      'reload r-new',
      // undo, in reverse order of the switch
      'setLink current r-old',
      'setLink previous r-older',
      'rename app.env.prev app.env',
      'reload r-old',
      'save',
    ]);
    expect(state(host)).toEqual({ env: 'DATABASE_URL=old\n', next: undefined, prev: undefined, current: 'r-old', previous: 'r-older', serves: 'r-old' });
  });

  test('when the workers never come up on the new release, the same undo; the message says what PM2 showed', async () => {
    const host = liveHost();
    host.reload = async () => {
      host.serves = 'r-old'; // PM2 "reloaded", but the workers still run the old code
      return 2;
    };
    await expect(deploy(host)).rejects.toThrow('release r-new did not come up under PM2: not on r-new\nswitched back to r-old, which serves.');
    expect(state(host)).toMatchObject({ env: 'DATABASE_URL=old\n', current: 'r-old', previous: 'r-older' });
  });

  test('a first deploy with no previous release has nothing to undo to: the failure is reported as it is', async () => {
    const host = new FakeHost({ op: 'reload', message: 'pm2 start failed' });
    await expect(deploy(host)).rejects.toThrow(/^pm2 start failed$/);
  });

  test('the live release with the same env file and every worker on it: nothing happens', async () => {
    const host = liveHost();
    await activate(host, 'r-old', { envText: 'DATABASE_URL=old\n', migrate: true, timeoutSeconds: 1, settleSeconds: 0.01 });
    expect(host.journal).toEqual(['serving r-old']);
  });

  test('rollback (no env text): the gate on the live env file, then only the links move', async () => {
    const host = liveHost();
    await activate(host, 'r-older', { migrate: false, timeoutSeconds: 1, settleSeconds: 0.01 });
    expect(host.journal.filter((j) => !j.startsWith('serving'))).toEqual(['gate r-older app.env', 'setLink previous r-old', 'setLink current r-older', 'reload r-older', 'save']);
    expect(state(host)).toMatchObject({ env: 'DATABASE_URL=old\n', current: 'r-older', previous: 'r-old' });
  });
});

// ---------------------------------------------------------------------------
// The command line: every setting comes from the wrapper; none has a second default here.

describe('command line', () => {
  const settings = ['--app-user', 'cemetery', '--app-home', '/srv/cemetery-backend', '--app-name', 'cemetery-backend', '--app-port', '3000', '--uploads', '/home/admin/.cemetery-provision', '--keep', '5', '--timeout', '60'];

  test('the wrapper\'s settings and a command', () => {
    expect(parseInvocation([...settings, 'rollback', 'r-0123456789ab'])).toMatchObject({ command: 'rollback', target: 'r-0123456789ab', settings: { keep: '5', timeout: '60' } });
  });

  test.each([
    [['list'], 'missing --app-user, --app-home, --app-name, --app-port, --uploads, --keep, --timeout'],
    [[...settings.slice(0, -2), 'list'], 'missing --timeout'],
    [[...settings.slice(0, -1), 'soon', 'list'], '--timeout must be a whole number, got "soon"'],
    [[...settings, '--colour', 'red', 'list'], 'unknown option --colour'],
    [[...settings, 'deploy', '--id', 'r-0123456789ab'], 'deploy needs --id and --upload'],
    [[...settings, 'deploy', '--id', '../../etc', '--upload', '/tmp/x'], 'not a release id: "../../etc"'],
    [[...settings, 'remove'], 'usage: cemetery-release list'],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => parseInvocation(argv)).toThrow(message);
  });

  test('the bundle the host runs refuses a call without its settings, naming them, exit 1', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'host', 'release.cjs'), 'list'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('cemetery-backend release: missing --app-user, --app-home, --app-name, --app-port, --uploads, --keep, --timeout');
  });
});
