/**
 * Making a release live: the health gate, then the switch (renames and
 * links), each step undone in reverse if PM2 does not come up on it. Written
 * against ReleaseHost so that the switch and its undo are tested on a fake
 * host (test/release-tool.test.ts); system-host.ts is the real one.
 */
import { sleep } from '../lib/wait.cjs';
import { ReleaseError } from './plan';

export type LinkName = 'current' | 'previous';

/** What activate needs from a host. Every file here is in root's own directories (the app-user step makes them). */
export interface ReleaseHost {
  /** shared/app.env: the app's environment (DATABASE_URL and the PM2 tunables). */
  readonly envFile: string;
  /** The env file, or undefined before the first deploy. */
  readEnv(file: string): string | undefined;
  /** Writes a new file the app user may read and not change. */
  writeEnv(file: string, text: string): void;
  rename(from: string, to: string): void;
  remove(file: string): void;
  /** The release a link points at, or undefined. */
  link(name: LinkName): string | undefined;
  /** Points a link at a release in one rename: no reader ever sees it missing. */
  setLink(name: LinkName, id: string): void;
  removeLink(name: LinkName): void;
  /** The release's migrations, with this env file. */
  migrate(id: string, envFile: string): void;
  /** The release on a spare loopback port answers /readyz 200 within the timeout, or this throws saying why not. */
  gate(id: string, envFile: string, timeoutSeconds: number): Promise<void>;
  /** The workers the live env file asks for (PM2_INSTANCES; "max": one per CPU). */
  wantedWorkers(): number;
  /** Starts PM2 on `current`, or reloads it worker by worker (logging each), then scales; returns the workers wanted. */
  reload(): Promise<number>;
  /** '' when `want` workers are online on release `id`, else what is wrong. */
  serving(id: string, want: number): Promise<string>;
  /** PM2's process list saved, for the next boot. */
  save(): void;
  log(line: string): void;
}

export type ActivateOptions = {
  /** The new environment file: used for the migrations and the gate, and put in place only if they pass. */
  envText?: string;
  migrate: boolean;
  timeoutSeconds: number;
  /** How long PM2 may take to have every worker online on the release. */
  settleSeconds?: number;
};

/** Polls `check` ('' when all is well, else what is wrong) for up to `seconds`. */
export async function waitFor(check: () => Promise<string>, seconds: number): Promise<string> {
  const until = Date.now() + seconds * 1000;
  let problem = await check();
  while (problem && Date.now() < until) {
    await sleep(500);
    problem = await check();
  }
  return problem;
}

/** Makes `id` live, or leaves the live release serving and says why not. */
export async function activate(host: ReleaseHost, id: string, { envText, migrate, timeoutSeconds, settleSeconds = 60 }: ActivateOptions): Promise<void> {
  const live = host.link('current');
  const previous = host.link('previous');
  const nextEnv = `${host.envFile}.next`;
  const prevEnv = `${host.envFile}.prev`;
  const currentEnv = host.readEnv(host.envFile);
  const configChanged = envText !== undefined && currentEnv !== envText;
  if (live === id && !configChanged) {
    const want = host.wantedWorkers();
    if ((await host.serving(id, want)) === '') return host.log(`release ${id} is live on ${want} workers: nothing to do`);
  }
  const envFile = configChanged ? nextEnv : host.envFile;
  try {
    if (configChanged) host.writeEnv(nextEnv, envText);
    if (migrate) host.migrate(id, envFile);
    await host.gate(id, envFile, timeoutSeconds);
  } catch (err) {
    host.remove(nextEnv);
    if (live) throw new ReleaseError(`${(err as Error).message}\n${live} keeps serving.`);
    throw err;
  }

  // The switch: renames only, each undone in reverse if anything after it fails.
  const undo: Array<() => void> = [];
  try {
    if (configChanged) {
      if (currentEnv !== undefined) {
        host.rename(host.envFile, prevEnv);
        undo.push(() => host.rename(prevEnv, host.envFile));
      }
      host.rename(nextEnv, host.envFile);
    }
    if (live && live !== id) {
      host.setLink('previous', live);
      undo.push(() => (previous ? host.setLink('previous', previous) : host.removeLink('previous')));
    }
    host.setLink('current', id);
    if (live) undo.push(() => host.setLink('current', live));
    const want = await host.reload();
    const problem = await waitFor(() => host.serving(id, want), settleSeconds);
    if (problem) throw new ReleaseError(`release ${id} did not come up under PM2: ${problem}`);
    host.save();
    host.remove(prevEnv);
    host.log(`release ${id} is live on ${want} workers${live && live !== id ? ` (was ${live})` : ''}; PM2's process list saved`);
  } catch (err) {
    if (!live) throw err;
    for (const step of undo.reverse()) step();
    let outcome;
    try {
      const want = await host.reload();
      const problem = await waitFor(() => host.serving(live, want), settleSeconds);
      host.save();
      outcome = problem ? `switching back to ${live} did not work either: ${problem}` : `switched back to ${live}, which serves`;
    } catch (backErr) {
      outcome = `switching back to ${live} failed too: ${(backErr as Error).message}`;
    }
    throw new ReleaseError(`${(err as Error).message}\n${outcome}.`);
  }
}
