/**
 * Who may do what in an account: one IAM role per GitHub environment, its
 * trust policy and its permissions, as plain policy documents. The bootstrap
 * program (index.ts) creates exactly these; test/bootstrap.test.ts evaluates
 * them with an IAM simulator against a table of sensitive actions.
 */

/** The GitHub environments the workflows use (README: Delivery), and what each reaches. */
export const GITHUB_ENVIRONMENTS = ['preview', 'dev', 'staging', 'production'] as const;
export type GithubEnvironment = (typeof GITHUB_ENVIRONMENTS)[number];

/** The app's environments: each has its own KMS key, and tags its resources Environment=<name>. */
export const APP_ENVIRONMENTS = ['dev', 'staging', 'prod'] as const;
export type AppEnvironment = (typeof APP_ENVIRONMENTS)[number];

export type EnvironmentAccess = {
  /** The app environment whose stacks, key and tagged resources it reaches. */
  environment: AppEnvironment;
  /** The Pulumi stacks whose state it reads (an S3 key pattern: * matches anything). */
  stacks: string;
  /** Whether it changes resources and state, or only reads them (a preview, which takes no lock). */
  writes: boolean;
  /** The workflow files (.github/workflows) and the refs whose jobs may assume the role; * matches anything. */
  workflows: Array<{ file: string; ref: string }>;
};

export const ENVIRONMENT_ACCESS: Record<GithubEnvironment, EnvironmentAccess> = {
  // Pull requests preview dev: refs/pull/<n>/merge.
  preview: { environment: 'dev', stacks: 'dev', writes: false, workflows: [{ file: 'pull-request.yml', ref: 'refs/pull/*' }] },
  dev: { environment: 'dev', stacks: 'dev', writes: true, workflows: [{ file: 'up.yml', ref: 'refs/heads/main' }] },
  // Staging deploys pull requests' code; the sweep runs on main.
  staging: {
    environment: 'staging',
    stacks: 'staging-*',
    writes: true,
    workflows: [
      { file: 'staging.yml', ref: '*' },
      { file: 'staging-sweep.yml', ref: 'refs/heads/main' },
    ],
  },
  // Every prod* stack is prod (infra/config.ts isProdStack); only up.yml on main moves it.
  production: { environment: 'prod', stacks: 'prod*', writes: true, workflows: [{ file: 'up.yml', ref: 'refs/heads/main' }] },
};

export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';

export type PolicyStatement = {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Principal?: Record<string, string>;
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
};
export type PolicyDocument = { Version: '2012-10-17'; Statement: PolicyStatement[] };
const policy = (...statements: PolicyStatement[]): PolicyDocument => ({ Version: '2012-10-17', Statement: statements });

/** A claim of GitHub's OIDC token, as IAM names it in a trust policy's conditions. */
export const githubClaim = (name: string) => `${GITHUB_OIDC_HOST}:${name}`;

/**
 * Only this repository's jobs in this GitHub environment, from the listed
 * workflow files at the listed refs. `aud` and `sub` (GitHub's default
 * subject for a job in an environment, repo:<owner>/<repo>:environment:<name>)
 * are the documented pair; `repository`, `environment` and `job_workflow_ref`
 * are claims STS also checks (AWS's service authorization reference for
 * sts:AssumeRoleWithWebIdentity lists them), so the role also names the
 * workflow file and ref: a new workflow that declares the environment gets nothing.
 */
export function trustPolicy(providerArn: string, repository: string, environment: GithubEnvironment): PolicyDocument {
  const workflowRefs = ENVIRONMENT_ACCESS[environment].workflows.map(({ file, ref }) => `${repository}/.github/workflows/${file}@${ref}`);
  return policy({
    Sid: 'GithubEnvironmentOnly',
    Effect: 'Allow',
    Principal: { Federated: providerArn },
    Action: 'sts:AssumeRoleWithWebIdentity',
    Condition: {
      StringEquals: {
        [githubClaim('aud')]: 'sts.amazonaws.com',
        [githubClaim('sub')]: `repo:${repository}:environment:${environment}`,
        [githubClaim('repository')]: repository,
        [githubClaim('environment')]: environment,
      },
      StringLike: { [githubClaim('job_workflow_ref')]: workflowRefs },
    },
  });
}

