/**
 * Checks on the test VM over OpenSSH's client, as an operator would run them
 * (`ssh admin@host '...'`). Provisioning itself goes through the stand-in for
 * the engine and @pulumi/command (test/standin), not through here.
 */
import { spawn } from 'node:child_process';

export type SshTarget = { host: string; port: number; user: string; keyFile: string };

export const sshArgs = (t: SshTarget) => [
  '-i', t.keyFile, '-p', String(t.port),
  '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
  '-o', 'ServerAliveInterval=15',
];

/** Runs a shell command on the target as the SSH user; rejects with its output on failure. */
export function ssh(t: SshTarget, command: string, stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...sshArgs(t), `${t.user}@${t.host}`, command], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`ssh ${command} exited ${code}:\n${stdout}${stderr}`))));
    child.stdin.end(stdin ?? '');
  });
}
