/**
 * What provisioning sends to the host, as pure functions (no Pulumi here): the
 * layout of the uploads, the copies, the step list and each step's command
 * line. infra/provision.ts turns them into resources; the tests read them too.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_LIMITS } from '../app/src/config';
import { appSourcesId, releaseToolStamp, sourcesId } from '../scripts/lib/build-inputs.cjs';
import { BACKUP_ARCHIVE_TIMEOUT_SECONDS, backupRepoPath, balancerRanges, onHostBackups, onHostDataVolume, type StackConfig } from './config';
import { DATABASE_NAME, DATABASE_USER, HOST_PATHS, shellQuote } from './host-layout';
import { METADATA_GUARD_TAG } from './metadata-guard';
import { nodeTarballSha256 } from './nodejs-releases';

const ROOT = path.resolve(__dirname, '..');
export const HOST_SCRIPTS_DIR = path.join(ROOT, 'scripts', 'host');
export const APP_DIR = path.join(ROOT, 'app');
export const APP_DIST_DIR = path.join(APP_DIR, 'dist');
export const PROCESS_FILE = path.join(APP_DIR, 'ecosystem.config.js');

/** The version a host lockfile's package.json (scripts/host/<dir>) pins for `name`. */
function hostPackageVersion(dir: string, name: string): string {
  return (JSON.parse(readFileSync(path.join(HOST_SCRIPTS_DIR, dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies[name];
}

/** Where things live on the host (host-layout.ts) and the versions of what runs there. */
export const HOST_LAYOUT = {
  ...HOST_PATHS,
  /** PM2 on the host: the version its lockfile pins (scripts/host/pm2; the repository's own package.json pins the same, a test checks). */
  pm2Version: hostPackageVersion('pm2', 'pm2'),
  // Not 3.0.0: it never compresses. PM2's module loader (pmx) casts the setting "true" to a boolean,
  // and 3.0.0's parseBool accepts only the string (keymetrics/pm2-logrotate#201, open; 2.7.0 uses JSON.parse).
  logrotateVersion: hostPackageVersion('pm2-logrotate-module', 'pm2-logrotate'),
};

export function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const full = path.join(dir, name);
      return statSync(full).isDirectory() ? listFiles(full) : [full];
    });
}

/** A short content hash of files: their paths (relative to `base`; else their names) and bytes. */
export function hashFiles(files: string[], base?: string): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(base ? path.relative(base, file) : path.basename(file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 12);
}

/** Runs a build script; a failure throws with the build's own output, naming the command. */
function runBuild(script: string, args: string[] = []) {
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', script), ...args], { stdio: 'pipe' });
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer; message: string };
    throw new Error(`the build failed (node scripts/${script}${args.length ? ` ${args.join(' ')}` : ''}):\n${`${e.stderr ?? ''}${e.stdout ?? ''}`.trim() || e.message}`);
  }
}

/**
 * The bundles as the sources say, whatever was built before: each bundle is stamped with the hash of its
 * sources (scripts/lib/build-inputs.cjs), and one whose stamp differs, or that is missing, is built again
 * here, so `git pull && pulumi up` (or a preview) never ships a stale build. Returns what it rebuilt.
 */
export function ensureBuilt(appDir = APP_DIR): string[] {
  const rebuilt: string[] = [];
  const buildIdFile = path.join(appDir, 'dist', 'BUILD_ID');
  const built = existsSync(path.join(appDir, 'dist', 'server.js')) && existsSync(buildIdFile) ? readFileSync(buildIdFile, 'utf8').trim() : undefined;
  if (built !== appSourcesId(appDir)) {
    runBuild('build-app.mjs', appDir === APP_DIR ? [] : [appDir]);
    rebuilt.push(path.relative(ROOT, path.join(appDir, 'dist')));
  }
  // The tool names the files it was built from: one of them changed, or is gone (the hash then differs too; a new
  // import changes the importing file), or the tool is missing.
  const tool = path.join(HOST_SCRIPTS_DIR, 'release.cjs');
  const stamp = existsSync(tool) ? releaseToolStamp(readFileSync(tool, 'utf8').split('\n', 1)[0]) : undefined;
  if (!stamp || stamp.id !== sourcesId(stamp.inputs)) {
    runBuild('build-release-tool.mjs');
    rebuilt.push('scripts/host/release.cjs');
  }
  return rebuilt;
}

