import { spawn } from 'node:child_process';
import readline from 'node:readline';

/**
 * Runs the commands at once (one per host), each line of their output written as it comes, marked with its
 * command's label; their stderr as it is. Resolves, once all have ended, with the first non-zero exit code (255 for
 * one that could not run), or 0.
 */
export function streamLabelled(runs: Array<{ label: string; command: string; args: string[] }>, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  return Promise.all(
    runs.map(
      ({ label, command, args }) =>
        new Promise<number>((resolve) => {
          const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
          readline.createInterface({ input: child.stdout! }).on('line', (line) => out.write(`${label} ${line}\n`));
          child.on('error', () => resolve(255));
          child.on('close', (code) => resolve(code ?? 255));
        }),
    ),
  ).then((codes) => codes.find((c) => c !== 0) ?? 0);
}
