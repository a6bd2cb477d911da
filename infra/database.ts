import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { DATABASE_NAME, DATABASE_USER } from './host-layout';

export const POSTGRES_PORT = 5432;

export type DatabaseArgs = {
  mode: 'rds' | 'onHost' | 'external';
  /** external: the app's postgres:// URL (config databaseUrl, a secret). */
  externalUrl?: pulumi.Input<string>;
  vpcId: pulumi.Input<string>;
  privateSubnetIds: pulumi.Input<string>[];
  hostSecurityGroupId: pulumi.Input<string>;
  instanceClass: string;
  engineVersion: string;
  allocatedStorageGiB: number;
  maxAllocatedStorageGiB: number;
  backupRetentionDays: number;
  multiAz: boolean;
  deletionProtection: boolean;
  /** prod: keep a final snapshot and refuse `pulumi destroy` without unprotecting first. */
  keepOnDestroy: boolean;
  /** RDS: create the database from another instance's automated backups (config restoreFrom, restoreSourceDatabase). */
  restore?: DatabaseRestore;
  tags: Record<string, string>;
};

export type DatabaseRestore = {
  /** The RDS instance whose automated backups to restore. */
  source: string;
  /** `latest` (its latest restorable time), or an RFC 3339 UTC time. */
  time: string;
};

/** What the program learns of the source instance (aws.rds.getInstance). */
export type RestoreSource = { engine: string; engineVersion: string; backupRetentionPeriod: number };

/** AWS's latest restorable time trails the present by up to about five minutes (its transaction logs go to S3 every five). */
const LATEST_RESTORABLE_LAG_MS = 5 * 60 * 1000;

/**
 * Why a point-in-time restore cannot work, checked at preview against the
 * source instance, each naming the stack key to change; none when it can.
 * AWS decides the exact window (an instance younger than its retention has a
 * later earliest time); this catches what is knowable before anything is created.
 */
export function restoreProblems(restore: DatabaseRestore, source: RestoreSource, postgresVersion: string, now: number): string[] {
  const problems: string[] = [];
  const key = (name: string, value: string) => `cemetery-backend:${name} = "${value}"`;
  if (source.engine !== 'postgres') problems.push(`${key('restoreSourceDatabase', restore.source)}: it runs ${source.engine}, not PostgreSQL`);
  const sourceMajor = source.engineVersion.split('.')[0];
  if (sourceMajor !== postgresVersion.split('.')[0]) {
    problems.push(`${key('postgresVersion', postgresVersion)}: ${restore.source} runs PostgreSQL ${source.engineVersion}: set postgresVersion ${sourceMajor} to restore it (upgrade afterwards)`);
  }
  if (source.backupRetentionPeriod === 0) {
    problems.push(`${key('restoreSourceDatabase', restore.source)}: it keeps no automated backups (backup retention 0 days): there is nothing to restore from`);
  } else if (restore.time !== 'latest') {
    const at = Date.parse(restore.time);
    const earliest = now - source.backupRetentionPeriod * 24 * 3600 * 1000;
    if (at < earliest) {
      problems.push(`${key('restoreFrom', restore.time)}: ${restore.source} keeps ${source.backupRetentionPeriod} days of backups, so the earliest time it can restore is ${new Date(earliest).toISOString()} at best`);
    } else if (at > now - LATEST_RESTORABLE_LAG_MS) {
      problems.push(`${key('restoreFrom', restore.time)}: AWS restores up to its latest restorable time, about 5 minutes ago: use latest, or an earlier time`);
    }
  }
  return problems;
}

/**
 * The app's PostgreSQL: RDS in the private subnets (reachable only from the
 * host's security group), or, in `onHost` mode, the host's own PostgreSQL
 * (installed by provisioning); either way the password is a generated secret.
 * In `external` mode, one the stack does not run, from the URL it is given.
 */
export class Database extends pulumi.ComponentResource {
  readonly host: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly password: pulumi.Output<string>;
  /** postgres://… for the app: a secret. */
  readonly url: pulumi.Output<string>;
  /** RDS: the instance identifier (what a restore names as its source); undefined on the host. */
  readonly identifier: pulumi.Output<string> | undefined;
  /** The app's DATABASE_TLS_CA: which CAs authenticate this database (app/src/config.ts). */
  readonly ca: 'url' | 'aws-rds';
  private readonly instance: aws.rds.Instance | undefined;
  private readonly tags: Record<string, string>;
  private readonly resourceName: string;

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Database', name, {}, opts);
    const parent = { parent: this };
    this.tags = args.tags;
    this.resourceName = name;

    if (args.mode === 'external') {
      // Nothing to create: the URL names the server, and its sslmode and sslrootcert say how to check it. A preview may
      // run without it (config.ts): then all of it is unknown.
      const url = pulumi.secret(args.externalUrl === undefined ? pulumi.output<string>(pulumi.unknown as unknown as string) : pulumi.output(args.externalUrl));
      const parsed = url.apply((u) => new URL(u));
      this.host = pulumi.unsecret(parsed.apply((u) => u.hostname));
      this.port = pulumi.unsecret(parsed.apply((u) => Number(u.port || POSTGRES_PORT)));
      this.password = pulumi.secret(parsed.apply((u) => decodeURIComponent(u.password)));
      this.url = url;
      this.ca = 'url';
      this.identifier = undefined;
      this.instance = undefined;
      this.registerOutputs({ host: this.host, port: this.port, url: this.url });
      return;
    }
    // URL-safe characters only: the password goes into DATABASE_URL unescaped.
    const password = new random.RandomPassword(`${name}-password`, { length: 32, special: false }, parent);
    this.password = password.result;

