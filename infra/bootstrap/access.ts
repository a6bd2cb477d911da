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
 * On-host PostgreSQL's backups on target aws (infra/backup-bucket.ts): the stack's bucket, named cemetery-<env>-*,
 * its key, tagged Purpose=backups, and its host's role and instance profile, named cemetery-<env>-*. The roles a
 * deploy creates carry the environment's permissions boundary (hostBoundaryPolicy), so no policy written on them
 * reaches further than its backups; they are passed to EC2 alone.
 */
export const BACKUPS_PURPOSE = 'backups';
const BACKUP_KEY_MANAGEMENT = ['kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:GetKeyRotationStatus', 'kms:ListResourceTags', 'kms:EnableKeyRotation', 'kms:ScheduleKeyDeletion', 'kms:UntagResource'];
/** Everything that changes a key: never on an environment's secrets key, never on another environment's key. */
const KEY_CHANGES = ['kms:CreateKey', 'kms:TagResource', 'kms:UntagResource', 'kms:ScheduleKeyDeletion', 'kms:EnableKeyRotation', 'kms:DisableKeyRotation', 'kms:DisableKey', 'kms:PutKeyPolicy', 'kms:CreateGrant'];
const HOST_ROLE_READS = ['iam:GetRole', 'iam:GetRolePolicy', 'iam:ListRolePolicies', 'iam:ListAttachedRolePolicies', 'iam:ListInstanceProfilesForRole', 'iam:GetInstanceProfile'];
/** The name of an environment's permissions boundary for the host roles its deploys create. */
export const hostBoundaryName = (env: AppEnvironment) => `cemetery-${env}-host-boundary`;
/** The prefix of everything of an environment's that is named, not tagged: roles, instance profiles, buckets. */
export const namedPrefix = (env: AppEnvironment) => `cemetery-${env}-`;

/**
 * The most a host role of `env` may do, whatever policy its deploy writes on it: pgBackRest's reads and writes under
 * the repositories of env's stacks (/cemetery-backend/<stack>/) in env's buckets, and env's backup keys used through
 * S3 alone.
 */