/** The release, built from the sources if need be (ensureBuilt): its id, the content hash of app/dist and the process file, and what was rebuilt. */
export function builtRelease(appDir = APP_DIR): { id: string; rebuilt: string[] } {
  const rebuilt = ensureBuilt(appDir);
  // RELEASE_ID_PATTERN (host-layout.ts) describes this shape.
  return { id: `r-${hashFiles([...listFiles(path.join(appDir, 'dist')), path.join(appDir, path.basename(PROCESS_FILE))], appDir)}`, rebuilt };
}
export const releaseId = (appDir = APP_DIR): string => builtRelease(appDir).id;

/** A CopyToRemote: a local file or directory (never with a trailing slash) and its `remotePath`. */
export type HostCopy = { name: string; source: string; remotePath: string };

/**
 * The uploads and where they land. @pulumi/command 1.2.1 puts a directory
 * whose path has no trailing slash *inside* `remotePath`, whether that exists
 * or not (provider/pkg/provider/remote/copyController.go, sftpCopy, the table
 * in its comment), and a file onto `remotePath` itself when that is not an
 * existing directory. So the directories are copied into their parent and the
 * paths the steps use are `<remotePath>/<basename>`.
 */
export function provisioningLayout(sshUser: string, release: string) {
  const base = `${sshUser === 'root' ? '/root' : `/home/${sshUser}`}/.cemetery-provision`;
  // A fixed place for the scripts: a changed script re-runs only the steps whose script changed (their triggers).
  const scriptsDir = `${base}/${path.basename(HOST_SCRIPTS_DIR)}`;
  // One upload per release, named by its content: a code change is a new upload.
  const uploadDir = `${base}/${release}`;
  const copies: HostCopy[] = [
    { name: 'host-scripts', source: HOST_SCRIPTS_DIR, remotePath: base },
    { name: 'release-bundle', source: APP_DIST_DIR, remotePath: uploadDir },
    { name: 'release-process-file', source: PROCESS_FILE, remotePath: `${uploadDir}/${path.basename(PROCESS_FILE)}` },
  ];
  return { base, scriptsDir, uploadDir, copies };
}
export type ProvisioningLayout = ReturnType<typeof provisioningLayout>;

/**
 * A step argument AWS decides: the device of the stack's EBS data volume, named by the volume's id, which exists
 * only once the volume does (provision.ts fills it in with stepCommand's `late`).
 */
export const EBS_DATA_DEVICE = { late: 'dataVolumeId' } as const;
/**
 * Where udev puts an EBS volume on a Nitro instance: NVMe, model "Amazon Elastic Block Store", serial the volume id
 * without its hyphen (AWS EC2 User Guide, "Amazon EBS and NVMe"; systemd's 60-persistent-storage.rules names NVMe
 * disks nvme-<model>_<serial>).
 */
export const ebsDeviceById = (volumeId: string) => `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`;
/** Where the data volume is mounted; PostgreSQL's directories are bound from it (scripts/host/data-volume.sh). */
export const DATA_MOUNT = '/srv/cemetery-data';

export type HostStep = {
  /** The resource name, as a preview shows it. */
  name: string;
  script: string;
  args: Record<string, string | number | boolean | typeof EBS_DATA_DEVICE>;
  /** Secret-bearing steps read their secret from stdin; their output is hidden unless `printsNoSecret`. */
  stdin?: 'databasePassword' | 'appEnvironment' | 'backupCredentials';
  /** A step with a secret on stdin whose output is shown as it runs: it prints none (a VM test greps for them). */
  printsNoSecret?: true;
  /** Helpers from scripts/host the step runs besides its script and lib.sh (they are in its triggers). */
  uses?: string[];
  /** Uploaded files the step reads (checked against the copies in npm test). */
  reads?: string[];
  /** The steps it waits for; without it, the one before it in the list. */
  after?: string[];
};

/**
 * The provisioning steps for a stack. Two branches run side by side after the
 * app user exists, since the engine runs steps that do not depend on each other
 * in parallel: Node.js, PM2 and pm2-logrotate (npm only), and Debian's packages
 * (PostgreSQL, then Caddy: one apt at a time, the dpkg lock is the host's). The
 * release waits for both. On a first provisioning the packages take longest.
 */
