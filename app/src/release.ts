import { readdirSync } from 'node:fs';
import path from 'node:path';

/** Set at build time by esbuild (scripts/build-app.mjs): a hash of what the bundle was built from. */
declare const __BUILD_ID__: string | undefined;

/**
 * Which release this code is. Both facts come from the code itself, not from
 * the environment: the release directory it was loaded from (on a host,
 * `<appHome>/releases/<id>/dist`; Node loads the real path behind `current`),
 * and the build id baked into the bundle.
 */
export type ReleaseInfo = { id: string; build: string };

export function releaseOf(distDir: string): ReleaseInfo {
  const releaseDir = path.dirname(distDir);
  const id = path.basename(path.dirname(releaseDir)) === 'releases' ? path.basename(releaseDir) : 'dev';
  return { id, build: typeof __BUILD_ID__ === 'string' ? __BUILD_ID__ : 'source' };
}

/** The migrations a release ships (dist/migrations): names as node-pg-migrate records them. */
export function shippedMigrations(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.(sql|js|cjs|ts)$/.test(f))
    .map((f) => f.replace(/\.[^.]+$/, ''))
    .sort();
}
