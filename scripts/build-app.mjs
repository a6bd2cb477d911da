#!/usr/bin/env node
// Bundles the backend into app/dist: a self-contained release (server.js,
// migrate.js, migrations/) that runs on the host with no `npm install`.
import { build } from 'esbuild';
import { cp, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const appDir = fileURLToPath(new URL('../app/', import.meta.url));
const dist = path.join(appDir, 'dist');

await rm(dist, { recursive: true, force: true });
await build({
  entryPoints: { server: path.join(appDir, 'src/main.ts'), migrate: path.join(appDir, 'src/migrate.ts') },
  outdir: dist,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  // pg's optional native binding is never installed; keep esbuild from resolving it.
  external: ['pg-native'],
  logLevel: 'warning',
  legalComments: 'none',
});
await cp(path.join(appDir, 'migrations'), path.join(dist, 'migrations'), { recursive: true });
console.log(`built ${path.relative(process.cwd(), dist)}`);
