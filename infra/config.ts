/**
 * The stack configuration, in one place: every key, its default per
 * environment, and what is allowed. Validated before any resource is declared,
 * so a bad value fails `pulumi preview` with a message naming the key, the
 * value and what is allowed.
 */
import { z } from 'zod';
import { namedPrefix } from './bootstrap/access';
import { parseCidr, worldOpenReason } from './cidr';
import { nodeTarballSha256 } from './nodejs-releases';
import { PUBLIC_SUBNET_CIDRS } from './vpc-ranges';
import { parsePublicKey, publicKeyOfPrivate, sameKey, type SshPublicKey } from './ssh-keys';

export const PROJECT = 'cemetery-backend';

export const ENVIRONMENTS = ['dev', 'staging', 'prod'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

/**
 * The stack's name decides prod-ness: every stack named prod* (prod, prod-eu,
 * production) is prod, and no other stack is. The policy pack reads the same
 * rule from a resource's URN.
 */
export const isProdStack = (stack: string) => stack.startsWith('prod');

/** The most hosts one stack runs (one Elastic IP each: AWS's default quota is 5 per region). */
export const MAX_HOSTS = 4;

/** Days of automated backups prod keeps at least (the policy pack checks the same on the database). */
export const PROD_MIN_BACKUP_DAYS = 7;

/** prod*, staging*, anything else is dev. The `environment` key may pick staging or dev, never contradict prod-ness. */
export function environmentOfStack(stack: string): Environment {
  if (isProdStack(stack)) return 'prod';
  if (stack.startsWith('staging')) return 'staging';
  return 'dev';
}

/**
 * Where the stack's host lives. `own`: the stack creates its VPC (dev, prod).
 * `shared`: the long-lived shared staging network, found by tag (staging
 * stacks: no VPC, gateway or Elastic IP of their own). `provideShared`: this
 * stack is that shared network and holds nothing else (stack staging-shared).
 */
export const NETWORK_MODES = ['own', 'shared', 'provideShared'] as const;

type Defaults = {
  network: (typeof NETWORK_MODES)[number];
  instanceType: string;
  rootVolumeSizeGiB: number;
  databaseMode: 'rds' | 'onHost' | 'external';
  rdsInstanceClass: string;
  allocatedStorageGiB: number;
  maxAllocatedStorageGiB: number;
  backupRetentionDays: number;
  /** RDS: a snapshot before a release's new migrations (Database.snapshotBefore). */
  snapshotBeforeMigrations: boolean;
  multiAz: boolean;
  deletionProtection: boolean;
  /** Identical hosts; more than one stand behind an Application Load Balancer (infra/balancer.ts). */
  hosts: number;
  /** target aws, on-host PostgreSQL: GiB of the EBS volume that holds the register and outlives the host (infra/host.ts). */
  dataVolumeSizeGiB: number;
};

const DEV_DEFAULTS: Defaults = {
  network: 'own',
  instanceType: 't3.medium', // 2 vCPU
  rootVolumeSizeGiB: 20,
  databaseMode: 'rds',
  rdsInstanceClass: 'db.t4g.micro',
  allocatedStorageGiB: 20,
  maxAllocatedStorageGiB: 50,
  backupRetentionDays: 1,
  snapshotBeforeMigrations: false,
  multiAz: false,
  deletionProtection: false,
  hosts: 1,
  dataVolumeSizeGiB: 20,
};

const DEFAULTS: Record<Environment, Defaults> = {
  dev: DEV_DEFAULTS,
  // Like dev, with PostgreSQL on the host (quicker to create and destroy per
  // pull request) and in the shared network (ten open pull requests stay within
  // the default VPC, gateway and Elastic IP quotas).
  staging: { ...DEV_DEFAULTS, databaseMode: 'onHost', network: 'shared' },
  prod: {
    network: 'own',
    instanceType: 'c7i.xlarge', // 4 vCPU
    rootVolumeSizeGiB: 40,
    databaseMode: 'rds',
    rdsInstanceClass: 'db.m7g.large',
    allocatedStorageGiB: 100,
    maxAllocatedStorageGiB: 500,
    backupRetentionDays: 14,
    snapshotBeforeMigrations: true,
    multiAz: true,
    deletionProtection: true,
    // One host's outage or replacement is not an outage of the register.
    hosts: 2,
    dataVolumeSizeGiB: 100,
  },
};

/** Shared by every environment. */
export const COMMON_DEFAULTS = {
  target: 'aws',
  sshPort: 22,
  // Debian's AMI's login.
  sshUser: 'admin',
  postgresVersion: '17',
  appPort: 3000,
  pm2Instances: 'max',
  maxMemoryRestart: '1G',
  nofileLimit: 65536,
  // The seed guide's pm2-logrotate settings.
  logrotateMaxSize: '10M',
  logrotateRetain: 30,
  logrotateCompress: true,
  logrotateRotateInterval: '0 0 * * *',
  nodeVersion: '24.21.0',
  nodeDistMirror: 'https://nodejs.org/dist',
  nodeDistMirrorLocal: false,
  // Releases (and their uploads) kept on the host for rollback; the live one and the previous one always stay.
  releasesToKeep: 5,
  // How long a new release may take to answer /readyz on its own before the switch is refused.
  releaseHealthTimeoutSeconds: 60,
  // How long a request waits for a new database connection before the app answers 503 (DB_CONNECT_TIMEOUT_MS).
  databaseConnectTimeoutSeconds: 3,
  // Certificates for domainName: Let's Encrypt through ACME, or Caddy's own CA (a host with no public name, e.g. the local VM).
  certificateIssuer: 'acme',
  // Cemetery records are public records: reads need no token unless a stack says so.
  publicReads: true,
} as const;

// --- value shapes --------------------------------------------------------

const INSTANCE_SIZES = ['nano', 'micro', 'small', 'medium', 'large', 'xlarge', 'metal'];
/** vCPUs of an x86 instance size (the family does not change it for these sizes). */
export function vcpusOfInstanceType(type: string): number {
  const size = type.split('.')[1];
  if (size === 'xlarge') return 4;
  const n = /^(\d+)xlarge$/.exec(size);
  if (n) return 4 * Number(n[1]);
  if (size === 'metal') return 96;
  return size === 'large' || size === 'medium' ? 2 : 1;
}

const cronField = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;

const str = (allowed: string) => z.string({ error: `expected ${allowed}` });
const intIn = (min: number, max: number) =>
  z.coerce.number({ error: `expected a whole number from ${min} to ${max}` }).int(`expected a whole number from ${min} to ${max}`).min(min, `expected a whole number from ${min} to ${max}`).max(max, `expected a whole number from ${min} to ${max}`);
const bool = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')], { error: 'expected true or false' });

const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
// RDS: a letter first, letters, digits and single hyphens, no hyphen at the end, at most 63.
const RDS_IDENTIFIER = /^[a-z](?!.*--)[a-z0-9-]{0,62}(?<!-)$/;
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
/** An OpenSSH public key in authorized_keys form, checked by parsing it (ssh-keys.ts). */
const publicKey = (expected: string) =>
  str(expected).superRefine((v, ctx) => {
    // One line: ssh2 takes a second line for the first key's comment, authorized_keys for a second key.
    const key = /[\r\n]/.test(v.trim()) ? 'more than one line' : parsePublicKey(v);
    if (typeof key === 'string') ctx.addIssue({ code: 'custom', message: `expected ${expected} (${key})` });
  });

/** Where a list first repeats an element (its second place), or -1. */
const repeatedAt = <T>(list: readonly T[]) => list.findIndex((x, i) => list.indexOf(x) !== i);

const hostName = str('a host name or address').regex(/^[A-Za-z0-9.-]+$|^\[[0-9a-fA-F:]+\]$/, 'expected a host name or an IP address');
const HOST_KEY_EXPECTED = "the host's public key as `ssh-keyscan -t ed25519 <host>` prints it after the host name: ssh-ed25519 AAAA...";

/**
 * Why a databaseUrl cannot be used, without quoting it (it holds a password); undefined when it can. One line: it
 * goes into the hosts' environment file, where a line break would add a setting of its own.
 */
export function databaseUrlProblem(v: string): string | undefined {
  const shape = 'postgres://<user>:<password>@<host>:<port>/<database>?sslmode=verify-full';
  if (/[\s\x00-\x1f\x7f]/.test(v)) return `expected one line without spaces or control characters: ${shape}`;
  // The app's environment file (node:util parseEnv) ends an unquoted value at #.
  if (v.includes('#')) return `expected no # (the hosts' environment file would cut the URL there; in a password, write it %23): ${shape}`;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return `expected a URL: ${shape}`;
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') return `expected postgres:// or postgresql://: ${shape}`;
  if (!url.username || !url.password) return `expected the user and password in it: ${shape}`;
  if (!url.hostname) return `expected the server's host name: ${shape}`;
  if (!/^\/[^/]+$/.test(url.pathname)) return `expected the database's name after the host: ${shape}`;
  // The hosts check the server's certificate and name, as they do RDS's (a private CA: sslrootcert=<its file on the hosts>).
  // Judged as the app's parser reads the URL (pg-connection-string: the last of a repeated key wins; ssl, host and
  // port in the query override sslmode and the host), so the URL is refused whatever else its query says.
  const keys = [...url.searchParams.keys()];
  const repeated = repeatedAt(keys);
  if (repeated >= 0) return `expected each setting once, got ${keys[repeated]} twice: ${shape}`;
  const overriding = keys.find((k) => ['ssl', 'host', 'port', 'uselibpqcompat', 'sslcert', 'sslkey'].includes(k));
  if (overriding) return `expected no ${overriding}= in the query (the host, port and TLS are the URL's and sslmode's): ${shape}`;
  if (url.searchParams.get('sslmode') !== 'verify-full') return `expected sslmode=verify-full, so that the hosts check the server's certificate and name (a private CA: add sslrootcert=<its file on the hosts>): ${shape}`;
  return undefined;
}

export type SchemaContext = {
  /** The stack's name: it decides prod-ness. */
  stack: string;
  /** `pulumi preview`: nothing connects to the host, so no private key is needed. */
  preview: boolean;
  /** The stack sets backupRetentionDays itself (not the environment's default). */
  backupRetentionSet: boolean;
  /** The stack sets snapshotBeforeMigrations itself. */
  snapshotsSet?: boolean;
  /** The stack sets dataVolumeSizeGiB itself. */
  dataVolumeSizeSet?: boolean;
  /** The stack sets hosts itself. */
  hostsSet?: boolean;
};

/** Why on-host PostgreSQL without backups is not where a register that must survive belongs. */
const ON_HOST_UNSAFE = 'on-host PostgreSQL without backupBucket has no backups: a lost disk, or a mistake made in it, loses the register';

/**
 * On-host backups (scripts/host/backups.sh): PostgreSQL switches to a new WAL segment at the latest this long after a
 * commit (archive_timeout), and pgBackRest has it in the bucket before archive_command returns: a committed
 * transaction is in the archive within BACKUP_RPO_SECONDS, the archiving's push included.
 */
export const BACKUP_ARCHIVE_TIMEOUT_SECONDS = 30;
export const BACKUP_RPO_SECONDS = 60;

/** Whether the stack's on-host PostgreSQL keeps its files on a disk of their own (an EBS volume on aws, dataVolumeDevice on ssh). */
export const onHostDataVolume = (c: { databaseMode: string; target: string; dataVolumeDevice?: string }) =>
  c.databaseMode === 'onHost' && (c.target === 'aws' || c.dataVolumeDevice !== undefined);

/** Where a stack's pgBackRest repository is in backupBucket: one prefix per stack, so stacks may share a bucket, never a repository. */
export const backupRepoPath = (stack: string) => `/cemetery-backend/${stack}`;

/** Whether the stack's on-host PostgreSQL is backed up (to backupBucket, with pgBackRest). */
export const onHostBackups = (c: { databaseMode: string; backupBucket?: string }) => c.databaseMode === 'onHost' && c.backupBucket !== undefined;

/** An environment's default for every key that has one. */
const defaultsOf = (env: Environment) => ({ ...DEFAULTS[env], ...COMMON_DEFAULTS });

function schemaFor(env: Environment, { stack, preview, backupRetentionSet, snapshotsSet = false, dataVolumeSizeSet = false, hostsSet = false }: SchemaContext) {
  const d = defaultsOf(env);
  return z
    .object({
      environment: z.enum(ENVIRONMENTS, { error: `expected one of ${ENVIRONMENTS.join(', ')}` }).default(env),
      target: z.enum(['aws', 'ssh'], { error: 'expected aws (a new EC2 host) or ssh (an existing Debian 12/13 host)' }).default(d.target),
      sshHost: hostName.optional(),
      // target ssh, several existing hosts (instead of sshHost and sshHostKey): each with its SSH host key, released
      // in this order behind your own load balancer (balancerCidrs).
      sshHosts: z
        .array(z.object({ host: hostName, hostKey: publicKey(HOST_KEY_EXPECTED) }, { error: 'expected { host, hostKey }' }).strict(), { error: 'expected a list of { host, hostKey }' })
        .min(2, 'expected 2 or more hosts (one host: sshHost and sshHostKey)')
        .max(MAX_HOSTS, `expected at most ${MAX_HOSTS} hosts`)
        .optional(),
      // target ssh behind your own load balancer: the addresses it connects to the hosts from. IPv4 alone: the app reads
      // an IPv4-mapped IPv6 range (::ffff:0:0/96) as all of IPv4, which Caddy does not, so a client could name itself.
      balancerCidrs: z
        .array(
          str('an IPv4 CIDR such as 10.0.5.0/24').superRefine((v, ctx) => {
            const cidr = parseCidr(v);
            const problem = typeof cidr === 'string' ? cidr : cidr.family !== 'ipv4' ? `"${v}" is IPv6` : cidr.prefix < 16 ? `"${v}" is wider than a /16: any machine in it could pass as the balancer` : undefined;
            if (problem) ctx.addIssue({ code: 'custom', message: `expected your load balancer's IPv4 ranges, each a /16 or narrower, such as 10.0.5.0/24: ${problem}` });
          }),
          { error: 'expected a list of IPv4 CIDRs' },
        )
        .min(1, 'expected at least one CIDR (where your load balancer connects from)')
        .optional(),
      sshPort: intIn(1, 65535).default(d.sshPort),
      region: str('an AWS region such as eu-central-1').regex(/^[a-z]{2}(-gov|-iso[a-z]?)?-(north|south|east|west|central|northeast|northwest|southeast|southwest)-\d$/, 'expected an AWS region such as eu-central-1 or us-east-1').optional(),
      instanceType: str('an EC2 instance type')
        .regex(new RegExp(`^[a-z]+\\d+[a-z-]*\\.(\\d+xlarge|${INSTANCE_SIZES.join('|')})$`), 'expected an EC2 instance type such as t3.medium or c7i.xlarge')
        .refine((t) => !/^[a-z]+\d+g[a-z]*\./.test(t), 'expected an x86_64 type: Graviton (…g) types need an arm64 AMI and Node.js build')
        .default(d.instanceType),
      rootVolumeSizeGiB: intIn(8, 16384).default(d.rootVolumeSizeGiB),
      sshAllowedCidrs: z
        .array(
          str('an IPv4 CIDR such as 203.0.113.7/32').superRefine((v, ctx) => {
            const cidr = parseCidr(v);
            // The VPC has no IPv6 block: an IPv6 range could never reach the host.
            const problem = typeof cidr === 'string' ? cidr : cidr.family === 'ipv6' ? `"${v}" is IPv6, and the VPC is IPv4 only` : undefined;
            if (problem) ctx.addIssue({ code: 'custom', message: `expected IPv4 CIDRs such as 203.0.113.7/32: ${problem}` });
          }),
          { error: 'expected a list of IPv4 CIDRs' },
        )
        .min(1, 'expected at least one IPv4 CIDR (who may reach SSH)')
        .optional(),
      // The deploy key of the stack (one per environment, not per user). Changing
      // it replaces nothing: the host's launch key pair ignores later changes,
      // and the key reaches authorized_keys through provisioning.
      sshPublicKey: publicKey('an OpenSSH public key: ssh-ed25519 AAAA... comment').optional(),
      // Rotation, first phase: the incoming key, authorized next to sshPublicKey
      // while the connection still uses the current key (README: Rotating the deploy key).
      sshNextPublicKey: publicKey('an OpenSSH public key: ssh-ed25519 AAAA... comment').optional(),
      // Only `pulumi up` connects to the host; a preview runs without it.
      sshPrivateKey: str('an OpenSSH private key (set it with --secret)')
        .superRefine((v, ctx) => {
          const key = publicKeyOfPrivate(v);
          // The parser's reason only: it never quotes the key.
          if (typeof key === 'string') ctx.addIssue({ code: 'custom', message: `expected an unencrypted OpenSSH private key, -----BEGIN OPENSSH PRIVATE KEY-----... (${key})` });
        })
        .optional(),
      sshUser: str('a user name').regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'expected a Unix user name').default(d.sshUser),
      network: z.enum(NETWORK_MODES, { error: `expected one of ${NETWORK_MODES.join(', ')}` }).default(d.network),
      databaseMode: z.enum(['rds', 'onHost', 'external'], { error: 'expected rds, onHost or external' }).default(d.databaseMode),
      // databaseMode external (target ssh): a PostgreSQL the stack does not run, shared by every host.
      databaseUrl: str('a postgres:// URL (set it with --secret)')
        .superRefine((v, ctx) => {
          const problem = databaseUrlProblem(v);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional(),
      rdsInstanceClass: str('an RDS class').regex(/^db\.[a-z]+\d+[a-z]*\.(\d+xlarge|micro|small|medium|large|xlarge)$/, 'expected an RDS instance class such as db.t4g.micro').default(d.rdsInstanceClass),
      postgresVersion: str('a PostgreSQL version').regex(/^(14|15|16|17)(\.\d+)?$/, 'expected PostgreSQL 14 to 17, e.g. 17 or 17.6').default(d.postgresVersion),
      allocatedStorageGiB: intIn(20, 65536).default(d.allocatedStorageGiB),
      maxAllocatedStorageGiB: intIn(20, 65536).default(d.maxAllocatedStorageGiB),
      backupRetentionDays: intIn(0, 35).default(d.backupRetentionDays),
      // A new stack's RDS database from another instance's automated backups (README: Restoring the database):
      // the time to restore to, and the instance (its databaseIdentifier output). Read when the database is created.
      restoreFrom: str('latest, or a UTC time such as 2026-11-29T03:00:00Z')
        .refine((v) => v === 'latest' || (RFC3339_UTC.test(v) && !Number.isNaN(Date.parse(v))), 'expected latest, or a UTC time such as 2026-11-29T03:00:00Z')
        .optional(),
      restoreSourceDatabase: str('an RDS instance identifier').regex(RDS_IDENTIFIER, 'expected an RDS instance identifier such as cemetery-prod-pg-1a2b3c4').optional(),
      snapshotBeforeMigrations: bool.default(d.snapshotBeforeMigrations),
      // On-host PostgreSQL's files on a disk of their own (scripts/host/data-volume.sh): target aws attaches an EBS
      // volume of this size; target ssh names a disk the host already has.
      dataVolumeSizeGiB: intIn(1, 16384).default(d.dataVolumeSizeGiB),
      dataVolumeDevice: str('a stable device path').regex(/^\/dev\/disk\/by-(id|uuid|label|path)\/[A-Za-z0-9._:+@-]+$/, 'expected a stable name of the disk, such as /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0 (ls /dev/disk/by-id): /dev/sdX can change between boots').optional(),
      // On-host PostgreSQL's continuous backups (pgBackRest, WAL archived as it is written) to an S3 bucket you keep
      // (README: Backups of on-host PostgreSQL). The credentials reach the host on stdin, never a command line.
      backupBucket: str('an S3 bucket name').regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name such as cemetery-backups (3-63 lower-case letters, digits, dots and hyphens)').optional(),
      backupS3Region: str('an AWS region such as eu-central-1').regex(/^[a-z0-9-]{2,32}$/, 'expected a region name such as eu-central-1').optional(),
      backupS3Endpoint: str('host[:port]').regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'expected the S3 endpoint as host or host:port, no scheme (it is always https)').optional(),
      backupS3AccessKeyId: str('an access key id').regex(/^[A-Za-z0-9]{3,128}$/, 'expected an access key id such as AKIA…').optional(),
      backupS3SecretAccessKey: str('a secret access key (set it with --secret)').regex(/^\S{8,128}$/, 'expected a secret access key: 8-128 characters, no spaces').optional(),
      multiAz: bool.default(d.multiAz),
      deletionProtection: bool.default(d.deletionProtection),
      hosts: intIn(1, MAX_HOSTS).default(d.hosts),
      // Unset: the balancer stands in front when there is more than one host.
      loadBalancer: bool.optional(),
      appPort: intIn(1024, 65535).default(d.appPort),
      pm2Instances: z
        .union([z.literal('max'), intIn(1, 999)], { error: 'expected "max" or a whole number from 1 to 999' })
        .default(d.pm2Instances),
      maxMemoryRestart: str('a size').regex(/^[1-9]\d*[KMG]$/, 'expected a size in PM2 form such as 512M or 1G').default(d.maxMemoryRestart),
      nofileLimit: intIn(1024, 1048576).default(d.nofileLimit),
      logrotateMaxSize: str('a size').regex(/^[1-9]\d*[KMG]$/, 'expected a size such as 10M').default(d.logrotateMaxSize),
      logrotateRetain: intIn(1, 1000).default(d.logrotateRetain),
      logrotateCompress: bool.default(d.logrotateCompress),
      logrotateRotateInterval: str('a cron expression')
        .refine((v) => {
          const fields = v.trim().split(/\s+/);
          return (fields.length === 5 || fields.length === 6) && fields.every((f) => cronField.test(f));
        }, "expected a cron expression of 5 or 6 fields such as '0 0 * * *'")
        .default(d.logrotateRotateInterval),
      nodeVersion: str('a Node.js version').regex(/^(2[0-9]|[3-9]\d)\.\d+\.\d+$/, 'expected an exact Node.js version, 20 or newer, such as 24.21.0').default(d.nodeVersion),
      nodeDistMirror: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL of a Node.js dist mirror' }).default(d.nodeDistMirror),
      // A mirror on the stack's own network (the local VM's test mirror) may be plain http.
      nodeDistMirrorLocal: bool.default(d.nodeDistMirrorLocal),
      // The SHA-256 of a mirror's own build of node-v<nodeVersion>-linux-x64.tar.gz; default: the repository's pin (infra/nodejs-releases.ts).
      nodeTarballSha256: str('a SHA-256 in hex').regex(/^[0-9a-f]{64}$/, 'expected a SHA-256 as 64 lower-case hex digits').optional(),
      releasesToKeep: intIn(2, 100).default(d.releasesToKeep),
      releaseHealthTimeoutSeconds: intIn(5, 600).default(d.releaseHealthTimeoutSeconds),
      databaseConnectTimeoutSeconds: intIn(1, 60).default(d.databaseConnectTimeoutSeconds),
      // The front door (README: HTTPS and the domain). Without a domain the proxy serves plain HTTP on port 80.
      domainName: str('a DNS name').regex(DNS_NAME, 'expected a DNS name such as cemetery.example.org (no scheme, no port)').optional(),
      hostedZoneId: str('a Route 53 hosted zone id').regex(/^Z[A-Z0-9]{4,31}$/, 'expected a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ').optional(),
      acmeEmail: z.email({ error: 'expected an email address (Let\'s Encrypt writes to it about expiring certificates)' }).optional(),
      // target aws: the alarms' topic mails it (infra/alarms.ts).
      alertEmail: z.email({ error: 'expected an email address (the alarms write to it)' }).optional(),
      certificateIssuer: z.enum(['acme', 'internal'], { error: "expected acme (Let's Encrypt) or internal (Caddy's own CA, for a host with no public name)" }).default(d.certificateIssuer),
      // target ssh: the host's SSH host key, so the first connection already verifies (target aws generates its own).
      sshHostKey: publicKey(HOST_KEY_EXPECTED).optional(),
      publicReads: bool.default(d.publicReads),
      // Requests per minute from one client address; unset: the app's default (docs/backend.md: Abuse limits).
      rateLimitPerMinute: intIn(1, 1000000).optional(),
    })
    .strict()
    .superRefine((c, ctx) => {
      const at = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
      if ((c.environment === 'prod') !== isProdStack(stack)) {
        at(
          'environment',
          isProdStack(stack)
            ? `stack "${stack}" is prod (its name starts with prod): expected prod, or no environment key`
            : `only a stack named prod* is prod: expected dev or staging for stack "${stack}", or no environment key`,
        );
      }
      if (c.network !== 'own' && c.environment !== 'staging') at('network', `only staging stacks share a network; ${c.environment} owns its network: expected own`);
      if (c.network !== 'own' && c.target !== 'aws') at('network', 'target ssh has no AWS network: expected own');
      const networkOnly = c.network === 'provideShared';
      if (c.target === 'aws') {
        if (!c.region) at('region', 'required for target aws: pulumi config set aws:region eu-central-1');
        if (!networkOnly && !c.sshAllowedCidrs) at('sshAllowedCidrs', 'required for target aws: the IPv4 CIDRs that may reach SSH');
        if (!networkOnly && !c.sshPublicKey) at('sshPublicKey', 'required for target aws: the deploy key, pulumi config set sshPublicKey "$(cat ~/.ssh/cemetery-<environment>.pub)"');
        if (c.databaseMode === 'external') at('databaseMode', 'target aws keeps the register in RDS or on its host: expected rds or onHost');
        if (c.sshHosts) at('sshHosts', 'target aws creates its hosts: remove sshHosts, and set hosts');
        if (c.balancerCidrs) at('balancerCidrs', 'target aws makes its own load balancer (hosts, loadBalancer): remove balancerCidrs');
      } else {
        if (!c.sshHost && !c.sshHosts) at('sshHost', 'required for target ssh: the existing host to provision (several: sshHosts)');
        if (c.sshHosts && (c.sshHost || c.sshHostKey)) at('sshHosts', 'lists every host with its key: remove sshHost and sshHostKey');
        const names = (c.sshHosts ?? []).map((h) => h.host.toLowerCase().replace(/\.$/, ''));
        const twice = repeatedAt(names);
        if (twice >= 0) at('sshHosts', `lists ${names[twice]} twice: expected each host once`);
        // The keys as parsed (a malformed one is refused by its own entry), so a comment does not make one key two.
        const fingerprints = (c.sshHosts ?? []).map((h, i) => {
          const key = parsePublicKey(h.hostKey);
          return typeof key === 'string' ? `unreadable ${i}` : key.fingerprint;
        });
        const shared = repeatedAt(fingerprints);
        if (shared >= 0) at('sshHosts', `${c.sshHosts![fingerprints.indexOf(fingerprints[shared])].host} and ${c.sshHosts![shared].host} have one host key: one machine, counted twice (or a key copied by mistake): expected each host's own`);
        if (c.databaseMode === 'rds') at('databaseMode', 'target ssh has no RDS: expected onHost, or external (a PostgreSQL of yours: databaseUrl)');
        const given = c.sshHosts?.length ?? 1;
        if (hostsSet && c.hosts !== given) at('hosts', `target ssh provisions the hosts it is given (${given}): remove hosts, and list them in sshHosts (one host: sshHost)`);
        if (c.loadBalancer === true) at('loadBalancer', 'target ssh stands behind a load balancer of yours: remove loadBalancer, and set balancerCidrs (the addresses it connects from)');
        const openBalancer = c.balancerCidrs && worldOpenReason(c.balancerCidrs);
        if (openBalancer) at('balancerCidrs', `the hosts believe the X-Forwarded-For of these addresses, and anyone's would let any client pass as another (${openBalancer}): expected your load balancer's own ranges`);
        if (c.sshHosts && !c.balancerCidrs) at('balancerCidrs', "required with sshHosts: the addresses your load balancer connects to the hosts from (each host's port 80 answers them alone)");
      }
      if (c.databaseMode === 'external' && !preview && !c.databaseUrl) {
        at('databaseUrl', 'required with databaseMode external for pulumi up: pulumi config set --secret databaseUrl "postgres://cemetery:<password>@db.example.org:5432/cemetery?sslmode=verify-full"');
      }
      if (c.databaseUrl !== undefined && c.databaseMode !== 'external') at('databaseUrl', `databaseMode ${c.databaseMode} makes its own database: remove databaseUrl, or use databaseMode external`);
      if (!preview && !networkOnly && !c.sshPrivateKey) {
        at('sshPrivateKey', 'required for pulumi up, which provisions the host over SSH (a preview runs without it): pulumi config set --secret sshPrivateKey < ~/.ssh/cemetery-<environment>');
      }
      if (c.target === 'ssh' && !preview && !networkOnly && !c.sshHostKey && !c.sshHosts) {
        at('sshHostKey', 'required for pulumi up on target ssh, so the first connection already verifies the host: pulumi config set sshHostKey "$(ssh-keyscan -t ed25519 <host> | cut -d\' \' -f2-)" (scripts/local-vm.sh host-key for the local VM)');
      }
      if (c.target === 'aws' && c.sshHostKey) at('sshHostKey', 'target aws generates the host key itself (docs/host.md: SSH host keys): remove it');
      if (c.hostedZoneId && !c.domainName) at('hostedZoneId', 'the DNS record is for domainName: set domainName too');
      if (c.hostedZoneId && c.target !== 'aws') at('hostedZoneId', 'target ssh has no Elastic IP to point a record at: create the record yourself');
      if (c.certificateIssuer === 'internal' && !c.domainName) at('certificateIssuer', 'certificates are for domainName: set domainName too, or leave certificateIssuer at acme');
      if (c.acmeEmail && !c.domainName) at('acmeEmail', 'certificates are for domainName: set domainName too');
      if (c.alertEmail && (c.target !== 'aws' || networkOnly)) at('alertEmail', 'the alarms watch the EC2 host and RDS of target aws: remove it');
      if (!nodeTarballSha256(c)) {
        at(
          'nodeVersion',
          `no SHA-256 is pinned for node-v${c.nodeVersion}-linux-x64.tar.gz: add its line from https://nodejs.org/dist/v${c.nodeVersion}/SHASUMS256.txt ` +
            "to infra/nodejs-releases.ts once the file's signature checks out (docs/host.md: Upgrading Node.js), or set nodeTarballSha256 for a mirror that builds its own",
        );
      }
      if (c.nodeDistMirror.startsWith('http:') && !c.nodeDistMirrorLocal) {
        at('nodeDistMirror', 'expected https: a plain-http mirror can be changed on the way (set nodeDistMirrorLocal true for a mirror on your own network)');
      }
      if (c.sshNextPublicKey !== undefined && c.sshNextPublicKey === c.sshPublicKey) at('sshNextPublicKey', 'expected the incoming key, different from sshPublicKey; remove it once the rotation is done');
      const lockout = deployKeyLockout(c);
      if (lockout) at('sshPrivateKey', lockout);
      if (c.maxAllocatedStorageGiB < c.allocatedStorageGiB) {
        at('maxAllocatedStorageGiB', `expected at least allocatedStorageGiB (${c.allocatedStorageGiB})`);
      }
      if (c.environment === 'prod') {
        const openSsh = c.sshAllowedCidrs && worldOpenReason(c.sshAllowedCidrs);
        if (openSsh) at('sshAllowedCidrs', `prod does not open SSH to the whole internet (${openSsh}); list your VPN or runner ranges`);
        if (vcpusOfInstanceType(c.instanceType) < 4) at('instanceType', 'prod runs a multi-core cluster: expected 4 vCPU or more (xlarge or bigger)');
        if (!c.deletionProtection) at('deletionProtection', 'prod keeps deletion protection on');
        if (!networkOnly && !c.domainName) at('domainName', 'prod serves HTTPS: expected its DNS name, pulumi config set domainName cemetery.example.org');
        if (c.certificateIssuer !== 'acme') at('certificateIssuer', "prod's certificate comes from Let's Encrypt: expected acme");
        if (!networkOnly && c.target === 'aws' && !c.alertEmail) at('alertEmail', "prod's alarms must reach someone: expected the on-call address, pulumi config set alertEmail oncall@example.org");
        if ((c.databaseMode === 'rds' || onHostBackups(c)) && c.backupRetentionDays < PROD_MIN_BACKUP_DAYS) at('backupRetentionDays', `prod keeps at least ${PROD_MIN_BACKUP_DAYS} days of backups`);
        // The register is what cannot be lost: in RDS (automated backups, point-in-time restore), or on the host with
        // continuous backups (backupBucket) on a disk that outlives the host (target aws always attaches one).
        if (c.databaseMode === 'external') {
          at('databaseMode', "prod keeps its register in RDS, or on the host with continuous backups on a disk of its own: an external database's backups are not the stack's to see: expected rds or onHost");
        }
        if (!networkOnly && c.databaseMode === 'onHost') {
          if (!onHostBackups(c)) at('backupBucket', `prod keeps its register in RDS, or on the host with continuous backups; ${ON_HOST_UNSAFE}: expected the bucket's name (README: Backups of on-host PostgreSQL)`);
          else if (!onHostDataVolume(c)) at('dataVolumeDevice', "prod keeps an on-host register on a disk of its own, which outlives the host's: expected that disk's /dev/disk/by-id/... name");
        }
      }
      if (c.target === 'aws' && c.hosts > 1 && c.loadBalancer === false) at('loadBalancer', `${c.hosts} hosts are reached through the load balancer: remove loadBalancer, or set hosts 1`);
      if (balanced(c)) {
        if (c.target === 'aws') {
          if (c.network !== 'own') at(c.hosts > 1 ? 'hosts' : 'loadBalancer', 'the load balancer needs public subnets in two zones of a network of its own, and staging stacks share one: expected hosts 1 and no loadBalancer');
          if (c.domainName && !c.hostedZoneId) at('hostedZoneId', `the load balancer's certificate (ACM) is validated by a DNS record Pulumi writes in the zone of ${c.domainName}: expected that Route 53 zone's id`);
        }
        // The balancer terminates HTTPS: the hosts serve it plain HTTP and hold no certificate.
        const holder = c.target === 'aws' ? "the load balancer's certificate comes from ACM" : 'your load balancer holds the certificate';
        if (c.acmeEmail) at('acmeEmail', `${holder}, not Let's Encrypt: remove it`);
        if (c.certificateIssuer !== 'acme') at('certificateIssuer', `${holder}: remove certificateIssuer`);
      }
      // Each host's own PostgreSQL would be a register of its own.
      if (c.target === 'aws' && c.hosts > 1 && c.databaseMode !== 'rds') at('hosts', `${c.hosts} hosts share one register, which only databaseMode rds gives: expected rds, or hosts 1`);
      if (c.target === 'ssh' && c.sshHosts && c.databaseMode !== 'external') {
        at('databaseMode', `${c.sshHosts.length} hosts share one register, and each host's own PostgreSQL would be a register of its own: expected external (databaseUrl), or one host (sshHost)`);
      }
      if (c.databaseMode === 'external') {
        // Whoever runs the database keeps its backups and restores it.
        if (c.restoreFrom !== undefined) at('restoreFrom', "an external database is restored by whoever runs it: remove restoreFrom");
        if (backupRetentionSet) at('backupRetentionDays', "an external database's backups are kept by whoever runs it: remove backupRetentionDays");
      } else if (c.restoreFrom !== undefined && c.databaseMode !== 'rds' && !onHostBackups(c)) at('restoreFrom', `${ON_HOST_UNSAFE}: there is nothing to restore from (set backupBucket, or use databaseMode rds)`);
      else if (c.restoreFrom !== undefined && c.databaseMode === 'onHost' && c.restoreSourceDatabase !== undefined) {
        at('restoreSourceDatabase', 'on-host PostgreSQL restores from its own backupBucket: remove restoreSourceDatabase (it names an RDS instance)');
      } else if (c.restoreFrom !== undefined && c.databaseMode === 'rds' && c.restoreSourceDatabase === undefined) {
        at('restoreSourceDatabase', 'required with restoreFrom: the RDS instance whose backups to restore (its stack\'s databaseIdentifier output)');
      }
      if (c.restoreSourceDatabase !== undefined && c.restoreFrom === undefined && c.databaseMode === 'rds') at('restoreFrom', 'required with restoreSourceDatabase: latest, or a UTC time such as 2026-11-29T03:00:00Z');
      if (c.restoreFrom !== undefined && c.restoreFrom !== 'latest' && Date.parse(c.restoreFrom) > Date.now()) at('restoreFrom', 'is in the future: expected latest, or a time that has passed');
      if (c.databaseMode === 'onHost' && !onHostBackups(c) && backupRetentionSet) {
        at('backupRetentionDays', `${ON_HOST_UNSAFE}, so backupRetentionDays would keep nothing: remove it, set backupBucket, or use databaseMode rds`);
      }
      if (onHostBackups(c) && c.backupRetentionDays < 1) at('backupRetentionDays', 'on-host backups keep their full backups this many days: expected 1 or more');
      const s3Keys = ['backupS3Region', 'backupS3Endpoint', 'backupS3AccessKeyId', 'backupS3SecretAccessKey'] as const;
      if (c.backupBucket !== undefined && c.databaseMode !== 'onHost') {
        at('backupBucket', c.databaseMode === 'rds' ? 'RDS keeps its own automated backups (backupRetentionDays): remove backupBucket, or use databaseMode onHost' : "an external database's backups are kept by whoever runs it: remove backupBucket, or use databaseMode onHost");
      }
      else if (c.backupBucket !== undefined && c.target === 'aws') {
        // The stack creates the bucket in its own region, and the host reaches it through its instance profile.
        for (const key of s3Keys) if (c[key] !== undefined) at(key, 'target aws creates backupBucket in the stack\'s region, and its host reaches it with its instance profile\'s credentials: remove it');
        if (c.backupBucket.includes('.')) at('backupBucket', "a bucket name with dots does not match AWS's certificate for <bucket>.s3.<region>.amazonaws.com: expected one without dots");
        else if (!c.backupBucket.startsWith(namedPrefix(c.environment))) {
          at('backupBucket', `the deploy roles (infra/bootstrap) create and change only the buckets of their environment, named ${namedPrefix(c.environment)}*: expected e.g. ${namedPrefix(c.environment)}backups-<account id>`);
        }
      } else if (c.backupBucket !== undefined) {
        if (!c.backupS3Region) at('backupS3Region', "required with backupBucket: the bucket's region, e.g. eu-central-1");
        // AWS is addressed as https://<bucket>.s3.<region>.amazonaws.com: a dot in the name breaks the certificate's match.
        if (c.backupBucket.includes('.') && (c.backupS3Endpoint ?? '.amazonaws.com').split(':')[0].endsWith('.amazonaws.com')) {
          at('backupBucket', "a bucket name with dots does not match AWS's certificate for <bucket>.s3.<region>.amazonaws.com: expected one without dots");
        }
        if (!c.backupS3AccessKeyId) at('backupS3AccessKeyId', 'required with backupBucket on target ssh: the access key of a user that may write only under this stack\'s prefix (README: Backups of on-host PostgreSQL)');
        if (!preview && !c.backupS3SecretAccessKey) at('backupS3SecretAccessKey', 'required with backupBucket for pulumi up: pulumi config set --secret backupS3SecretAccessKey');
      } else {
        for (const key of s3Keys) if (c[key] !== undefined) at(key, 'describes where backupBucket is: set backupBucket too, or remove it');
      }
      if (c.dataVolumeDevice !== undefined && c.target === 'aws') at('dataVolumeDevice', 'target aws attaches a data volume of its own (dataVolumeSizeGiB): remove dataVolumeDevice');
      else if (c.dataVolumeDevice !== undefined && c.databaseMode !== 'onHost') at('dataVolumeDevice', `the register is not on the host (databaseMode ${c.databaseMode}): remove dataVolumeDevice, or use databaseMode onHost`);
      if (dataVolumeSizeSet && (c.target !== 'aws' || c.databaseMode !== 'onHost')) {
        at('dataVolumeSizeGiB', c.target !== 'aws' ? 'target ssh uses a disk the host has (dataVolumeDevice): remove dataVolumeSizeGiB' : 'RDS keeps the register (allocatedStorageGiB): remove dataVolumeSizeGiB, or use databaseMode onHost');
      }
      if (c.databaseMode !== 'rds' && c.snapshotBeforeMigrations && snapshotsSet) {
        at('snapshotBeforeMigrations', `RDS takes the snapshots; databaseMode ${c.databaseMode} has none: remove it, or use databaseMode rds`);
      }
    });
}

export type StackConfig = z.output<ReturnType<typeof schemaFor>>;

/**
 * Whether the hosts stand behind a load balancer: on target aws the stack's own Application Load Balancer (asked for,
 * or more than one host); on target ssh the user's, from balancerCidrs.
 */
export const balanced = (c: { target: string; hosts: number; loadBalancer?: boolean; balancerCidrs?: string[] }) =>
  c.target === 'ssh' ? c.balancerCidrs !== undefined : (c.loadBalancer ?? c.hosts > 1);

/** Where the load balancer connects to the hosts from (their Caddy and the app trust it alone); undefined without one. */
export const balancerRanges = (c: Parameters<typeof balanced>[0]): readonly string[] | undefined =>
  !balanced(c) ? undefined : c.target === 'ssh' ? c.balancerCidrs : PUBLIC_SUBNET_CIDRS;

/** The hosts of a target ssh stack, in release order, with their SSH host keys (undefined: not given, a preview). */
export const sshTargets = (c: { sshHost?: string; sshHostKey?: string; sshHosts?: { host: string; hostKey: string }[] }) =>
  c.sshHosts ?? [{ host: c.sshHost!, hostKey: c.sshHostKey }];

/**
 * The key `pulumi up` connects with must be one the ssh-authorized-keys step
 * writes (sshPublicKey, or sshNextPublicKey during a rotation): otherwise that
 * up succeeds and every later one is locked out of the host. Checked before
 * any resource exists, so no step runs. Undefined when all is well, or when
 * the keys themselves are malformed (their own keys say so).
 */
function deployKeyLockout(c: { sshPrivateKey?: string; sshPublicKey?: string; sshNextPublicKey?: string }): string | undefined {
  if (!c.sshPrivateKey || !c.sshPublicKey) return undefined;
  const connecting = publicKeyOfPrivate(c.sshPrivateKey);
  const authorized = [c.sshPublicKey, c.sshNextPublicKey].map((k) => (k ? parsePublicKey(k) : undefined));
  if (typeof connecting === 'string' || authorized.some((k) => typeof k === 'string')) return undefined;
  const [current, next] = authorized as (SshPublicKey | undefined)[];
  if ([current, next].some((k) => k && sameKey(k, connecting))) return undefined;
  return (
    `its public key, ${connecting.fingerprint}, is neither sshPublicKey (${current!.fingerprint}) nor sshNextPublicKey (${next ? next.fingerprint : 'not set'}): ` +
    'this up would leave authorized_keys without the key it connects with, and lock every later up out. ' +
    'To rotate the deploy key: set sshNextPublicKey to the new public key and up (the current private key still connects); ' +
    'then set sshPrivateKey and sshPublicKey to the new pair, remove sshNextPublicKey, and up again (README: Rotating the deploy key)'
  );
}

export class StackConfigError extends Error {}

const JSON_KEYS = new Set(['sshAllowedCidrs', 'sshHosts', 'balancerCidrs']);
const SECRET_KEYS = new Set(['sshPrivateKey', 'backupS3SecretAccessKey', 'databaseUrl']);

/**
 * Validates raw stack config (`key -> string`, as Pulumi stores it, without
 * the project prefix) for a stack. Throws a StackConfigError listing every bad
 * key with its value (never a secret's) and what is allowed.
 */
export function parseStackConfig(raw: Record<string, string>, stack: string, awsRegion: string | undefined, { preview = false } = {}): StackConfig {
  const input: Record<string, unknown> = { region: awsRegion };
  for (const [key, value] of Object.entries(raw)) {
    if (JSON_KEYS.has(key)) {
      try {
        input[key] = JSON.parse(value);
      } catch {
        input[key] = value;
      }
    } else {
      input[key] = value;
    }
  }
  const env = typeof input.environment === 'string' && (ENVIRONMENTS as readonly string[]).includes(input.environment) ? (input.environment as Environment) : environmentOfStack(stack);
  const context: SchemaContext = { stack, preview, backupRetentionSet: raw.backupRetentionDays !== undefined, snapshotsSet: raw.snapshotBeforeMigrations !== undefined, dataVolumeSizeSet: raw.dataVolumeSizeGiB !== undefined, hostsSet: raw.hosts !== undefined };
  const parsed = schemaFor(env, context).safeParse(input);
  // target ssh runs the hosts it is given (environments' hosts defaults are for target aws).
  if (parsed.success) return parsed.data.target === 'ssh' ? { ...parsed.data, hosts: sshTargets(parsed.data).length } : parsed.data;

  const lines = parsed.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const known = Object.keys(schemaFor(env, context).shape).filter((k) => k !== 'region');
      return issue.keys.map((k) => `  ${PROJECT}:${k}: unknown key; known keys: ${known.join(', ')}`).join('\n');
    }
    const top = String(issue.path[0] ?? '');
    const name = top === 'region' ? 'aws:region' : `${PROJECT}:${issue.path.join('.')}`;
    const value = SECRET_KEYS.has(top) ? '[secret]' : JSON.stringify(valueAt(input, issue.path));
    return `  ${name} = ${value}: ${issue.message}`;
  });
  throw new StackConfigError(`Invalid configuration for stack "${stack}" (${env}):\n${lines.join('\n')}`);
}

