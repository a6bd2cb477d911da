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
  /** The operator's trail: deploys, rollbacks, refused releases, maintenance, token changes (cemetery-audit). */
  auditLog: '/var/log/cemetery-backend/audit.log',
  /** Appends to it (the release step installs it): `cemetery-audit ACTION OUTCOME [DETAIL]`, `--show [N]`. */
  auditCommand: '/usr/local/sbin/cemetery-audit',
  /** While this file exists the proxy answers 503 (cemetery-maintenance on|off). */
  maintenanceFlag: '/var/lib/cemetery-backend/maintenance',
} as const;

/** A release's id: `r-` and 12 hex digits of its content (host-steps.ts releaseId). */
export const RELEASE_ID_PATTERN = /^r-[0-9a-f]{12}$/;

/** The app's database and its owner, on the host (databaseMode onHost) and in RDS alike. */
export const DATABASE_NAME = 'cemetery';
export const DATABASE_USER = 'cemetery';

/** A word as the remote shell must see it: quoted unless it is plainly safe (ssh joins words with spaces, the login shell splits them). */
export const shellQuote = (word: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);
