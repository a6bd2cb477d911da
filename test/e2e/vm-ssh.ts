/**
 * Checks on the test VM over OpenSSH's client, as an operator would run them
 * (`ssh admin@host '...'`). Provisioning itself goes through the stand-in for
 * the engine and @pulumi/command (test/standin), not through here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

export type SshTarget = { host: string; port: number; user: string; keyFile: string };

/**
 * One SSH connection per target and key, shared by the checks (OpenSSH's
 * ControlMaster): under emulation a new connection's key exchange and login
 * take about 1.7 s, a shared one 0.15 s. The key is in the socket's name, so a
 * check with another key (a rotated one) never rides on a login with the old.
 * `fresh: true` logs in anew (a test that counts logins).
 */
export const sshArgs = (t: SshTarget, { fresh = false } = {}) => [
  '-i', t.keyFile, '-p', String(t.port),
  '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
  '-o', 'ServerAliveInterval=15', '-o', 'ConnectTimeout=10',
  ...(fresh
    ? ['-o', 'ControlPath=none']
    : ['-o', 'ControlMaster=auto', '-o', 'ControlPersist=120', '-o', `ControlPath=${path.join(os.tmpdir(), `cemetery-ssh-${createHash('sha256').update(t.keyFile).digest('hex').slice(0, 8)}-%C`)}`]),
];

/** Ends the shared connection (before a reboot takes it down under it); nothing if there is none. */
export function closeShared(t: SshTarget) {
  spawnSync('ssh', [...sshArgs(t), '-O', 'exit', `${t.user}@${t.host}`], { stdio: 'ignore' });
}

/** Runs a shell command on the target as the SSH user; rejects with its output on failure. */
export function ssh(t: SshTarget, command: string, stdin?: string, opts: { fresh?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...sshArgs(t, opts), `${t.user}@${t.host}`, command], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`ssh ${command} exited ${code}:\n${stdout}${stderr}`))));
    // An ssh that gives up at once (the host rebooting refuses the connection) may be gone before its stdin is
    // written: that EPIPE is the same failure its exit code reports, not one of its own.
    child.stdin.on('error', () => {}).end(stdin ?? '');
  });
}
