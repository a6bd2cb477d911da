/**
 * The SHA-256 of each Node.js version's official `node-v<version>-linux-x64.tar.gz`
 * that a stack may install (nodeVersion). The host installs those bytes and no
 * others, whatever a mirror's own SHASUMS256.txt says: a mirror (or whoever
 * controls its network path) can change both the tarball and that file.
 *
 * To add a version: take its line from https://nodejs.org/dist/v<version>/SHASUMS256.txt
 * once that file's signature checks out against the release team's keys
 * (docs/host.md: Upgrading Node.js). A mirror that builds its own tarballs gives
 * its hash per stack instead (nodeTarballSha256).
 */
export const NODE_TARBALL_SHA256: Readonly<Record<string, string>> = {
  // nodejs.org's SHASUMS256.txt line for v24.21.0, as published copies of it read on
  // 2026-11-29 (the same value in ten independent public pins); nodejs.org itself is not
  // reachable from the machine this was written on, so its signature was not checked here.
  '24.21.0': '6e1db87ef58b8819e5d5402eff1536491b18edd8eb7bee5ef7897876e88dc5ff',
};

/** The tarball's pinned SHA-256: the stack's own (a private mirror's build), else the repository's. */
export const nodeTarballSha256 = (cfg: { nodeVersion: string; nodeTarballSha256?: string }): string | undefined =>
  cfg.nodeTarballSha256 ?? NODE_TARBALL_SHA256[cfg.nodeVersion];
