/**
 * The program builds the release from the sources it sees (infra/host-steps.ts
 * ensureBuilt): a source changed after the last `npm run build` is built again
 * before its id is taken, never shipped under the old id; a build that fails
 * fails the program with the build's own message. On a copy of app/ inside the
 * repository (esbuild resolves the app's packages from its node_modules), so the
 * tests beside it keep their app/dist.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureBuilt, releaseId } from '../infra/host-steps';
import { appSourcesId, releaseToolStamp, sourcesId } from '../scripts/lib/build-inputs.cjs';
import { ROOT } from './support/db';

let app: string;
beforeAll(() => {
  const dir = mkdtempSync(path.join(ROOT, '.build-test-'));
  app = path.join(dir, 'app');
  for (const entry of ['src', 'migrations', 'ecosystem.config.js']) cpSync(path.join(ROOT, 'app', entry), path.join(app, entry), { recursive: true });
});
afterAll(() => rmSync(path.dirname(app), { recursive: true, force: true }));

const main = () => path.join(app, 'src', 'main.ts');
const builtId = () => readFileSync(path.join(app, 'dist', 'BUILD_ID'), 'utf8').trim();

test('no build yet: the program builds one; built and unchanged: it builds nothing', () => {
  const first = releaseId(app);
  expect(first).toMatch(/^r-[0-9a-f]{12}$/);
  expect(builtId()).toBe(appSourcesId(app));
  expect(ensureBuilt(app)).toEqual([]);
  expect(releaseId(app)).toBe(first);
});

test('a source changed after the build (git pull, no npm run build): built again, a new id; changed back: the first id again', () => {
  const before = releaseId(app);
  const original = readFileSync(main(), 'utf8');
  writeFileSync(main(), `${original}\n// a change pulled after the last build\n`);
  try {
    expect(ensureBuilt(app)).toEqual([path.relative(ROOT, path.join(app, 'dist'))]);
    const after = releaseId(app);
    expect(after).not.toBe(before);
    expect(builtId()).toBe(appSourcesId(app));
  } finally {
    writeFileSync(main(), original);
  }
  expect(releaseId(app)).toBe(before);
});

test("a source that does not build fails the program with the build's own message; nothing is shipped", () => {
  const original = readFileSync(main(), 'utf8');
  writeFileSync(main(), `${original}\nconst broken = ;\n`);
  try {
    expect(() => releaseId(app)).toThrow(/^the build failed \(node scripts\/build-app\.mjs \S+\):\n[\s\S]*main\.ts:\d+:\d+: ERROR: Unexpected ";"/);
  } finally {
    writeFileSync(main(), original);
  }
});

test('the release tool names the repository files it was built from, and no other: a change elsewhere (a local helper) does not rebuild it, so the release step does not run again for it', () => {
  const firstLine = readFileSync(path.join(ROOT, 'scripts', 'host', 'release.cjs'), 'utf8').split('\n', 1)[0];
  const stamp = releaseToolStamp(firstLine)!;
  expect(stamp.inputs).toEqual(expect.arrayContaining(['scripts/release-tool/cli.ts', 'scripts/release-tool/system-host.ts', 'infra/host-layout.ts', 'scripts/lib/wait.cjs']));
  expect(stamp.inputs.filter((f) => f.startsWith('scripts/lib/'))).toEqual(['scripts/lib/pm2-list.cjs', 'scripts/lib/ports.cjs', 'scripts/lib/wait.cjs']);
  expect(stamp.id).toBe(sourcesId(stamp.inputs));
  // As npm test built it: the program builds nothing.
  expect(ensureBuilt()).toEqual([]);
  expect(releaseToolStamp('// something else sources 0123456789ab a.ts')).toBeUndefined();
});
