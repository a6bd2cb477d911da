#!/usr/bin/env node
// Bundles the release tool (scripts/release-tool, TypeScript) into the one file
// the host runs, scripts/host/release.cjs: no dependencies there, and the same
// bytes for the same sources (the release step's trigger hashes them). Its first
// line names the files it was built from and their hash: the Pulumi program
// builds it again when they change (infra/host-steps.ts ensureBuilt).
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RELEASE_TOOL_BANNER, sourcesId } from './lib/build-inputs.cjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = fileURLToPath(new URL('./host/release.cjs', import.meta.url));
const result = await build({
  absWorkingDir: root,
  entryPoints: ['scripts/release-tool/cli.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  legalComments: 'none',
  metafile: true,
  write: false,
});
// The repository files esbuild read (paths relative to the repository), and this script.
const inputs = [...Object.keys(result.metafile.inputs), 'scripts/build-release-tool.mjs'].sort();
writeFileSync(out, `${RELEASE_TOOL_BANNER} sources ${sourcesId(inputs)} ${inputs.join(',')}\n${result.outputFiles[0].text}`);
console.log('built scripts/host/release.cjs (the release tool)');
