/**
 * Runs, over SSH, exactly the remote.Command and remote.CopyToRemote resources
 * that the Pulumi program registered (recorded under mocks), in dependency
 * order, as the command provider would: a command is the `create` string run
 * by the login shell, with `stdin`; a copy creates missing parent directories
 * and copies with scp semantics. No host command is written here.
 */
import { spawn } from 'node:child_process';
import type { RecordedResource } from '../support/pulumi-mocks';

const COMMAND = 'command:remote:Command';
const COPY = 'command:remote:CopyToRemote';

type Secretish<T> = T | { value: T };
const unwrap = <T>(v: Secretish<T>): T => (v && typeof v === 'object' && 'value' in (v as object) ? (v as { value: T }).value : (v as T));

export type RemoteStep = { name: string; type: typeof COMMAND | typeof COPY; inputs: Record<string, any> };

/** The program's remote resources in an order that respects every dependency between them. */
export function remotePlan(resources: RecordedResource[], dependencies: Record<string, string[]>): RemoteStep[] {
  const remote = resources.filter((r) => r.type === COMMAND || r.type === COPY) as RemoteStep[];
  const names = new Set(remote.map((r) => r.name));
  const done = new Set<string>();
  const plan: RemoteStep[] = [];
  while (plan.length < remote.length) {
    const ready = remote.filter((r) => !done.has(r.name) && (dependencies[r.name] ?? []).filter((d) => names.has(d)).every((d) => done.has(d)));
    if (ready.length === 0) throw new Error('dependency cycle among remote resources');
    // Registration order among the ready ones, as the engine would start them.
    const next = ready[0];
    plan.push(next);
    done.add(next.name);
  }
  return plan;
}

export type SshTarget = { host: string; port: number; user: string; keyFile: string };

export const sshArgs = (t: SshTarget) => [
  '-i', t.keyFile, '-p', String(t.port),
  '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
  '-o', 'ServerAliveInterval=15',
];

function run(cmd: string, args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

/** Runs a shell command on the target as the SSH user; rejects with its output on failure. */
export async function ssh(t: SshTarget, command: string, stdin?: string): Promise<string> {
  const r = await run('ssh', [...sshArgs(t), `${t.user}@${t.host}`, command], stdin);
  if (r.code !== 0) throw new Error(`ssh ${command} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

export type StepTiming = { name: string; seconds: number };

/** Executes the plan on the target; returns how long each step took. */
export async function executePlan(plan: RemoteStep[], t: SshTarget, log: (line: string) => void = () => {}): Promise<StepTiming[]> {
  const timings: StepTiming[] = [];
  for (const step of plan) {
    const started = Date.now();
    const connection = unwrap(step.inputs.connection) as { host: string; port: number; user: string };
    if (connection.user !== t.user || connection.port !== t.port) {
      throw new Error(`${step.name} connects to ${connection.user}@${connection.host}:${connection.port}, not the test VM`);
    }
    if (step.type === COPY) {
      const remotePath = step.inputs.remotePath as string;
      const source = step.inputs.source as { path: Promise<string> | string };
      const local = await source.path;
      await ssh(t, `mkdir -p "$(dirname '${remotePath}')"`);
      const r = await run('scp', ['-r', ...sshArgs(t).map((a) => (a === '-p' ? '-P' : a)), local, `${t.user}@${t.host}:${remotePath}`]);
      if (r.code !== 0) throw new Error(`copy ${step.name} failed:\n${r.stderr}`);
    } else {
      const stdin = step.inputs.stdin === undefined ? undefined : (unwrap(step.inputs.stdin) as string);
      const r = await run('ssh', [...sshArgs(t), `${t.user}@${t.host}`, step.inputs.create as string], stdin);
      const output = step.inputs.logging === 'none' ? '(logging off)' : (r.stdout + r.stderr).trim();
      if (r.code !== 0) throw new Error(`step ${step.name} failed (exit ${r.code}):\n${output}\n${step.inputs.logging === 'none' ? r.stderr : ''}`);
      log(`${step.name}: ${output}`);
    }
    timings.push({ name: step.name, seconds: Math.round((Date.now() - started) / 100) / 10 });
  }
  return timings;
}