/**
 * The same, from Pulumi's whole config as `pulumi.runtime.allConfig()` gives
 * it: this project's keys (`cemetery-backend:<key>`) and `aws:region`.
 */
export function parseProjectConfig(all: Record<string, string>, stack: string, opts: { preview?: boolean } = {}): StackConfig {
  const prefix = `${PROJECT}:`;
  const own = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  return parseStackConfig(own, stack, all['aws:region'], opts);
}

function valueAt(input: Record<string, unknown>, path: PropertyKey[]): unknown {
  let value: unknown = input;
  for (const p of path) value = (value as Record<PropertyKey, unknown> | undefined)?.[p];
  return value;
}

/**
 * What each key takes and does, for the README's configuration table
 * (scripts/config-docs.ts writes it; npm test fails when it drifts). Typed by
 * the schema, so a key without a line here does not compile.
 */
export const KEY_DOCS: Record<keyof z.input<ReturnType<typeof schemaFor>>, string> = {
  environment: '`dev` or `staging` for a non-prod stack (the name decides: `prod*` is prod, `staging*` staging); never contradicts prod-ness',
  target: '`aws` (new EC2 hosts) or `ssh` (existing Debian 12/13 hosts: `onHost` or `external` database; prod only `onHost` with `backupBucket` and `dataVolumeDevice`)',
  sshHost: '`target: ssh`: the host name or address (several hosts: `sshHosts`)',
  sshHosts: '`target: ssh`, 2–4 existing hosts instead of `sshHost`/`sshHostKey`: a list of `{host, hostKey}`, released in this order behind your load balancer, with `databaseMode: external` and `balancerCidrs` (see Several existing hosts)',
  balancerCidrs: '`target: ssh`: the IPv4 ranges (each `/16` or narrower) your load balancer connects to the hosts from; their port 80 then answers those addresses alone, and the app counts the client address the balancer appends to `X-Forwarded-For` (required with `sshHosts`)',
  sshPort: 'the host\'s SSH port, 1–65535',
  region: 'an AWS region, e.g. `eu-central-1`; required for `target: aws` (`pulumi config set aws:region eu-central-1`)',
  instanceType: 'an x86_64 EC2 type; prod needs 4+ vCPU',
  rootVolumeSizeGiB: 'GiB of the host\'s encrypted root volume, 8–16384',
  sshAllowedCidrs: 'required for `target: aws`: IPv4 CIDRs in their canonical form (`203.0.113.0/24`, not `203.0.113.7/24`) that may reach SSH; prod refuses any set open to the world (see Security policies)',
  sshPublicKey: 'required for `target: aws`: the environment\'s deploy key, OpenSSH; changing it replaces nothing',
  sshNextPublicKey: 'the incoming key during a rotation; not `sshPublicKey` (see Rotating the deploy key)',
  sshPrivateKey: 'required for `up`, `--secret`: the deploy key\'s private half; a preview runs without it',
  sshUser: 'the login `pulumi up` uses (Debian\'s AMI: `admin`)',
  network: '`own`; staging: `shared` (the shared network) or `provideShared` (stack `staging-shared`)',
  databaseMode: '`rds`, `onHost` (backed up with `backupBucket`; prod: only with `backupBucket`, and on target ssh `dataVolumeDevice`), or `external` (`target: ssh`, not prod: a PostgreSQL of yours, `databaseUrl`)',
  databaseUrl: '`databaseMode: external`, required for `up`, `--secret`: `postgres://<user>:<password>@<host>:<port>/<database>?sslmode=verify-full` (reaches the hosts on stdin, in the app\'s environment file only)',
  rdsInstanceClass: 'the RDS class, `db.<family>.<size>`',
  postgresVersion: 'the PostgreSQL major, 14–17 (or a full version such as 17.6)',
  allocatedStorageGiB: 'GiB of RDS storage to start with, 20–65536',
  maxAllocatedStorageGiB: 'GiB RDS storage may grow to, 20–65536, at least `allocatedStorageGiB`',
  backupRetentionDays: '0–35 days of RDS automated backups, or of on-host full backups (`backupBucket`, 1–35); prod ≥ 7; refused with `onHost` without `backupBucket`, where it would keep nothing',
  restoreFrom: 'create the database from backups, `latest` or a UTC time (`2026-11-29T03:00:00Z`): RDS from `restoreSourceDatabase`\'s; on-host from `backupBucket`, on a host whose database is still empty (see Restoring the database)',
  restoreSourceDatabase: 'the RDS instance to restore from (its stack\'s `databaseIdentifier` output)',
  dataVolumeSizeGiB: '`onHost`, `target: aws`: GiB of the encrypted EBS volume that holds the register; it outlives the instance, and a replacement host mounts it (see The register\'s own disk)',
  dataVolumeDevice: '`onHost`, `target: ssh`: a disk of the host\'s own for the register, by a stable name (`/dev/disk/by-id/…`); a blank one is formatted, one holding anything but ext4 refused (see The register\'s own disk)',
  backupBucket: '`onHost`: continuous backups with pgBackRest (WAL within a minute, weekly full and daily incremental backups, kept `backupRetentionDays`) to this S3 bucket; `target: aws` creates it (versioned, encrypted with its environment\'s backup key from infra/bootstrap, reached through the host\'s instance profile), `target: ssh` uses it; allows `restoreFrom` (see Backups of on-host PostgreSQL)',
  backupS3Region: '`target: ssh`, required with `backupBucket`: the bucket\'s region',
  backupS3Endpoint: '`target: ssh`: `host` or `host:port` of an S3-compatible store, always HTTPS, addressed path-style; unset: AWS S3 in `backupS3Region`',
  backupS3AccessKeyId: '`target: ssh`, required with `backupBucket`: the access key pgBackRest signs with',
  backupS3SecretAccessKey: '`target: ssh`, required with `backupBucket` for `up`, `--secret`: its secret key (reaches the host on stdin, kept in root\'s pgBackRest file, readable by postgres only)',
  snapshotBeforeMigrations: 'RDS only: a manual snapshot before a release with a new migration, named after it and kept in AWS when the next one comes (see Restoring the database)',
  multiAz: '`true`: RDS keeps a standby in another availability zone',
  deletionProtection: '`true` or `false`; prod keeps it on (the database, and the load balancer)',
  hosts: '`target: aws`: 1–4 identical hosts in different availability zones; more than one: behind a load balancer, released one after another, with `databaseMode: rds` (see Several hosts; `target: ssh`: `sshHosts`)',
  loadBalancer: 'unset: a load balancer when `hosts` > 1; `true`: one host behind it too; needs `hostedZoneId` with `domainName` (its certificate is ACM\'s)',
  appPort: '1024–65535: the port the app listens on, behind the proxy, on the host\'s loopback',
  pm2Instances: '`max` (one worker per vCPU) or 1–999',
  maxMemoryRestart: 'PM2 sizes: `512M`, `1G`',
  nofileLimit: 'open files for the app user and its PM2 daemon and workers (limits.d and systemd), 1024–1048576',
  logrotateMaxSize: 'pm2-logrotate rotates a log at this size: `10M`',
  logrotateRetain: '1–1000 rotated files kept',
  logrotateCompress: '`true`: rotated logs are gzipped',
  logrotateRotateInterval: 'a cron expression: rotate at these times whatever the size',
  nodeVersion: 'an exact version ≥ 20 with a SHA-256 pinned in `infra/nodejs-releases.ts` (see Upgrading Node.js)',
  nodeDistMirror: 'an https URL of a Node.js dist mirror',
  nodeDistMirrorLocal: '`true` allows a plain-http mirror on your own network (the local VM\'s test mirror)',
  nodeTarballSha256: 'the SHA-256 of a mirror\'s own build of the tarball; unset: the repository\'s pin',
  releasesToKeep: '2–100 releases (and uploads) kept on the host; the live one and the rollback target always stay',
  releaseHealthTimeoutSeconds: '5–600: how long a new release may take to answer `/readyz` before the switch is refused; also how long a reload waits for each new worker (PM2\'s `listen_timeout`)',
  databaseConnectTimeoutSeconds: '1–60: how long a request waits for a new database connection before the app answers `503` (`DB_CONNECT_TIMEOUT_MS`); the local stack allows 15',
  domainName: 'a DNS name: HTTPS on 443 for it; without one, HTTP on 80; required in prod',
  hostedZoneId: 'a Route 53 zone id (`Z…`): Pulumi keeps the A record; needs `domainName`, `target: aws`',
  acmeEmail: 'an email address Let\'s Encrypt writes to about expiring certificates',
  alertEmail: '`target: aws`: the address the alarms mail (host down or unresponsive, CPU, RDS storage, CPU, connections; confirm AWS\'s first mail); required in prod',
  certificateIssuer: '`acme` (Let\'s Encrypt) or `internal` (Caddy\'s CA; not prod)',
  sshHostKey: '`target: ssh`, required for `up`: the host\'s public key (`ssh-ed25519 AAAA…`); `aws` generates its own',
  publicReads: '`false`: reads need a token too',
  rateLimitPerMinute: 'requests per minute per client address; unset: the app\'s (see Abuse limits)',
};

/**
 * Every key, in the schema's order, with its default per environment (as text, '–' for none) and what it takes:
 * the README's table. `common`: the typed default when every environment has the same one (what Pulumi.yaml may
 * declare, scripts/config-docs.ts).
 */
export function configReference(): Array<{ key: string; defaults: Record<Environment, string>; about: string; common?: string | number | boolean }> {
  const context: SchemaContext = { stack: 'dev', preview: true, backupRetentionSet: false };
  const byEnv = ENVIRONMENTS.map((env) => [env, { ...defaultsOf(env), environment: env } as Record<string, unknown>] as const);
  return Object.keys(schemaFor('dev', context).shape).map((key) => {
    const defaults = Object.fromEntries(byEnv.map(([env, d]) => [env, d[key] === undefined ? '–' : String(d[key])])) as Record<Environment, string>;
    const values = byEnv.map(([, d]) => d[key]);
    const common = values.every((v) => v !== undefined && v === values[0]) ? (values[0] as string | number | boolean) : undefined;
    return { key: key === 'region' ? 'aws:region' : key, defaults, about: KEY_DOCS[key as keyof typeof KEY_DOCS], ...(common === undefined ? {} : { common }) };
  });
}
