/**
 * scripts/local-vm.sh on machines unlike this one: the image's name is derived from the machine's own CAs
 * (VM_LOCAL_CAS), and most machines have none. Its first version ended there, silently, with status 1 (pipefail).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './support/temp-dir';

const script = path.join(__dirname, '..', 'scripts', 'local-vm.sh');
const status = (cas: string) =>
  spawnSync('bash', [script, 'status'], { encoding: 'utf8', env: { ...process.env, VM_LOCAL_CAS: cas, VM_STATE: tempDir('local-vm-state') } });

test('local-vm.sh runs on a machine without CAs of its own, and on one with some', () => {
  const none = tempDir('local-vm-cas');
  expect(status(none)).toMatchObject({ status: 0, stdout: 'stopped\n', stderr: '' });
  expect(status(path.join(none, 'missing'))).toMatchObject({ status: 0, stdout: 'stopped\n', stderr: '' });
  writeFileSync(path.join(none, 'proxy.crt'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
  expect(status(none)).toMatchObject({ status: 0, stdout: 'stopped\n', stderr: '' });
});