export function hostSteps(cfg: StackConfig, release: string, layout: ProvisioningLayout, stack: string): HostStep[] {
  const { appUser, appHome } = HOST_LAYOUT;
  const steps: HostStep[] = [
    { name: 'wait-for-host', script: 'wait-for-host.sh', args: cfg.target === 'aws' ? { METADATA_GUARD: METADATA_GUARD_TAG } : {} },
    // The deploy key(s) in authorized_keys; a changed key updates this step (its create changes), replacing nothing.
    ...(cfg.sshPublicKey
      ? [{ name: 'ssh-authorized-keys', script: 'ssh-authorized-keys.sh', args: { SSH_USER: cfg.sshUser, PUBLIC_KEY: cfg.sshPublicKey, ...(cfg.sshNextPublicKey ? { NEXT_PUBLIC_KEY: cfg.sshNextPublicKey } : {}) } }]
      : []),
    { name: 'system-limits', script: 'system-limits.sh', args: { APP_USER: appUser, NOFILE: cfg.nofileLimit } },
    { name: 'app-user', script: 'app-user.sh', args: { APP_USER: appUser, APP_HOME: appHome } },
    { name: 'nodejs', script: 'nodejs.sh', args: { NODE_VERSION: cfg.nodeVersion, NODE_MIRROR: cfg.nodeDistMirror, NODE_SHA256: nodeTarballSha256(cfg)! } },
    // NODE_VERSION: a new Node.js re-runs this step, which restarts the daemon onto it.
    {
      name: 'pm2',
      script: 'pm2.sh',
      args: { APP_USER: appUser, APP_HOME: appHome, PM2_VERSION: HOST_LAYOUT.pm2Version, NODE_VERSION: cfg.nodeVersion },
      uses: ['pm2/package.json', 'pm2/package-lock.json'],
    },
    {
      name: 'pm2-logrotate',
      script: 'pm2-logrotate.sh',
      args: {
        APP_USER: appUser,
        LOGROTATE_VERSION: HOST_LAYOUT.logrotateVersion,
        MAX_SIZE: cfg.logrotateMaxSize,
        RETAIN: cfg.logrotateRetain,
        COMPRESS: cfg.logrotateCompress,
        ROTATE_INTERVAL: cfg.logrotateRotateInterval,
      },
      uses: ['pm2-module-setting.cjs', 'pm2-logrotate-module/package.json', 'pm2-logrotate-module/package-lock.json'],
    },
  ];
  if (onHostDataVolume(cfg)) {
    // Before PostgreSQL is installed: a new host that mounts a used volume gets its cluster, not an empty one.
    steps.push({
      name: 'data-volume',
      script: 'data-volume.sh',
      args: {
        DEVICE: cfg.dataVolumeDevice ?? EBS_DATA_DEVICE,
        DATA_MOUNT,
        // A bigger volume runs the step again, which grows the filesystem onto it.
        ...(cfg.target === 'aws' ? { SIZE_GIB: cfg.dataVolumeSizeGiB } : {}),
      },
      after: ['app-user'],
    });
  }
  if (cfg.databaseMode === 'onHost') {
    steps.push({ name: 'postgres', script: 'postgres.sh', args: { DB_NAME: DATABASE_NAME, DB_USER: DATABASE_USER }, stdin: 'databasePassword', after: [onHostDataVolume(cfg) ? 'data-volume' : 'app-user'], uses: ['postgres-lib.sh'] });
  }
  if (onHostBackups(cfg)) steps.push(backupStep(cfg, stack));
  const databaseStep = steps.at(-1)!.name;
  // Before the release: a failed release must not hold back a proxy change.
  const balancer = balancerRanges(cfg);
  steps.push({
    name: 'proxy',
    after: [cfg.databaseMode === 'onHost' ? databaseStep : 'app-user'],
    script: 'proxy.sh',
    args: {
      APP_PORT: cfg.appPort,
      ISSUER: cfg.certificateIssuer,
      ...(cfg.domainName ? { DOMAIN: cfg.domainName } : {}),
      ...(cfg.acmeEmail ? { ACME_EMAIL: cfg.acmeEmail } : {}),
      MAINTENANCE_FLAG: HOST_LAYOUT.maintenanceFlag,
      // Behind the load balancer: plain HTTP from its nodes, whose X-Forwarded-For is believed.
      ...(balancer ? { BALANCER_RANGES: balancer.join(' ') } : {}),
    },
    uses: ['caddyfile.sh'],
  });
  const { uploadDir } = layout;
  // The release tool saves PM2's process list after every switch: no separate `pm2 save` step.
  steps.push({
    name: 'release',
    script: 'release.sh',
    args: {
      APP_USER: appUser,
      APP_HOME: appHome,
      APP_NAME: HOST_LAYOUT.appName,
      APP_PORT: cfg.appPort,
      RELEASE_ID: release,
      UPLOAD_DIR: uploadDir,
      KEEP_RELEASES: cfg.releasesToKeep,
      HEALTH_TIMEOUT: cfg.releaseHealthTimeoutSeconds,
      AUDIT_LOG: HOST_LAYOUT.auditLog,
      MAINTENANCE_FLAG: HOST_LAYOUT.maintenanceFlag,
    },
    stdin: 'appEnvironment',
    // Its phases (migrate, gate, each worker reloaded, save, prune) appear in `pulumi up` as they happen.
    printsNoSecret: true,
    uses: ['release.cjs', 'cemetery-audit.sh', 'cemetery-maintenance.sh'],
    after: ['pm2-logrotate', 'proxy'],
    reads: [`${uploadDir}/dist/server.js`, `${uploadDir}/dist/migrate.js`, `${uploadDir}/ecosystem.config.js`],
  });
  return steps;
}

