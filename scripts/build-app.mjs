#!/usr/bin/env node
// Bundles the backend into app/dist: a self-contained release (server.js,
// migrate.js, migrations/) that runs on the host with no `npm install`.
// `node scripts/build-app.mjs [<app dir>]`: the repository's app/ by default.
import { build } from 'esbuild';
import { cp, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { appSourcesId } from './lib/build-inputs.cjs';

const appDir = path.resolve(process.argv[2] ?? fileURLToPath(new URL('../app/', import.meta.url)));
const dist = path.join(appDir, 'dist');

await rm(dist, { recursive: true, force: true });
// The build id baked into the bundle (/version `build`): a hash of the sources and the lock file it is built from.
const id = appSourcesId(appDir);
await build({
  entryPoints: { server: path.join(appDir, 'src/main.ts'), migrate: path.join(appDir, 'src/migrate.ts'), admin: path.join(appDir, 'src/admin.ts') },
  outdir: dist,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // No source maps: nothing runs with --enable-source-maps, the bundle is not minified (stack traces
  // name functions and bundle lines), and the maps were 6.8 MB of every upload to the host.
  sourcemap: false,
  // pg's optional native binding is never installed; keep esbuild from resolving it.
  external: ['pg-native'],
  logLevel: 'warning',
  legalComments: 'none',
  define: { __BUILD_ID__: JSON.stringify(id) },
});
await cp(path.join(appDir, 'migrations'), path.join(dist, 'migrations'), { recursive: true });
// The same id, readable without running the bundle (tests, operators).
await writeFile(path.join(dist, 'BUILD_ID'), `${id}\n`);
console.log(`built ${path.relative(process.cwd(), dist)} (build ${id})`);
