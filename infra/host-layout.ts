/**
 * Where things live on the host and what their names look like: one place for
 * the host steps (host-steps.ts), the release tool (scripts/release-tool, which
 * bundles these plain values) and the tests.
 */
export const HOST_PATHS = {
  appUser: 'cemetery',
  appHome: '/srv/cemetery-backend',
  appName: 'cemetery-backend',
  /** The Node.js the nodejs step installs (a link to the live install). */
  nodeBin: '/opt/node/bin',
} as const;

/** A release's id: `r-` and 12 hex digits of its content (host-steps.ts releaseId). */
export const RELEASE_ID_PATTERN = /^r-[0-9a-f]{12}$/;
