// What the two bundles are built from, as content hashes: `npm run build` stamps
// each bundle with its hash, and the Pulumi program (infra/host-steps.ts
// ensureBuilt) rebuilds a bundle whose stamp is not the hash of the sources it
// sees, so `git pull && pulumi up` never ships a stale build.
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');

/** Every file under each of `entries` (files or directories, relative to `base`), sorted, as `name\0bytes\0`. */
function hashTree(base, entries, hash = createHash('sha256')) {
  for (const entry of entries) {
    const full = path.join(base, entry);
    if (!fs.existsSync(full)) continue;
    const files = fs.statSync(full).isDirectory()
      ? fs.readdirSync(full, { recursive: true }).sort().map((f) => path.join(entry, f))
      : [entry];
    for (const file of files) {
      const abs = path.join(base, file);
      if (fs.statSync(abs).isFile()) hash.update(`${file.split(path.sep).join('/')}\0`).update(fs.readFileSync(abs)).update('\0');
    }
  }
  return hash;
}

/** The app bundle's build id (app/dist/BUILD_ID, /version `build`): its sources, migrations and the lock file. */
function appSourcesId(appDir = path.join(ROOT, 'app')) {
  return hashTree(appDir, ['src', 'migrations']).update(fs.readFileSync(path.join(ROOT, 'package-lock.json'))).digest('hex').slice(0, 12);
}

/** A hash of repository files (paths relative to the repository). */
function sourcesId(files) {
  return hashTree(ROOT, files).digest('hex').slice(0, 12);
}

/**
 * The release tool's first line: `<banner> sources <hash> <file>,<file>...`, the files esbuild read to build it
 * (scripts/build-release-tool.mjs). Returns its stamp, or undefined.
 */
const RELEASE_TOOL_BANNER = '// cemetery-release, built by `npm run build` from scripts/release-tool (do not edit).';
function releaseToolStamp(firstLine) {
  const m = / sources ([0-9a-f]{12}) (\S+)$/.exec(firstLine);
  return firstLine.startsWith(RELEASE_TOOL_BANNER) && m ? { id: m[1], inputs: m[2].split(',') } : undefined;
}

module.exports = { appSourcesId, sourcesId, releaseToolStamp, RELEASE_TOOL_BANNER };
