import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';

export const DATABASE_NAME = 'cemetery';
export const DATABASE_USER = 'cemetery';
export const POSTGRES_PORT = 5432;

export type DatabaseArgs = {
  mode: 'rds' | 'onHost';
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
  tags: Record<string, string>;
};

/**
 * The app's PostgreSQL: RDS in the private subnets (reachable only from the
 * host's security group), or, in `onHost` mode, the host's own PostgreSQL
 * (installed by provisioning). Either way the password is a generated secret.
 */
export class Database extends pulumi.ComponentResource {
  readonly host: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly password: pulumi.Output<string>;
  /** postgres://… for the app: a secret. */
  readonly url: pulumi.Output<string>;
  /** The app's DATABASE_TLS_CA: which CAs authenticate this database (app/src/config.ts). */
  readonly ca: 'url' | 'aws-rds';

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Database', name, {}, opts);
    const parent = { parent: this };

    // URL-safe characters only: the password goes into DATABASE_URL unescaped.
    const password = new random.RandomPassword(`${name}-password`, { length: 32, special: false }, parent);
    this.password = password.result;

    if (args.mode === 'onHost') {
      this.host = pulumi.output('127.0.0.1');
      this.port = pulumi.output(POSTGRES_PORT);
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
          dbName: DATABASE_NAME,
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
        },
        { ...parent, protect: args.keepOnDestroy },
      );
      this.host = instance.address;
      this.port = instance.port;
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
}