export type StateBucket = { arn: string; project: string };

/**
 * The backend's objects for some stacks, in Pulumi's diy layout (project-scoped, meta.yaml
 * version 1; pulumi v3.248.0 pkg/backend/diy): the checkpoint .pulumi/stacks/<project>/<stack>.json
 * (and .bak, .gz, .zst), history and backups under <project>/<stack>/.
 */
export const stateObjects = ({ arn, project }: StateBucket, stacks: string) => [
  `${arn}/.pulumi/stacks/${project}/${stacks}.json*`,
  `${arn}/.pulumi/history/${project}/${stacks}/*`,
  `${arn}/.pulumi/backups/${project}/${stacks}/*`,
];
/** Locks: .pulumi/locks/organization/<project>/<stack>/<uuid>.json (diy lock.go, backend.go FullyQualifiedName). */
export const lockObjects = ({ arn, project }: StateBucket, stacks: string) => `${arn}/.pulumi/locks/organization/${project}/${stacks}/*`;

/**
 * What a deploy changes: everything the app's program creates (infra/), the alarms and their topic
 * (infra/alarms.ts) included. Alarms and topics carry the Environment tag like the rest, so the
 * tag rules below keep each role to its own.
 */
const ALARM_ACTIONS = ['cloudwatch:PutMetricAlarm', 'cloudwatch:DeleteAlarms', 'cloudwatch:TagResource', 'cloudwatch:UntagResource'];
const TOPIC_ACTIONS = ['sns:CreateTopic', 'sns:DeleteTopic', 'sns:SetTopicAttributes', 'sns:Subscribe', 'sns:Unsubscribe', 'sns:TagResource', 'sns:UntagResource'];
/** A fleet's load balancer (infra/balancer.ts), and its certificate: tagged like the rest. */
const BALANCER_ACTIONS = ['elasticloadbalancing:*', 'acm:RequestCertificate', 'acm:DeleteCertificate', 'acm:AddTagsToCertificate', 'acm:RemoveTagsFromCertificate'];
const DEPLOY_ACTIONS = ['ec2:*', 'rds:*', ...ALARM_ACTIONS, ...TOPIC_ACTIONS, ...BALANCER_ACTIONS];
/**
 * On-host PostgreSQL's backups on target aws (infra/backup-bucket.ts): the stack's bucket, named cemetery-<env>-*, and
 * its host's role and instance profile, named cemetery-<env>-*; the key is the environment's, the bootstrap's
 * (backupKeyAlias), which no deploy changes. A role a deploy creates must carry the environment's permissions boundary
 * (hostBoundaryPolicy), so no policy written on it reaches further than its backups, and it is passed to EC2 alone.
 */