    if (args.mode === 'onHost') {
      this.host = pulumi.output('127.0.0.1');
      this.port = pulumi.output(POSTGRES_PORT);
      this.identifier = undefined;
      this.instance = undefined;
    } else {
      const subnets = new aws.rds.SubnetGroup(`${name}-subnets`, { subnetIds: args.privateSubnetIds, tags: args.tags }, parent);
      const securityGroup = new aws.ec2.SecurityGroup(
        `${name}-db-sg`,
        {
          vpcId: args.vpcId,
          description: 'cemetery-backend database: PostgreSQL from the app host only',
          ingress: [{ description: 'PostgreSQL from the host', protocol: 'tcp', fromPort: POSTGRES_PORT, toPort: POSTGRES_PORT, securityGroups: [args.hostSecurityGroupId] }],
          tags: { ...args.tags, Name: `${name}-db-sg` },
        },
        parent,
      );
      const restore = args.restore && restoreInput(args.restore, args.engineVersion, parent);
      const instance = new aws.rds.Instance(
        `${name}-pg`,
        {
          engine: 'postgres',
          engineVersion: args.engineVersion,
          instanceClass: args.instanceClass,
          allocatedStorage: args.allocatedStorageGiB,
          maxAllocatedStorage: args.maxAllocatedStorageGiB,
          storageType: 'gp3',
          storageEncrypted: true,
          publiclyAccessible: false,
          // A restore brings the source's databases, the app's among them: nothing to create.
          dbName: restore ? undefined : DATABASE_NAME,
          username: DATABASE_USER,
          password: password.result,
          port: POSTGRES_PORT,
          dbSubnetGroupName: subnets.name,
          vpcSecurityGroupIds: [securityGroup.id],
          backupRetentionPeriod: args.backupRetentionDays,
          multiAz: args.multiAz,
          autoMinorVersionUpgrade: true,
          copyTagsToSnapshot: true,
          deletionProtection: args.deletionProtection,
          skipFinalSnapshot: !args.keepOnDestroy,
          finalSnapshotIdentifier: args.keepOnDestroy ? `${name}-final-${pulumi.getStack()}` : undefined,
          // Dev and staging take changes now; prod waits for its maintenance window.
          applyImmediately: !args.keepOnDestroy,
          tags: args.tags,
          restoreToPointInTime: restore,
        },
        // A restore happens when the database is created. Changing (or, once restored, removing) the restore
        // keys would replace the database, since RDS cannot restore in place; ignored, they change nothing.
        { ...parent, protect: args.keepOnDestroy, ignoreChanges: ['restoreToPointInTime'] },
      );
      this.host = instance.address;
      this.port = instance.port;
      this.identifier = instance.identifier;
      this.instance = instance;
    }

    // RDS enforces TLS (rds.force_ssl). verify-full: the server's certificate must chain to the RDS CA bundle
    // the release carries (DATABASE_TLS_CA=aws-rds) and name this host.
    const tls = args.mode === 'rds' ? '?sslmode=verify-full' : '';
    this.ca = args.mode === 'rds' ? 'aws-rds' : 'url';
    this.url = pulumi.secret(
      pulumi.interpolate`postgres://${DATABASE_USER}:${password.result}@${this.host}:${this.port}/${DATABASE_NAME}${tls}`,
    );
    this.registerOutputs({ host: this.host, port: this.port, url: this.url });
  }

  /**
   * RDS: a manual snapshot named after the newest migration a release ships, for the release step to wait
   * for, so the data as it was before that migration can be restored (README: Restoring the database). The
   * name is the resource's: a release with a newer migration registers a new one, which Pulumi creates,
   * and the one before is left in AWS (retainOnDelete), not deleted. The same newest migration registers
   * nothing new. Undefined on the host, and for a release without migrations.
   */
  snapshotBefore(newestMigration: string | undefined): aws.rds.Snapshot | undefined {
    if (!this.instance || !newestMigration) return undefined;
    const slug = snapshotSlug(newestMigration);
    return new aws.rds.Snapshot(
      `${this.resourceName}-before-${slug}`,
      // Identifiers are unique per account and region: the instance's own (Pulumi-suffixed) name keeps a
      // recreated stack's snapshot from colliding with one an earlier stack left behind.
      { dbInstanceIdentifier: this.instance.identifier, dbSnapshotIdentifier: pulumi.interpolate`${this.instance.identifier}-before-${slug}`, tags: this.tags },
      { parent: this, retainOnDelete: true },
    );
  }
}

/** A migration's name as an RDS snapshot identifier allows: lower-case letters, digits, single hyphens. */
export function snapshotSlug(migration: string): string {
  return migration
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 120)
    .replace(/-+$/, '');
}

/**
 * The instance's restoreToPointInTime, once the source is read and the restore checked. A problem throws a
 * RunError inside the apply: the runtime reports it as the program's error, message only, and nothing is
 * created (@pulumi/pulumi 3.248.0: runtime/resource.js re-rejects the registration, cmd/run/run.js
 * uncaughtHandler logs a RunError without its stack).
 */
export function restoreInput(restore: DatabaseRestore, postgresVersion: string, opts: pulumi.InvokeOutputOptions = {}) {
  return aws.rds.getInstanceOutput({ dbInstanceIdentifier: restore.source }, opts).apply((source) => {
    const problems = restoreProblems(restore, source, postgresVersion, Date.now());
    if (problems.length) {
      throw new pulumi.RunError(
        `Cannot restore the database from ${restore.source}:\n  ${problems.join('\n  ')}\n` +
          '(If this stack restored its database already, remove restoreFrom and restoreSourceDatabase: they are read only when it is created.)',
      );
    }
    return {
      sourceDbInstanceIdentifier: restore.source,
      ...(restore.time === 'latest' ? { useLatestRestorableTime: true } : { restoreTime: restore.time }),
    };
  });
}