export function hostBoundaryPolicy(env: AppEnvironment, region: string): PolicyDocument {
  const buckets = `arn:aws:s3:::${namedPrefix(env)}*`;
  const stacks = Object.values(ENVIRONMENT_ACCESS).find((a) => a.environment === env && a.writes)!.stacks;
  return policy(
    { Sid: 'ListOwnBuckets', Effect: 'Allow', Action: 's3:ListBucket', Resource: buckets },
    { Sid: 'OwnRepositories', Effect: 'Allow', Action: ['s3:PutObject', 's3:PutObjectTagging', 's3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject'], Resource: `${buckets}/cemetery-backend/${stacks}/*` },
    {
      Sid: 'OwnBackupKeysThroughS3',
      Effect: 'Allow',
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: '*',
      Condition: { StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com`, 'aws:ResourceTag/Environment': env, 'aws:ResourceTag/Purpose': BACKUPS_PURPOSE } },
    },
  );
}

/** What reads another environment's secrets from a host without touching it. */
const HOST_DATA_READS = ['ec2:DescribeInstanceAttribute', 'ec2:GetConsoleOutput', 'ec2:GetConsoleScreenshot', 'ec2:GetLaunchTemplateData'];

export type RoleInputs = {
  environment: GithubEnvironment;
  state: StateBucket;
  /** The KMS key of the role's app environment (Pulumi secrets of its stacks). */
  keyArn: string;
  /** DNS names the role may point (route53 records); none: no DNS changes. */
  dnsNames: readonly string[];
};

export function permissionPolicy({ environment, state, keyArn, dnsNames }: RoleInputs): PolicyDocument {
  const access = ENVIRONMENT_ACCESS[environment];
  const tag = access.environment;
  const named = namedPrefix(tag);
  const hostRoles = `arn:aws:iam::*:role/${named}*`;
  const hostProfiles = `arn:aws:iam::*:instance-profile/${named}*`;
  const ownBackupKeys = { StringEquals: { 'aws:ResourceTag/Environment': tag, 'aws:ResourceTag/Purpose': BACKUPS_PURPOSE } };
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
      ],
      Resource: '*',
    },
    // The environment's backups as a preview reads them: the bucket's settings (never its objects), its key, its host's role.
    { Sid: 'ReadBackupBuckets', Effect: 'Allow', Action: ['s3:GetBucket*', 's3:GetEncryptionConfiguration', 's3:GetLifecycleConfiguration', 's3:GetAccelerateConfiguration', 's3:GetReplicationConfiguration'], Resource: `arn:aws:s3:::${named}*` },
    { Sid: 'ReadBackupKeys', Effect: 'Allow', Action: ['kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:GetKeyRotationStatus', 'kms:ListResourceTags'], Resource: 'arn:aws:kms:*:*:key/*', Condition: ownBackupKeys },
    { Sid: 'ReadHostRoles', Effect: 'Allow', Action: HOST_ROLE_READS, Resource: [hostRoles, hostProfiles] },
    // Another environment's resources, by their Environment tag: never touched, never read for host data.
    {
      Sid: 'DenyOtherEnvironments',
      Effect: 'Deny',
      Action: [...DEPLOY_ACTIONS, ...KEY_CHANGES],
      Resource: '*',
      Condition: { StringNotEquals: { 'aws:ResourceTag/Environment': tag }, Null: { 'aws:ResourceTag/Environment': 'false' } },
    },
    {
      Sid: 'DenyCreatingForOtherEnvironments',
      Effect: 'Deny',
      Action: [...DEPLOY_ACTIONS, ...KEY_CHANGES],
      Resource: '*',
      Condition: { StringNotEquals: { 'aws:RequestTag/Environment': tag }, Null: { 'aws:RequestTag/Environment': 'false' } },
    },
    // The environment's secrets key is the bootstrap's: no deploy changes it (its tags included).
    { Sid: 'DenyChangingSecretsKey', Effect: 'Deny', Action: KEY_CHANGES, Resource: keyArn },
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
      // On-host backups (see BACKUPS_PURPOSE): the bucket, its key, and a host role that carries the boundary.
      { Sid: 'BackupBuckets', Effect: 'Allow', Action: 's3:*', Resource: [`arn:aws:s3:::${named}*`, `arn:aws:s3:::${named}*/*`] },
      { Sid: 'CreateBackupKeys', Effect: 'Allow', Action: ['kms:CreateKey', 'kms:TagResource'], Resource: '*', Condition: { StringEquals: { 'aws:RequestTag/Environment': tag, 'aws:RequestTag/Purpose': BACKUPS_PURPOSE } } },
      { Sid: 'ManageBackupKeys', Effect: 'Allow', Action: BACKUP_KEY_MANAGEMENT, Resource: 'arn:aws:kms:*:*:key/*', Condition: ownBackupKeys },
      {
        Sid: 'HostRolesWithinBoundary',
        Effect: 'Allow',
        Action: ['iam:CreateRole', 'iam:PutRolePolicy', 'iam:DeleteRolePolicy'],
        Resource: hostRoles,
        Condition: { ArnLike: { 'iam:PermissionsBoundary': `arn:aws:iam::*:policy/${hostBoundaryName(tag)}` } },
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

/** The state bucket's own policy: TLS only, and nobody outside the account. */
export function stateBucketPolicy(bucketArn: string, accountId: string): PolicyDocument {
  return policy(
    { Sid: 'TlsOnly', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:*', Resource: [bucketArn, `${bucketArn}/*`], Condition: { Bool: { 'aws:SecureTransport': 'false' } } },
    { Sid: 'AccountOnly', Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:*', Resource: [bucketArn, `${bucketArn}/*`], Condition: { StringNotEquals: { 'aws:PrincipalAccount': accountId } } },
  );
}

/** Each environment's key: the account administers it, the roles use it through their own policies. */
export function keyPolicy(accountId: string): PolicyDocument {
  return policy({ Sid: 'AccountAdministers', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' });
}
