// Runs the project's pinned PM2 CLI (node_modules), never a global one.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

export const PM2_BIN = createRequire(import.meta.url).resolve('pm2/bin/pm2');

/** Runs `pm2 ...args`; returns stdout. Throws with PM2's output when it fails, unless allowFailure. */
export function pm2(args, { env = process.env, allowFailure = false, inherit = false } = {}) {
  const result = spawnSync(process.execPath, [PM2_BIN, ...args], {
    env,
    encoding: 'utf8',
    stdio: inherit ? 'inherit' : 'pipe',
  });
  if (result.status !== 0 && !allowFailure) {
    throw new Error(`pm2 ${args.join(' ')} failed (exit ${result.status}):\n${result.stdout ?? ''}${result.stderr ?? ''}`);
  }
  return result.stdout ?? '';
}

/** The process list as PM2 reports it (`pm2 jlist`). */
export function pm2List(env = process.env) {
  const out = pm2(['jlist'], { env });
  // The first call may print daemon start-up lines ("[PM2] Spawning ...") before the JSON line.
  const json = out.trim().split('\n').pop();
  return JSON.parse(json);
}