/**
 * Continuous backups of on-host PostgreSQL (scripts/host/backups.sh), and with restoreFrom a new host's database
 * restored from them first: after the postgres step, before the proxy and the release (which migrates).
 */
function backupStep(cfg: StackConfig, stack: string): HostStep {
  // target aws: the stack's own bucket, in its region (infra/backup-bucket.ts); ssh: where backupS3* say.
  const region = cfg.target === 'aws' ? cfg.region! : cfg.backupS3Region!;
  const [host, port = '443'] = (cfg.backupS3Endpoint ?? `s3.${region}.amazonaws.com`).split(':');
  return {
    name: 'backups',
    script: 'backups.sh',
    args: {
      STANZA: DATABASE_NAME,
      S3_BUCKET: cfg.backupBucket!,
      S3_ENDPOINT: host,
      S3_PORT: port,
      S3_REGION: region,
      // aws: the instance profile's credentials, read by root from the metadata service and renewed by a timer;
      // ssh: the key pair on stdin.
      S3_CREDENTIALS: cfg.target === 'aws' ? 'instance-profile' : 'stdin',
      // S3-compatible stores are addressed by path; AWS by the bucket's own host name.
      S3_URI_STYLE: host.endsWith('.amazonaws.com') ? 'host' : 'path',
      REPO_PATH: backupRepoPath(stack),
      RETENTION_DAYS: cfg.backupRetentionDays,
      ARCHIVE_TIMEOUT: BACKUP_ARCHIVE_TIMEOUT_SECONDS,
      DB_NAME: DATABASE_NAME,
      DB_USER: DATABASE_USER,
      AUDIT_LOG: HOST_LAYOUT.auditLog,
      MAINTENANCE_FLAG: HOST_LAYOUT.maintenanceFlag,
      ...(cfg.restoreFrom ? { RESTORE_FROM: cfg.restoreFrom } : {}),
    },
    stdin: 'backupCredentials',
    // pgBackRest's progress and the restore's are shown as they happen; none prints a credential (a VM test checks).
    printsNoSecret: true,
    uses: ['postgres-lib.sh', 'cemetery-db.sh', 'cemetery-archive-get.sh', 'cemetery-audit.sh', ...(cfg.target === 'aws' ? ['cemetery-s3-credentials.sh'] : [])],
  };
}

/**
 * Whom the app believes about a client's address (its TRUST_PROXY): the host's Caddy on loopback, and
 * behind a load balancer its nodes' ranges, since Caddy passes on what they append to X-Forwarded-For.
 */
export const appTrustProxy = (balancerRanges: readonly string[]) => [DEFAULT_LIMITS.trustProxy, ...balancerRanges].join(',');

/** Whether a step has an argument only AWS can tell (EBS_DATA_DEVICE). */
export const stepNeedsLate = (step: HostStep) => Object.values(step.args).includes(EBS_DATA_DEVICE);

/** The command line of a step: `sudo bash <scriptsDir>/<script> KEY=VALUE ...`; never a secret. `late`: what AWS decided. */
export function stepCommand(layout: ProvisioningLayout, step: HostStep, late: { dataVolumeId?: string } = {}) {
  const value = (v: HostStep['args'][string]) => {
    if (v !== EBS_DATA_DEVICE) return v;
    if (!late.dataVolumeId) throw new Error(`host step ${step.name} needs the data volume's id`);
    return ebsDeviceById(late.dataVolumeId);
  };
  return ['sudo', 'bash', `${layout.scriptsDir}/${step.script}`, ...Object.entries(step.args).map(([k, v]) => shellQuote(`${k}=${value(v)}`))].join(' ');
}

/** What a step runs, for its triggers: its script and the helpers it uses (lib.sh has a trigger of its own). */
export const stepScriptHash = (step: HostStep) => hashFiles([step.script, ...(step.uses ?? [])].map((f) => path.join(HOST_SCRIPTS_DIR, f)));
export const libHash = () => hashFiles([path.join(HOST_SCRIPTS_DIR, 'lib.sh')]);
