/**
 * The stack's sshCommand and sshKnownHosts outputs against a real OpenSSH
 * client and sshd: the pinned host key lets the first connection through with
 * no prompt, and a host with any other key is refused, not learned.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { knownHostsLine, sshCommandWords } from '../infra/ssh-access';
import { SSHD, startSshd, type LoopbackSshd } from './support/sshd';
import { tempDir } from './support/temp-dir';

const haveSshd = existsSync(SSHD);
if (!haveSshd && process.env.CI) throw new Error(`${SSHD} is required in CI (.ci/run installs openssh-server)`);
if (!haveSshd) console.warn(`${SSHD} is missing: skipping the sshCommand checks (apt-get install openssh-server)`);
(haveSshd ? describe : describe.skip)('sshCommand with sshKnownHosts, against a real sshd', () => {
  let sshd: LoopbackSshd;
  let dir: string;
  let clientKey: string;

  beforeAll(async () => {
    sshd = await startSshd();
    dir = tempDir('ssh-access');
    clientKey = path.join(dir, 'client');
    writeFileSync(clientKey, sshd.privateKey, { mode: 0o600 });
  });
  afterAll(async () => sshd?.stop());

  /** The command as an operator runs it (its words as the output has them), with the client's key and no prompt. */
  const connect = (knownHosts: string) => {
    const file = path.join(dir, `known_hosts-${Math.random().toString(36).slice(2)}`);
    writeFileSync(file, `${knownHosts}\n`);
    const [ssh, ...args] = sshCommandWords({ user: sshd.user, host: '127.0.0.1', port: sshd.port, knownHosts: file });
    const r = spawnSync(ssh, ['-i', clientKey, '-o', 'BatchMode=yes', ...args, 'echo connected'], { encoding: 'utf8', timeout: 30000 });
    return { status: r.status, out: r.stdout + r.stderr, knownHostsAfter: readFileSync(file, 'utf8') };
  };

  test('the pinned key: the first connection verifies, with no prompt', () => {
    const line = knownHostsLine('127.0.0.1', sshd.port, sshd.hostKey);
    expect(line).toBe(`[127.0.0.1]:${sshd.port} ${sshd.hostKey.split(' ').slice(0, 2).join(' ')}`);
    expect(connect(line)).toMatchObject({ status: 0, out: 'connected\n' });
  });

  test('a host whose key is not the pinned one (a replaced host, or someone in the middle) is refused, and its key not learned', () => {
    const other = otherHostKey();
    const result = connect(knownHostsLine('127.0.0.1', sshd.port, other));
    expect(result.status).toBe(255);
    expect(result.out).toContain('Host key verification failed');
    expect(result.knownHostsAfter).not.toContain(sshd.hostKey.split(' ')[1]);
  });

  test('no word of the command has a space: $(pulumi stack output sshCommand) splits it as written', () => {
    for (const word of sshCommandWords({ user: 'admin', host: '203.0.113.7', port: 2222, knownHosts: '%d/.ssh/cemetery-prod.known_hosts' })) expect(word).not.toMatch(/\s/);
  });

  /** Another ed25519 public key, as a stranger's host would present. */
  function otherHostKey(): string {
    const file = path.join(tempDir('ssh-other'), 'host');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], { stdio: 'ignore' });
    return readFileSync(`${file}.pub`, 'utf8').trim();
  }
});
