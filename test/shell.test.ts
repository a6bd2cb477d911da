/**
 * Every shell file in scripts/ passes shellcheck. CI installs it (.ci/run) and
 * requires it; on a machine without it these checks are skipped with a notice.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './support/db';

const shellFiles = ['scripts/host', 'scripts']
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

test.each(shellFiles.filter((f) => !f.endsWith('lib.sh')))('%s runs with strict mode', (file) => {
  const source = require('node:fs').readFileSync(path.join(ROOT, file), 'utf8') as string;
  expect(/set -euo pipefail|source "\$\(dirname "\$0"\)\/lib\.sh"/.test(source)).toBe(true);
});
