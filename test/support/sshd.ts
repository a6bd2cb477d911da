/**
 * A real OpenSSH sshd on loopback, started for a test: its own host key, one
 * client key, the current user as the login, SFTP, and AcceptEnv for the
 * variables @pulumi/command sends. Needs /usr/sbin/sshd (Debian's
 * openssh-server; .ci/run installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/lib/ports.cjs';
import { waitUntil } from '../../scripts/lib/wait.cjs';

export const SSHD = '/usr/sbin/sshd';

export type LoopbackSshd = {
  port: number;
  user: string;
  home: string;
  /** A scratch directory that the SSH user owns. */
  dir: string;
  privateKey: string;
  /** The host's public key, authorized_keys format (what `hostKey` takes). */
  hostKey: string;
  stop(): Promise<void>;
};

/** `address`: another loopback address (a second host of a fleet), `port`: the first host's (a fleet shares sshPort). */
export async function startSshd({ address = '127.0.0.1', port: given }: { address?: string; port?: number } = {}): Promise<LoopbackSshd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cemetery-sshd-'));
  const keygen = (file: string) => spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], { stdio: 'ignore' });
  keygen(path.join(dir, 'host_ed25519'));
  keygen(path.join(dir, 'client_ed25519'));
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client_ed25519.pub')));
  const port = given ?? (await freePort());
  const user = os.userInfo().username;
  writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      `ListenAddress ${address}`,
      `HostKey ${path.join(dir, 'host_ed25519')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'AcceptEnv PULUMI_COMMAND_STDOUT PULUMI_COMMAND_STDERR',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  // sshd as root needs its privilege separation directory.
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  await waitUntil(
    `sshd on ${address}:${port}`,
    () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) throw new Error(`sshd exited: ${log}`);
        const socket = net.connect(port, address, () => (socket.destroy(), resolve(true)));
        socket.on('error', () => resolve(false));
      }),
    { timeoutMs: 30000, intervalMs: 100 },
  ).catch((err) => {
    // An sshd that never answered is stopped here: the caller has no handle to stop it with.
    child.kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const scratch = path.join(dir, 'scratch');
  mkdirSync(scratch);
  return {
    port,
    user,
    home: os.homedir(),
    dir: scratch,
    privateKey: readFileSync(path.join(dir, 'client_ed25519'), 'utf8'),
    hostKey: readFileSync(path.join(dir, 'host_ed25519.pub'), 'utf8').trim(),
    stop: async () => {
      child.kill();
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
