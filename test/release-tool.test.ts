/** The release tool's decisions (scripts/host/release.cjs), on recorded `pm2 jlist` output and plain values. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './support/db';

type Tool = {
  parseJlist(text: string): Array<{ name: string; pid: number; pm2_env: Record<string, unknown> }>;
  appProcesses<T extends { name: string }>(list: T[], name: string): T[];
  desiredWorkers(envText: string, cpus: number): number;
  releasesToPrune(ids: string[], keep: number, protect: string[]): string[];
  formatReleases(releases: Array<{ id: string; installedAt: string }>, live?: string, previous?: string): string;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tool: Tool = require(path.join(ROOT, 'scripts', 'host', 'release.cjs'));
const recorded = readFileSync(path.join(ROOT, 'test', 'fixtures', 'pm2-jlist-host.txt'), 'utf8');

describe('PM2 process list', () => {
  test('the JSON is the last line, after the lines PM2 prints when it spawns its daemon', () => {
    const list = tool.parseJlist(`[PM2] Spawning PM2 daemon with pm2_home=/srv/x/.pm2\n[PM2] PM2 Successfully daemonized\n${recorded}`);
    expect(list.length).toBeGreaterThan(0);
  });

  test("the app's workers, not the pm2-logrotate module", () => {
    const list = tool.parseJlist(recorded);
    const app = tool.appProcesses(list, 'cemetery-backend');
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
  expect(tool.desiredWorkers(env, cpus)).toBe(want);
});

describe('retention', () => {
  const ids = ['r-7', 'r-6', 'r-5', 'r-4', 'r-3', 'r-2', 'r-1']; // newest first
  test('keeps the newest N', () => {
    expect(tool.releasesToPrune(ids, 5, ['r-7'])).toEqual(['r-2', 'r-1']);
  });
  test('never the live release or the rollback target, however old', () => {
    expect(tool.releasesToPrune(ids, 2, ['r-1', 'r-3'])).toEqual(['r-5', 'r-4', 'r-2']);
  });
});

test('the list marks the live release and the rollback target', () => {
  const text = tool.formatReleases(
    [
      { id: 'r-b', installedAt: '2026-11-28T10:00:00.000Z' },
      { id: 'r-a', installedAt: '2026-11-27T10:00:00.000Z' },
    ],
    'r-b',
    'r-a',
  );
  expect(text).toBe('* r-b  installed 2026-11-28T10:00:00.000Z  (live)\n  r-a  installed 2026-11-27T10:00:00.000Z  (previous: the rollback target)');
});
