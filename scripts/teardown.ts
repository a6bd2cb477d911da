#!/usr/bin/env -S npx tsx
/**
 * Tears down Pulumi stacks: one by name, or every staging stack not updated
 * within a TTL. Used by the staging workflow and by people.
 *
 *   npm run teardown -- --stack staging-pr-42 [--dry-run]
 *   npm run teardown -- --stack dev --force          dev, every prod* stack and staging-shared need --force
 *   npm run teardown -- --stale --ttl 72h [--dry-run]
 *
 * A stack that does not exist is a success ("nothing to tear down"). Tearing
 * down is a preview of the destroy (printed), the destroy, then `pulumi stack
 * rm`; --dry-run stops after the preview. The sweep only ever looks at stacks
 * named staging-*, never at a protected one, and never at a stack younger than
 * the TTL: a stack never updated has no age to judge (and no resources), so it
 * is left alone.
 */
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';
import { isProdStack } from '../infra/config';

/** Long-lived besides prod: dev, and staging-shared (it holds every staging stack's network). */
export const LONG_LIVED_STACKS = ['dev', 'staging-shared'];
export const STAGING_PREFIX = 'staging-';

/**
 * --stack needs --force, and the sweep never touches it: prod-ness by the same
 * rule as the program's (any prod* stack: prod-eu, production), plus the long-lived ones.
 */
export const isProtectedStack = (name: string) => isProdStack(shortName(name)) || LONG_LIVED_STACKS.includes(shortName(name));

export type StackSummary = { name: string; lastUpdate?: string; updateInProgress?: boolean; resourceCount?: number };

/** "dev", or "org/dev", or "org/project/dev" as `pulumi stack ls --json` may print it: the stack's own name. */
export const shortName = (name: string) => name.split('/').pop()!;

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };
export function parseTtl(text: string): number {
  const m = /^(\d+)([mhd])$/.exec(text);
  if (!m || Number(m[1]) === 0) throw new UsageError(`--ttl must be a duration such as 90m, 72h or 7d, got "${text}"`);
  return Number(m[1]) * UNITS[m[2]];
}

/**
 * The staging stacks whose last update is older than the TTL, oldest first.
 * A stack never updated (or with a date that does not parse) has no provable
 * age: it might have been created a minute ago for a first deploy, so it is kept.
 */
export function staleStacks(stacks: StackSummary[], now: Date, ttlMs: number): Array<StackSummary & { reason: string }> {
  return stacks
    .filter((s) => shortName(s.name).startsWith(STAGING_PREFIX) && !isProtectedStack(s.name))
    .filter((s) => !s.updateInProgress)
    .flatMap((s) => {
      const age = now.getTime() - Date.parse(s.lastUpdate ?? '');
      return age > ttlMs ? [{ ...s, reason: `last updated ${Math.floor(age / 3_600_000)} h ago` }] : [];
    })
    .sort((a, b) => (a.lastUpdate ?? '').localeCompare(b.lastUpdate ?? ''));
}

export class UsageError extends Error {}

type Log = (line: string) => void;

/** Runs the `pulumi` found on PATH, without a shell; fails with the command and its output. */
function pulumi(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('pulumi', args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pulumi ${args.join(' ')} failed (${err.code ?? err.message}):\n${stderr || stdout}`));
      else resolve(stdout);
    });
  });
}

async function listStacks(): Promise<StackSummary[]> {
  const out = await pulumi(['stack', 'ls', '--json']);
  try {
    return JSON.parse(out) as StackSummary[];
  } catch {
    throw new Error(`pulumi stack ls --json printed something that is not JSON:\n${out.slice(0, 500)}`);
  }
}

/** The destroy's preview is printed before anything is deleted, so the log shows what went (or would go). */
async function destroyAndRemove(stack: string, log: Log, { dryRun = false } = {}) {
  log(`${stack}: previewing the destroy`);
  log((await pulumi(['destroy', '--stack', stack, '--preview-only', '--non-interactive'])).trimEnd());
  if (dryRun) {
    log(`${stack}: --dry-run, nothing destroyed`);
    return;
  }
  log(`${stack}: destroying its resources`);
  await pulumi(['destroy', '--stack', stack, '--yes', '--non-interactive']);
  log(`${stack}: removing the stack`);
  await pulumi(['stack', 'rm', stack, '--yes', '--non-interactive']);
  log(`${stack}: gone`);
}

export async function teardownStack(stack: string, { force = false, dryRun = false, log = console.log as Log } = {}) {
  if (isProtectedStack(stack) && !force) {
    const why = isProdStack(shortName(stack)) ? 'it is a prod stack (its name starts with prod)' : 'it is a long-lived stack';
    throw new UsageError(`refusing to tear down "${stack}": ${why}; add --force if you really mean it`);
  }
  const existing = (await listStacks()).find((s) => shortName(s.name) === shortName(stack));
  if (!existing) {
    log(`${stack}: no such stack, nothing to tear down`);
    return;
  }
  await destroyAndRemove(stack, log, { dryRun });
}

export async function sweepStale(ttlMs: number, { dryRun = false, now = new Date(), log = console.log as Log } = {}) {
  const stale = staleStacks(await listStacks(), now, ttlMs);
  if (stale.length === 0) log('no stale staging stacks');
  const failures: string[] = [];
  for (const stack of stale) {
    const name = shortName(stack.name);
    log(`${name}: stale (${stack.reason})${dryRun ? ', would tear down' : ''}`);
    if (dryRun) continue;
    // One failure does not keep the others alive.
    await destroyAndRemove(name, log).catch((err: Error) => failures.push(`${name}: ${err.message}`));
  }
  if (failures.length) throw new Error(`could not tear down ${failures.length} stack(s):\n${failures.join('\n')}`);
}

async function main(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      stack: { type: 'string' },
      force: { type: 'boolean', default: false },
      stale: { type: 'boolean', default: false },
      ttl: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.stack && !values.stale) return teardownStack(values.stack, { force: values.force, dryRun: values['dry-run'] });
  if (values.stale && !values.stack) {
    if (!values.ttl) throw new UsageError('--stale needs --ttl, e.g. --ttl 72h');
    return sweepStale(parseTtl(values.ttl), { dryRun: values['dry-run'] });
  }
  throw new UsageError('usage: teardown --stack <name> [--force] [--dry-run] | --stale --ttl <72h> [--dry-run]');
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: Error) => {
    console.error(`teardown: ${err.message}`);
    process.exit(err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1);
  });
}
