/**
 * A stand-in for the Pulumi engine, for the @pulumi/command resources of the
 * program: it keeps each resource's saved state across successive `up`s of one
 * test run and applies the engine's rules. Sources: pulumi/pulumi v3.259.0
 * (pkg/resource/deploy/step_generator.go, step.go, step_executor.go,
 * deployment_executor.go, pkg/backend/snapshot.go) and pulumi-go-provider
 * v1.3.0 (infer/resource.go), which @pulumi/command 1.2.1 is built on.
 *
 * 1. Inputs equal to the saved inputs: a "same" step, nothing runs
 *    (step_generator.go L1953, L2196-2197, L1893-1912; step.go L173-179).
 *    Each resource is diffed on its own inputs only: a changed dependency
 *    alone never re-runs it (step_generator.go diff, L2882-2958).
 *    Assets and archives compare by hash alone (sdk archive.go L181-200).
 * 2. `triggers` changed (replaceOnChanges: command.go L42 via common/inputs.go
 *    L10, copy.go L38; infer Diff marks it replace, infer/resource.go
 *    diff), or `--replace` (step_generator.go L2890): replace,
 *    create-before-delete (L2157-2162); the original's `delete` runs after
 *    every other step, in the delete phase (L2388-2421,
 *    deployment_executor.go L486-501), and on the next `up` if this one fails.
 * 3. Any other input changed: update, i.e. the provider's Update.
 * 4. A failed create saves nothing (step.go L439-440, snapshot.go L448-458;
 *    infer/resource.go Create returns no partial state for a plain error):
 *    the next `up` creates it again. A failed update or replace keeps the old
 *    saved state (step.go L1086-1087, snapshot.go L492-494). After a failure
 *    the engine starts no further step (step_executor.go L435-461, no
 *    --continue-on-error), so nothing that depends on it runs; deletes are
 *    not generated (deployment_executor.go L318-332).
 * 5. Resources gone from the program, and `destroy`: every `delete`, in
 *    reverse dependency order (step_generator.go L2422-2427, ScheduleDeletes
 *    L2745-2794).
 *
 * 6. Resources that do not depend on each other run at the same time: the
 *    SDK registers a resource only once its dependsOn resources' calls have
 *    returned (sdk/nodejs/runtime/resource.ts L980, dependsOn.ts L115-116),
 *    the engine returns a call only when its step is done (source_eval.go
 *    L2945-2947, step.go L475), and runs what it is given on a pool of
 *    4 × CPUs workers (cmd/pulumi/operations/up.go L68-88,
 *    step_executor.go L761-767), more than this program ever runs at once.
 *    After a failure no new step starts, steps already running finish and are
 *    saved (step_executor.go L407-411, L415-460; deployment_executor.go L350;
 *    engine/update.go L1416-1420), and no delete runs.
 *
 * Resources of other types (AWS, random) are left to Pulumi's mocks.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import * as pulumi from '@pulumi/pulumi';
import { listFiles } from '../../infra/host-steps';
import type { RecordedResource } from '../support/pulumi-mocks';
import { providers, type Inputs, type Log, type Outputs, type Source } from './provider';

/** What the program registered: from runProgram under mocks. */
export type Program = { resources: RecordedResource[]; dependencies: Record<string, string[]> };
export type Op = 'create' | 'update' | 'replace' | 'delete';
export type Step = { name: string; op: Op; seconds: number };
/** A line a command logged while it ran (an ephemeral status in `pulumi up`'s display), with when it arrived. */
export type OutputLine = { resource: string; line: string; at: number };
export type UpResult = { steps: Step[]; failed?: { name: string; op: Op; message: string }; output?: OutputLine[] };
type Saved = { name: string; type: string; inputs: Inputs; outputs: Outputs; dependencies: string[] };

const SECRET_SIG = '4dabf18193072939515e22adb298388d';

/** The engine's asset and archive hashes change with any file's name or bytes. */
function sourceOf(kind: Source['kind'], file: string): Source {
  const hash = createHash('sha256');
  const files = statSync(file).isDirectory() ? listFiles(file) : [file];
  for (const f of files) hash.update(f.slice(file.length)).update('\0').update(readFileSync(f)).update('\0');
  return { kind, path: file, hash: hash.digest('hex') };
}

/** Mock-recorded inputs as plain values: secrets unwrapped, assets as path and hash. */
async function plain(value: unknown): Promise<unknown> {
  if (value instanceof pulumi.asset.FileArchive) return sourceOf('archive', await value.path);
  if (value instanceof pulumi.asset.FileAsset) return sourceOf('asset', await value.path);
  if (Array.isArray(value)) return Promise.all(value.map(plain));
  if (value && typeof value === 'object') {
    if (SECRET_SIG in value) return plain((value as unknown as { value: unknown }).value);
    const entries = await Promise.all(Object.entries(value).filter(([, v]) => v !== undefined).map(async ([k, v]) => [k, await plain(v)] as const));
    return Object.fromEntries(entries);
  }
  return value;
}

/** Sources compare by their hash alone (archive.go / asset.go Equals); the path is kept for the copy. */
const forDiff = (v: unknown) => JSON.parse(JSON.stringify(v ?? null, (_k, x) => (x && typeof x === 'object' && 'hash' in x && 'kind' in x ? { kind: x.kind, hash: x.hash } : x)));
const changedKeys = (olds: Inputs, news: Inputs) =>
  [...new Set([...Object.keys(olds), ...Object.keys(news)])].filter((k) => !isDeepStrictEqual(forDiff(olds[k]), forDiff(news[k])));

