import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { backupKeyAlias, hostBoundaryName, tlsOnlyStatement, type AppEnvironment } from './bootstrap/access';

export type BackupBucketArgs = {
  /** backupBucket: S3 names are global, so the stack takes the one it is given. */
  bucketName: string;
  /** The repository's path in the bucket (`/cemetery-backend/<stack>`): the host's role reaches nothing else. */
  repoPath: string;
  /** backupRetentionDays: how long what pgBackRest expires (or anything overwrites) is kept as an older version. */
  retentionDays: number;
  /** deletionProtection: `protect` the bucket, and never empty it on destroy. */
  protect: boolean;
  /** Whose permissions boundary the host's role carries (infra/bootstrap: hostBoundaryPolicy). */
  environment: AppEnvironment;
  tags: Record<string, string>;
};

/**
 * Where on-host PostgreSQL's backups go on target aws (scripts/host/backups.sh): a bucket the stack owns, encrypted
 * with its environment's backup key (the bootstrap's), versioned, closed to the public and to plain HTTP, and an instance profile whose role
 * may use only the repository's prefix (pgBackRest's user guide, "Sample Amazon S3 Policy"). The host reads the
 * role's credentials as root (the metadata guard keeps every other user from the metadata service) into
 * pgBackRest's include directory (scripts/host/cemetery-s3-credentials.sh).
 */
export class BackupBucket extends pulumi.ComponentResource {
  readonly bucketName: pulumi.Output<string>;
  /** For the host's instance (aws.ec2.Instance iamInstanceProfile). */
  readonly instanceProfileName: pulumi.Output<string>;

  constructor(name: string, args: BackupBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:BackupBucket', name, {}, opts);
    const parent = { parent: this };
    const kept = { parent: this, protect: args.protect };
    const prefix = args.repoPath.replace(/^\//, '');

    // The environment's backup key, the bootstrap's: no deploy may change a key (infra/bootstrap/access.ts).
    const key = aws.kms.getAliasOutput({ name: backupKeyAlias(args.environment) }, parent);
    const bucket = new aws.s3.Bucket(`${name}-backups`, { bucket: args.bucketName, forceDestroy: !args.protect, tags: { ...args.tags, Name: args.bucketName } }, kept);
    // The dependents name the bucket by its name, known at preview, so the policy pack can match them to it.
    const target = { bucket: bucket.bucket };
    new aws.s3.BucketPublicAccessBlock(`${name}-backups-public-access`, { ...target, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true }, parent);
    new aws.s3.BucketVersioning(`${name}-backups-versioning`, { ...target, versioningConfiguration: { status: 'Enabled' } }, parent);
    new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-backups-encryption`,
      // A bucket key: one KMS request per object batch, not per object (WAL is many small objects).
      { ...target, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'aws:kms', kmsMasterKeyId: key.targetKeyArn }, bucketKeyEnabled: true }] },
      parent,
    );
    // pgBackRest expires what its retention no longer needs; versioning keeps that (and anything overwritten or deleted
    // by mistake, or by a stolen role) another backupRetentionDays before it is gone.
    new aws.s3.BucketLifecycleConfiguration(
      `${name}-backups-lifecycle`,
      {
        ...target,
        rules: [
          {
            id: 'older-versions',
            status: 'Enabled',
            filter: {},
            noncurrentVersionExpiration: { noncurrentDays: args.retentionDays },
            abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
          },
        ],
      },
      parent,
    );
    new aws.s3.BucketPolicy(
      `${name}-backups-tls-only`,
      {
        ...target,
        policy: bucket.arn.apply((arn) =>
          JSON.stringify({
            Version: '2012-10-17',
            Statement: [tlsOnlyStatement(arn)],
          }),
        ),
      },
      parent,
    );

    const role = new aws.iam.Role(
      `${name}-host-role`,
      {
        description: `cemetery-backend ${name}: the host's; its backups alone`,
        assumeRolePolicy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] }),
        // The deploy roles may create a role only with it, and it caps whatever policy the role is given.
        permissionsBoundary: pulumi.interpolate`arn:aws:iam::${aws.getCallerIdentityOutput({}, parent).accountId}:policy/${hostBoundaryName(args.environment)}`,
        tags: args.tags,
      },
      parent,
    );
    new aws.iam.RolePolicy(
      `${name}-host-backups`,
      {
        role: role.id,
        policy: pulumi.all([bucket.arn, key.targetKeyArn]).apply(([bucketArn, keyArn]) =>
          JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              // As pgBackRest's user guide has it: listing the root and the repository, and anything under it.
              { Sid: 'ListRepository', Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn, Condition: { StringEquals: { 's3:prefix': ['', prefix], 's3:delimiter': ['/'] } } },
              { Sid: 'ListUnderRepository', Effect: 'Allow', Action: 's3:ListBucket', Resource: bucketArn, Condition: { StringLike: { 's3:prefix': [`${prefix}/*`] } } },
              { Sid: 'Repository', Effect: 'Allow', Action: ['s3:PutObject', 's3:PutObjectTagging', 's3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject'], Resource: `${bucketArn}/${prefix}/*` },
              { Sid: 'BucketKey', Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt'], Resource: keyArn },
            ],
          }),
        ),
      },
      parent,
    );
    const profile = new aws.iam.InstanceProfile(`${name}-host-profile`, { role: role.name, tags: args.tags }, parent);

    this.bucketName = bucket.bucket;
    this.instanceProfileName = profile.name;
    this.registerOutputs({ bucketName: this.bucketName, instanceProfileName: this.instanceProfileName });
  }
}
