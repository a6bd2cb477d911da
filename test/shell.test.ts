/** Every shell file in scripts/ passes shellcheck (installed by .ci/run; `apt-get install shellcheck` locally). */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './support/db';

const shellFiles = ['scripts/host', 'scripts']
  .flatMap((dir) => readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith('.sh')).map((f) => path.join(dir, f)));

test('there are host scripts to check', () => {
  expect(shellFiles).toEqual(expect.arrayContaining(['scripts/host/lib.sh', 'scripts/host/system-limits.sh', 'scripts/host/nodejs.sh']));
});

test.each(shellFiles)('%s passes shellcheck', (file) => {
  const result = spawnSync('shellcheck', ['-x', '-P', 'SCRIPTDIR', file], { cwd: ROOT, encoding: 'utf8' });
  if (result.error) throw new Error(`shellcheck is not installed (apt-get install shellcheck): ${result.error.message}`);
  expect(result.stdout + result.stderr).toBe('');
  expect(result.status).toBe(0);
});

test.each(shellFiles.filter((f) => !f.endsWith('lib.sh')))('%s runs with strict mode', (file) => {
  const source = require('node:fs').readFileSync(path.join(ROOT, file), 'utf8') as string;
  expect(/set -euo pipefail|source "\$\(dirname "\$0"\)\/lib\.sh"/.test(source)).toBe(true);
});