export class Engine {
  readonly state = new Map<string, Saved>();
  /** Originals of replaced resources, deleted at the end of the first `up` that gets there. */
  private pendingDeletes: Saved[] = [];
  constructor(private readonly log: Log = () => {}) {}

  /** What the provider logs for a resource: kept in `output` with its time, and passed on naming the resource. */
  private logFor(output: OutputLine[], resource: string): Log {
    return (line) => {
      output.push({ resource, line, at: Date.now() });
      this.log(`${resource}: ${line}`);
    };
  }

  /** The program's command resources, in registration order where dependencies allow (as the engine starts them). */
  static async plan(program: Program) {
    const own = program.resources.filter((r) => r.type in providers);
    const names = new Set(own.map((r) => r.name));
    const deps = (name: string) => (program.dependencies[name] ?? []).filter((d) => names.has(d));
    const ordered: Array<{ name: string; type: string; inputs: Inputs; dependencies: string[] }> = [];
    const done = new Set<string>();
    while (ordered.length < own.length) {
      const next = own.find((r) => !done.has(r.name) && deps(r.name).every((d) => done.has(d)));
      if (!next) throw new Error('dependency cycle among the remote resources');
      ordered.push({ name: next.name, type: next.type, inputs: (await plain(next.inputs)) as Inputs, dependencies: deps(next.name) });
      done.add(next.name);
    }
    return ordered;
  }

  /** `pulumi up` (with `--replace` for the names in `replace`). */
  async up(program: Program, opts: { replace?: string[] } = {}): Promise<UpResult> {
    const steps: Step[] = [];
    const output: OutputLine[] = [];
    const logFor = (resource: string) => this.logFor(output, resource);
    const plan = await Engine.plan(program);
    let failed: UpResult['failed'];
    /** Per resource: settles when its step is done; false if it failed or never started. */
    const done = new Map<string, Promise<boolean>>();
    const run = async (r: (typeof plan)[number]) => {
      const ready = await Promise.all(r.dependencies.map((d) => done.get(d)!));
      if (failed || !ready.every(Boolean)) return false;
      const old = this.state.get(r.name);
      const changed = old ? changedKeys(old.inputs, r.inputs) : [];
      const op: Op | undefined = !old ? 'create' : changed.includes('triggers') || opts.replace?.includes(r.name) ? 'replace' : changed.length ? 'update' : undefined;
      if (!op) return true;
      const provider = providers[r.type];
      const started = Date.now();
      try {
        const outputs = op === 'update' ? await provider.update(old!.inputs, old!.outputs, r.inputs, logFor(r.name)) : await provider.create(r.inputs, logFor(r.name));
        if (op === 'replace') this.pendingDeletes.push(old!);
        this.state.set(r.name, { name: r.name, type: r.type, inputs: r.inputs, outputs, dependencies: r.dependencies });
        steps.push({ name: r.name, op, seconds: (Date.now() - started) / 1000 });
        return true;
      } catch (err) {
        failed ??= { name: r.name, op, message: (err as Error).message };
        return false;
      }
    };
    // The plan lists each resource after its dependencies, so theirs are in `done` before it starts.
    for (const r of plan) done.set(r.name, run(r));
    await Promise.all(done.values());
    if (failed) return { steps, failed, output };
    // Resources no longer in the program, then the replaced originals: deleted last.
    const gone = [...this.state].filter(([name]) => !plan.some((r) => r.name === name));
    for (const [name, saved] of gone.reverse()) {
      const failed = await this.remove(name, saved, steps, logFor(name));
      if (failed) return { steps, failed, output };
    }
    while (this.pendingDeletes.length) {
      const saved = this.pendingDeletes[this.pendingDeletes.length - 1];
      const started = Date.now();
      try {
        await providers[saved.type].delete(saved.inputs, saved.outputs, logFor(saved.name));
      } catch (err) {
        return { steps, failed: { name: saved.name, op: 'delete' as const, message: (err as Error).message }, output };
      }
      this.pendingDeletes.pop();
      steps.push({ name: saved.name, op: 'delete', seconds: (Date.now() - started) / 1000 });
    }
    return { steps, output };
  }

  /** `pulumi destroy`: every saved resource's delete, dependents first. */
  async destroy(): Promise<UpResult> {
    const steps: Step[] = [];
    const output: OutputLine[] = [];
    const order = [...this.state.keys()];
    for (const name of order.reverse()) {
      const failed = await this.remove(name, this.state.get(name)!, steps, this.logFor(output, name));
      if (failed) return { steps, failed, output };
    }
    return { steps, output };
  }

  private async remove(name: string, saved: Saved, steps: Step[], log: Log) {
    const started = Date.now();
    try {
      await providers[saved.type].delete(saved.inputs, saved.outputs, log);
    } catch (err) {
      return { name, op: 'delete' as const, message: (err as Error).message };
    }
    this.state.delete(name);
    steps.push({ name, op: 'delete', seconds: (Date.now() - started) / 1000 });
    return undefined;
  }
}

/** Throws with the engine's failure, for callers that expect success. */
export function succeeded(result: UpResult): Step[] {
  if (result.failed) throw new Error(`${result.failed.name} (${result.failed.op}) failed: ${result.failed.message}`);
  return result.steps;
}
