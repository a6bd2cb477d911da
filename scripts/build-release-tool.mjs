#!/usr/bin/env node
// Bundles the release tool (scripts/release-tool, TypeScript) into the one file
// the host runs, scripts/host/release.cjs: no dependencies there, and the same
// bytes for the same sources (the release step's trigger hashes them).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { releaseToolSourcesId } from './lib/build-inputs.cjs';

const out = fileURLToPath(new URL('./host/release.cjs', import.meta.url));
await build({
  entryPoints: [fileURLToPath(new URL('./release-tool/cli.ts', import.meta.url))],
  outfile: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  legalComments: 'none',
  // The stamp the Pulumi program compares with the sources (infra/host-steps.ts ensureBuilt).
  banner: { js: `// cemetery-release, built by \`npm run build\` from scripts/release-tool (do not edit). sources ${releaseToolSourcesId()}` },
});
console.log('built scripts/host/release.cjs (the release tool)');
