/** The release tool's decisions: pure functions of plain values (tested in test/release-tool.test.ts). */
import { parseEnv } from 'node:util';
import { CONFIG_ERROR_EXIT_CODE } from '../../app/src/exit-codes';
import type { Pm2Process } from '../lib/pm2-list.cjs';

/** A failure the operator can act on: printed as it is, without a stack trace. */
export class ReleaseError extends Error {}

/** The app's PM2 processes (any status), by name: not the pm2-logrotate module. */
export const appProcesses = (list: Pm2Process[], name: string) => list.filter((p) => p.name === name);

/** How many workers the environment file asks for: PM2_INSTANCES, "max" (the default in production) = one per CPU. */
export function desiredWorkers(envText: string, cpus: number): number {
  const raw = parseEnv(envText).PM2_INSTANCES;
  if (!raw || raw === 'max') return cpus;
  if (!/^[1-9]\d{0,2}$/.test(raw)) throw new ReleaseError(`PM2_INSTANCES must be "max" or 1-999, got "${raw}"`);
  return Number(raw);
}

/** Releases to remove: all but the newest `keep` (newest first in `ids`), never one in `protect`. */
export function releasesToPrune(ids: string[], keep: number, protect: string[]): string[] {
  const kept = new Set([...ids.slice(0, keep), ...protect]);
  return ids.filter((id) => !kept.has(id));
}

export type InstalledRelease = { id: string; installedAt: string };

/** `cemetery-release list`: newest first, with the install date, the live one and the rollback target marked. */
export function formatReleases(releases: InstalledRelease[], live?: string, previous?: string): string {
  if (!releases.length) return 'no releases installed';
  return releases
    .map((r) => `${r.id === live ? '*' : ' '} ${r.id}  installed ${r.installedAt}${r.id === live ? '  (live)' : r.id === previous ? '  (previous: the rollback target)' : ''}`)
    .join('\n');
}

/**
 * How PM2 paces a reload of `workers` processes: one at a time for up to two, else two at a time
 * (pm2 7.0.4 lib/API.js _operate: concurrent_actions is `--parallel` or CONCURRENT_ACTIONS, lines 1321
 * and 1346-1347; constants.js 90-91: PM2_CONCURRENT_ACTIONS or 2, unset under the tool's `env -i`).
 * Each new worker takes traffic once it says ready, before its old one is retired, so none is short.
 */
export const reloadPace = (workers: number) => (workers <= 2 ? 'one worker at a time' : 'two workers at a time');

/**
 * The worker a line of `pm2 reload`/`startOrReload` says is done, or undefined: PM2 prints
 * `[PM2] [<name>](<id>) ✓` as each process's action completes (pm2 7.0.4 lib/API.js _operate, line 1410).
 */
export function workerDone(line: string, name: string): number | undefined {
  // PM2 colours its prefix even on a pipe.
  // eslint-disable-next-line no-control-regex
  const m = /^\[PM2\] \[(.+)\]\((\d+)\) \u2713/.exec(line.replace(/\x1b\[[0-9;]*m/g, ''));
  return m && m[1] === name ? Number(m[2]) : undefined;
}

export const lastLines = (text: string, n: number) => String(text).trimEnd().split('\n').slice(-n).join('\n');

/** How a gated release's process ended, for the refusal. */
export const describeExit = (code: number | null, signal: string | null) =>
  code === null ? `signal ${signal}` : `code ${code}${code === CONFIG_ERROR_EXIT_CODE ? ' (a configuration error)' : ''}`;
