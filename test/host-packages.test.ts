/**
 * What the host installs from npm comes from lockfiles in the repository
 * (scripts/host/pm2, scripts/host/pm2-logrotate-module), with npm ci
 * --ignore-scripts: every version and integrity hash pinned, nothing run at
 * install. These checks keep the lockfiles what the host steps assume.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { HOST_LAYOUT, HOST_SCRIPTS_DIR } from '../infra/host-steps';
import { ROOT } from './support/db';

type Lock = { lockfileVersion: number; packages: Record<string, { version?: string; resolved?: string; integrity?: string; hasInstallScript?: boolean; dependencies?: Record<string, string> }> };
const read = <T>(...parts: string[]) => JSON.parse(readFileSync(path.join(...parts), 'utf8')) as T;

describe.each(['pm2', 'pm2-logrotate-module'])('scripts/host/%s', (dir) => {
  const manifest = read<{ dependencies: Record<string, string> }>(HOST_SCRIPTS_DIR, dir, 'package.json');
  const lock = read<Lock>(HOST_SCRIPTS_DIR, dir, 'package-lock.json');
  const installed = Object.entries(lock.packages).filter(([key]) => key !== '');

  test('the lockfile is the manifest\'s (npm ci refuses one out of step), pinned exactly', () => {
    expect(lock.lockfileVersion).toBe(3);
    expect(lock.packages[''].dependencies).toEqual(manifest.dependencies);
    for (const version of Object.values(manifest.dependencies)) expect(version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test('every package comes from the registry (no git, file or tarball URL) with an integrity hash', () => {
    expect(installed.length).toBeGreaterThan(10);
    for (const [key, p] of installed) {
      // No `resolved` (omit-lockfile-registry-resolved) means the configured registry, by name and version.
      expect({ key, fromRegistry: p.resolved === undefined || p.resolved.startsWith('https://registry.npmjs.org/'), integrity: p.integrity }).toEqual({ key, fromRegistry: true, integrity: expect.stringMatching(/^sha512-/) });
    }
  });

  test('no package has an install script, so --ignore-scripts leaves nothing undone', () => {
    expect(installed.filter(([, p]) => p.hasInstallScript).map(([key]) => key)).toEqual([]);
  });
});

test("the host's PM2 is the repository's (package.json pins the same version)", () => {
  expect(read<{ dependencies: Record<string, string> }>(ROOT, 'package.json').dependencies.pm2).toBe(HOST_LAYOUT.pm2Version);
  expect(read<Lock>(HOST_SCRIPTS_DIR, 'pm2', 'package-lock.json').packages['node_modules/pm2'].version).toBe(HOST_LAYOUT.pm2Version);
});

test("pm2-logrotate's dependencies all sit beside it, none under it: the module takes them as its own node_modules", () => {
  const lock = read<Lock>(HOST_SCRIPTS_DIR, 'pm2-logrotate-module', 'package-lock.json');
  expect(lock.packages['node_modules/pm2-logrotate'].version).toBe(HOST_LAYOUT.logrotateVersion);
  expect(Object.keys(lock.packages).filter((key) => key.startsWith('node_modules/pm2-logrotate/'))).toEqual([]);
  // Its `pm2: latest` and `pmx: latest` no longer float.
  expect(lock.packages['node_modules/pm2'].version).toBe(HOST_LAYOUT.pm2Version);
  expect(lock.packages['node_modules/pmx'].version).toMatch(/^\d+\.\d+\.\d+$/);
});
