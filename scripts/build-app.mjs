#!/usr/bin/env node
// Bundles the backend into app/dist: a self-contained release (server.js,
// migrate.js, migrations/) that runs on the host with no `npm install`.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const appDir = fileURLToPath(new URL('../app/', import.meta.url));
const dist = path.join(appDir, 'dist');

/** The build id baked into the bundle (/version `build`): a hash of the sources and the lock file it is built from. */
async function buildId() {
  const hash = createHash('sha256');
  for (const dir of ['src', 'migrations']) {
    const files = (await readdir(path.join(appDir, dir), { recursive: true })).sort();
    for (const file of files) {
      const full = path.join(appDir, dir, file);
      const data = await readFile(full).catch(() => null); // directories
      if (data) hash.update(`${dir}/${file}\0`).update(data).update('\0');
    }
  }
  hash.update(await readFile(path.join(appDir, '..', 'package-lock.json')));
  return hash.digest('hex').slice(0, 12);
}

await rm(dist, { recursive: true, force: true });
const id = await buildId();
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