export const BACKUPS_PURPOSE = 'backups';
/** The environment's key for its backup buckets (the bootstrap's). */
export const backupKeyAlias = (env: AppEnvironment) => `alias/cemetery-${env}-backups`;
/** The name of an environment's permissions boundary for the host roles its deploys create. */
export const hostBoundaryName = (env: AppEnvironment) => `cemetery-${env}-host-boundary`;
/** The prefix of everything of an environment's that is named, not tagged: roles, instance profiles, buckets. */
export const namedPrefix = (env: AppEnvironment) => `cemetery-${env}-`;
const HOST_ROLE_READS = ['iam:GetRole', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:ListAttachedRolePolicies', 'iam:ListInstanceProfilesForRole', 'iam:GetInstanceProfile'];
/** What a deploy does to its environment's backup buckets (Pulumi's bucket and its settings; forceDestroy outside prod). */
const BUCKET_CHANGES = [
  's3:CreateBucket',
  's3:DeleteBucket',
  's3:PutBucketTagging',
  's3:PutBucketVersioning',
  's3:PutEncryptionConfiguration',
  's3:PutLifecycleConfiguration',
  's3:PutBucketPublicAccessBlock',
  's3:PutBucketPolicy',
  's3:DeleteBucketPolicy',
];
const BUCKET_READS = ['s3:GetBucket*', 's3:GetEncryptionConfiguration', 's3:GetLifecycleConfiguration', 's3:GetAccelerateConfiguration', 's3:GetReplicationConfiguration', 's3:GetIntelligentTieringConfiguration', 's3:ListBucket', 's3:ListBucketVersions'];
/** What would hand a bucket to someone else, or make its data undeletable: never, not even on the environment's own. */
const BUCKET_HANDOVERS = ['s3:PutBucketAcl', 's3:PutObjectAcl', 's3:PutBucketOwnershipControls', 's3:PutReplicationConfiguration', 's3:PutBucketObjectLockConfiguration', 's3:PutObjectRetention', 's3:PutObjectLegalHold', 's3:BypassGovernanceRetention', 's3:PutBucketNotification', 's3:PutBucketLogging', 's3:PutInventoryConfiguration', 's3:PutBucketWebsite', 's3:PutBucketCORS'];

/**
 * The most a host role of `env` may do, whatever policy its deploy writes on it: from an EC2 instance only (the role's
 * credentials used elsewhere, by whoever its trust policy names, get nothing), pgBackRest's reads and writes under the
 * repositories of env's stacks (/cemetery-backend/<stack>/) in env's buckets of this account, and env's backup key
 * used through S3 alone.
 */
export function hostBoundaryPolicy(env: AppEnvironment, region: string, accountId: string): PolicyDocument {
  const buckets = `arn:aws:s3:::${namedPrefix(env)}*`;
  const stacks = Object.values(ENVIRONMENT_ACCESS).find((a) => a.environment === env && a.writes)!.stacks;
  // ec2:SourceInstanceARN is in the request context only when the credentials are an EC2 instance's.
  const fromThisAccountsInstance = { Null: { 'ec2:SourceInstanceARN': 'false' }, StringEquals: { 'aws:ResourceAccount': accountId } };
  return policy(
    { Sid: 'ListOwnBuckets', Effect: 'Allow', Action: 's3:ListBucket', Resource: buckets, Condition: fromThisAccountsInstance },
    { Sid: 'OwnRepositories', Effect: 'Allow', Action: ['s3:PutObject', 's3:PutObjectTagging', 's3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject'], Resource: `${buckets}/cemetery-backend/${stacks}/*`, Condition: fromThisAccountsInstance },
    {
      Sid: 'OwnBackupKeyThroughS3',
      Effect: 'Allow',
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: `arn:aws:kms:${region}:${accountId}:key/*`,
      Condition: { StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com`, 'aws:ResourceTag/Environment': env, 'aws:ResourceTag/Purpose': BACKUPS_PURPOSE } },
    },
  );
}

/** What reads another environment's secrets from a host without touching it. */
const HOST_DATA_READS = ['ec2:DescribeInstanceAttribute', 'ec2:GetConsoleOutput', 'ec2:GetConsoleScreenshot', 'ec2:GetLaunchTemplateData'];

export type RoleInputs = {
  environment: GithubEnvironment;
  /** The account the roles are in: the buckets and boundaries they manage are this account's. */
  accountId: string;
  state: StateBucket;
  /** The KMS key of the role's app environment (Pulumi secrets of its stacks). */
  keyArn: string;
  /** DNS names the role may point (route53 records); none: no DNS changes. */
  dnsNames: readonly string[];
};

export function permissionPolicy({ environment, accountId, state, keyArn, dnsNames }: RoleInputs): PolicyDocument {
  const access = ENVIRONMENT_ACCESS[environment];
  const tag = access.environment;
  const named = namedPrefix(tag);
  const hostRoles = `arn:aws:iam::${accountId}:role/${named}*`;
  const hostProfiles = `arn:aws:iam::${accountId}:instance-profile/${named}*`;
  const backupBuckets = [`arn:aws:s3:::${named}*`, `arn:aws:s3:::${named}*/*`];
  // Bucket names are global: only this account's.
  const inThisAccount = { StringEquals: { 'aws:ResourceAccount': accountId } };
  const statements: PolicyStatement[] = [
    { Sid: 'ListState', Effect: 'Allow', Action: 's3:ListBucket', Resource: state.arn, Condition: { StringLike: { 's3:prefix': ['.pulumi/*'] } } },
    { Sid: 'ReadBackendMeta', Effect: 'Allow', Action: 's3:GetObject', Resource: `${state.arn}/.pulumi/meta.yaml` },
    { Sid: 'ReadState', Effect: 'Allow', Action: 's3:GetObject', Resource: stateObjects(state, access.stacks) },
    {
      Sid: 'UseStackSecrets',
      Effect: 'Allow',
      Action: access.writes ? ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'] : ['kms:Decrypt', 'kms:DescribeKey'],
      Resource: keyArn,
    },
    {
      Sid: 'ReadResources',
      Effect: 'Allow',
      Action: [
        'ec2:Describe*',
        'rds:Describe*',
        'rds:ListTagsForResource',
        'route53:GetHostedZone',
        'route53:ListResourceRecordSets',
        'route53:GetChange',
        'cloudwatch:DescribeAlarms',
        'cloudwatch:ListTagsForResource',
        'sns:GetTopicAttributes',
        'sns:GetSubscriptionAttributes',
        'sns:ListTagsForResource',
        'elasticloadbalancing:Describe*',
        'acm:DescribeCertificate',
        'acm:ListTagsForCertificate',
        // The environment's backup key, by its alias (aws.kms.getAlias).
        'kms:ListAliases',
      ],
      Resource: '*',
    },
    // The environment's backups as a preview reads them: the bucket's settings (never its objects), its host's role.
    { Sid: 'ReadBackupBuckets', Effect: 'Allow', Action: BUCKET_READS.filter((a) => !a.startsWith('s3:List')), Resource: backupBuckets[0], Condition: inThisAccount },
    { Sid: 'ReadHostRoles', Effect: 'Allow', Action: HOST_ROLE_READS, Resource: [hostRoles, hostProfiles] },
    // Another environment's resources, by their Environment tag: never touched, never read for host data.
    {
      Sid: 'DenyOtherEnvironments',
      Effect: 'Deny',
      Action: DEPLOY_ACTIONS,
      Resource: '*',
      Condition: { StringNotEquals: { 'aws:ResourceTag/Environment': tag }, Null: { 'aws:ResourceTag/Environment': 'false' } },
    },
    {
      Sid: 'DenyCreatingForOtherEnvironments',
      Effect: 'Deny',
      Action: DEPLOY_ACTIONS,
      Resource: '*',
      Condition: { StringNotEquals: { 'aws:RequestTag/Environment': tag }, Null: { 'aws:RequestTag/Environment': 'false' } },
    },
    { Sid: 'DenyBucketHandovers', Effect: 'Deny', Action: BUCKET_HANDOVERS, Resource: '*' },
  ];
  if (access.writes) {
    statements.push(
      { Sid: 'WriteState', Effect: 'Allow', Action: ['s3:PutObject', 's3:DeleteObject'], Resource: stateObjects(state, access.stacks) },
      // up, refresh and destroy lock their stack; a preview takes no lock (diy backend.go Preview), so it writes nothing.
      { Sid: 'LockState', Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], Resource: lockObjects(state, access.stacks) },
      { Sid: 'Deploy', Effect: 'Allow', Action: DEPLOY_ACTIONS, Resource: '*' },
      // Service-linked roles, and nothing else in IAM: the first database needs RDS's; the first alarm with an EC2 action (recover, reboot) CloudWatch's,
      // AWSServiceRoleForCloudWatchEvents (PutMetricAlarm: "iam:CreateServiceLinkedRole for all alarms with EC2 actions"); the first load balancer ELB's.
      {
        Sid: 'ServiceLinkedRoles',
        Effect: 'Allow',
        Action: 'iam:CreateServiceLinkedRole',
        Resource: '*',
        Condition: { StringEquals: { 'iam:AWSServiceName': ['rds.amazonaws.com', 'events.amazonaws.com', 'elasticloadbalancing.amazonaws.com'] } },
      },
      // On-host backups (see BACKUPS_PURPOSE): the bucket, and a host role that carries the boundary.
      { Sid: 'BackupBuckets', Effect: 'Allow', Action: [...BUCKET_CHANGES, ...BUCKET_READS], Resource: backupBuckets[0], Condition: inThisAccount },
      // forceDestroy (dev, staging) empties the bucket; prod's backups, older versions included, no deploy deletes.
      ...(tag === 'prod' ? [] : [{ Sid: 'EmptyBackupBuckets', Effect: 'Allow' as const, Action: ['s3:DeleteObject', 's3:DeleteObjectVersion'], Resource: backupBuckets[1], Condition: inThisAccount }]),
      {
        Sid: 'HostRolesWithinBoundary',
        Effect: 'Allow',
        Action: ['iam:CreateRole', 'iam:PutRolePolicy', 'iam:DeleteRolePolicy'],
        Resource: hostRoles,
        Condition: { StringEquals: { 'iam:PermissionsBoundary': `arn:aws:iam::${accountId}:policy/${hostBoundaryName(tag)}` } },
      },
      { Sid: 'HostRoles', Effect: 'Allow', Action: ['iam:DeleteRole', 'iam:TagRole', 'iam:UntagRole', 'iam:UpdateRoleDescription'], Resource: hostRoles },
      {
        Sid: 'HostProfiles',
        Effect: 'Allow',
        Action: ['iam:CreateInstanceProfile', 'iam:DeleteInstanceProfile', 'iam:AddRoleToInstanceProfile', 'iam:RemoveRoleFromInstanceProfile', 'iam:TagInstanceProfile', 'iam:UntagInstanceProfile'],
        Resource: hostProfiles,
      },
      { Sid: 'PassHostRolesToEc2', Effect: 'Allow', Action: 'iam:PassRole', Resource: hostRoles, Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } } },
    );
    if (dnsNames.length) {
      statements.push({
        Sid: 'PointOwnNames',
        Effect: 'Allow',
        Action: 'route53:ChangeResourceRecordSets',
        Resource: 'arn:aws:route53:::hostedzone/*',
        // The names themselves, and ACM's validation records of their certificates (_<hash>.<name>).
        Condition: { 'ForAllValues:StringLike': { 'route53:ChangeResourceRecordSetsNormalizedRecordNames': dnsNames.flatMap((n) => [n, `_*.${n}`]) } },
      });
    }
  } else {
    // A preview reads host data of its own environment only; an untagged host counts as someone else's.
    statements.push({ Sid: 'DenyHostDataOutsideOwnEnvironment', Effect: 'Deny', Action: HOST_DATA_READS, Resource: '*', Condition: { StringNotEquals: { 'aws:ResourceTag/Environment': tag } } });
  }
  return policy(...statements);
}

/** A bucket policy's statement that refuses every request not made over TLS (the state bucket's, the backup buckets'). */
export const tlsOnlyStatement = (bucketArn: string): PolicyStatement => ({
  Sid: 'TlsOnly',
  Effect: 'Deny',
  Principal: { AWS: '*' },
  Action: 's3:*',
  Resource: [bucketArn, `${bucketArn}/*`],
  Condition: { Bool: { 'aws:SecureTransport': 'false' } },
});

/** The state bucket's own policy: TLS only, and nobody outside the account. */
export function stateBucketPolicy(bucketArn: string, accountId: string): PolicyDocument {
  return policy(
    tlsOnlyStatement(bucketArn),
    { Sid: 'AccountOnly', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:*', Resource: [bucketArn, `${bucketArn}/*`], Condition: { StringNotEquals: { 'aws:PrincipalAccount': accountId } } },
  );
}

/** Each environment's key: the account administers it, the roles use it through their own policies. */
export function keyPolicy(accountId: string): PolicyDocument {
  return policy({ Sid: 'AccountAdministers', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' });
}
