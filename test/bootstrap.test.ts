/**
 * The AWS set-up as code (infra/bootstrap): what each GitHub environment's
 * role can do, evaluated by an IAM policy simulator (@cloud-copilot/iam-simulate)
 * on the documents the program creates under mocks, against a table of the
 * actions an attacker with a pull request would try. The table is printed.
 */
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { GITHUB_ENVIRONMENTS, githubClaim, permissionPolicy, type GithubEnvironment, type PolicyDocument } from '../infra/bootstrap/access';
import { BOOTSTRAP_PROJECT, createBootstrap, parseBootstrapConfig } from '../infra/bootstrap/bootstrap';
import { ROOT } from './support/db';
import { MOCK_ACCOUNT_ID as ACCOUNT, runProgram, type RecordedResource } from './support/pulumi-mocks';

const REPO = 'acme/cemetery-backend';
const REGION = 'eu-central-1';

type Account = {
  resources: RecordedResource[];
  trust: Partial<Record<GithubEnvironment, PolicyDocument>>;
  permissions: Partial<Record<GithubEnvironment, PolicyDocument>>;
  keyArn: Record<string, string>;
  keyPolicy: Record<string, PolicyDocument>;
  bucketArn: string;
  bucketPolicy: PolicyDocument;
};

async function bootstrap(environments: GithubEnvironment[], stack: string): Promise<Account> {
  const raw = { githubRepository: REPO, environments: JSON.stringify(environments), dnsNames: JSON.stringify({}) };
  const { resources } = await runProgram(stack, {}, () => createBootstrap(parseBootstrapConfig(raw, REGION)), { project: BOOTSTRAP_PROJECT });
  const of = (type: string) => resources.filter((r) => r.type === type);
  const envOfRole = (roleName: string) => roleName.replace('cemetery-github-', '') as GithubEnvironment;
  const bucket = of('aws:s3/bucket:Bucket')[0];
  const secretsKeys = of('aws:kms/key:Key').filter((k) => k.name.startsWith('secrets-'));
  return {
    resources,
    trust: Object.fromEntries(of('aws:iam/role:Role').map((r) => [envOfRole(r.inputs.name), JSON.parse(r.inputs.assumeRolePolicy)])),
    permissions: Object.fromEntries(of('aws:iam/rolePolicy:RolePolicy').map((r) => [r.name.replace('github-', ''), JSON.parse(r.inputs.policy)])),
    keyArn: Object.fromEntries(secretsKeys.map((k) => [k.inputs.tags.Environment, `arn:aws:kms:${REGION}:${ACCOUNT}:key/${k.name}-key-id`])),
    keyPolicy: Object.fromEntries(secretsKeys.map((k) => [k.inputs.tags.Environment, JSON.parse(k.inputs.policy)])),
    bucketArn: `arn:aws:s3:::${bucket.inputs.bucket}`,
    bucketPolicy: JSON.parse(of('aws:s3/bucketPolicy:BucketPolicy')[0].inputs.policy),
  };
}

let single: Account;
let nonprod: Account;
let prod: Account;
beforeAll(async () => {
  single = await bootstrap([...GITHUB_ENVIRONMENTS], 'one-account');
  nonprod = await bootstrap(['preview', 'dev', 'staging'], 'nonprod');
  prod = await bootstrap(['production'], 'prod');
});

type Decision = 'Allowed' | 'ExplicitlyDenied' | 'ImplicitlyDenied';
async function decide(simulation: Omit<Simulation, 'serviceControlPolicies' | 'resourceControlPolicies'>): Promise<Decision> {
  const result = await runSimulation({ serviceControlPolicies: [], resourceControlPolicies: [], ...simulation }, {});
  if (result.resultType === 'error') throw new Error(`the simulator refused the request: ${JSON.stringify(result.errors)}`);
  return result.overallResult as Decision;
}

describe('the state bucket and the keys', () => {
  test('the bucket is versioned, encrypted, private, TLS-only and this account only', () => {
    const types = (t: string) => single.resources.filter((r) => r.type === t).map((r) => r.inputs);
    expect(types('aws:s3/bucketVersioning:BucketVersioning')).toEqual([expect.objectContaining({ versioningConfiguration: { status: 'Enabled' } })]);
    expect(types('aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration')[0].rules).toEqual([{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' } }]);
    expect(types('aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock')[0]).toMatchObject({ blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true });
    expect(single.bucketArn).toBe(`arn:aws:s3:::cemetery-pulumi-state-${ACCOUNT}-${REGION}`);
    expect(single.bucketPolicy.Statement.map((s) => s.Sid)).toEqual(['TlsOnly', 'AccountOnly']);
  });

  test('one key per app environment, rotated, under the alias the stacks name (awskms://alias/cemetery-<env>)', () => {
    const keys = single.resources.filter((r) => r.type === 'aws:kms/key:Key' && r.name.startsWith('secrets-'));
    expect(keys.map((k) => [k.inputs.tags.Environment, k.inputs.enableKeyRotation])).toEqual([['dev', true], ['staging', true], ['prod', true]]);
    expect(single.resources.filter((r) => r.type === 'aws:kms/alias:Alias').map((a) => a.inputs.name)).toEqual(expect.arrayContaining(['alias/cemetery-dev', 'alias/cemetery-staging', 'alias/cemetery-prod']));
    // A separate prod account holds prod's key and nothing else.
    expect(Object.keys(prod.keyArn)).toEqual(['prod']);
    expect(Object.keys(nonprod.keyArn)).toEqual(['dev', 'staging']);
  });

  test.each([
    ['environments', '["preview"]', "cemetery-bootstrap:environments: preview reads dev's state and key: bootstrap dev in the same account"],
    ['environments', '["qa"]', 'cemetery-bootstrap:environments: expected GitHub environments among preview, dev, staging, production'],
    ['githubRepository', 'cemetery-backend', 'cemetery-bootstrap:githubRepository: expected owner/name, e.g. acme/cemetery-backend'],
  ])('%s = %s is refused, naming the key', (key, value, message) => {
    expect(() => parseBootstrapConfig({ githubRepository: REPO, [key]: value }, REGION)).toThrow(message);
  });
});

describe('who can assume which role', () => {
  const workflowRef = (file: string, ref: string) => `${REPO}/.github/workflows/${file}@${ref}`;
  // The jobs GitHub would run, as the claims of their OIDC tokens.
  const JOBS: Array<[string, { repository: string; environment: string; workflow: string }]> = [
    ['up.yml on main, environment production', { repository: REPO, environment: 'production', workflow: workflowRef('up.yml', 'refs/heads/main') }],
    ['up.yml on a branch, environment production', { repository: REPO, environment: 'production', workflow: workflowRef('up.yml', 'refs/heads/feature') }],
    ['a new workflow on main, environment production', { repository: REPO, environment: 'production', workflow: workflowRef('release.yml', 'refs/heads/main') }],
    ['up.yml on main, environment dev', { repository: REPO, environment: 'dev', workflow: workflowRef('up.yml', 'refs/heads/main') }],
    ['pull-request.yml on a pull request, environment preview', { repository: REPO, environment: 'preview', workflow: workflowRef('pull-request.yml', 'refs/pull/42/merge') }],
    ['staging.yml on a pull request, environment staging', { repository: REPO, environment: 'staging', workflow: workflowRef('staging.yml', 'refs/pull/42/merge') }],
    ['a workflow added by a pull request, environment staging', { repository: REPO, environment: 'staging', workflow: workflowRef('evil.yml', 'refs/pull/42/merge') }],
    ['a fork, up.yml on main, environment production', { repository: 'mallory/cemetery-backend', environment: 'production', workflow: 'mallory/cemetery-backend/.github/workflows/up.yml@refs/heads/main' }],
  ];
  const EXPECTED: Record<string, GithubEnvironment | null> = {
    'up.yml on main, environment production': 'production',
    'up.yml on a branch, environment production': null,
    'a new workflow on main, environment production': null,
    'up.yml on main, environment dev': 'dev',
    'pull-request.yml on a pull request, environment preview': 'preview',
    'staging.yml on a pull request, environment staging': 'staging',
    'a workflow added by a pull request, environment staging': null,
    'a fork, up.yml on main, environment production': null,
  };

  test('aud and sub are the documented pair, exactly', () => {
    for (const env of GITHUB_ENVIRONMENTS) {
      expect(single.trust[env]!.Statement[0].Condition!.StringEquals).toMatchObject({
        [githubClaim('aud')]: 'sts.amazonaws.com',
        [githubClaim('sub')]: `repo:${REPO}:environment:${env}`,
      });
    }
  });

  test('each job reaches at most its own role (table printed)', async () => {
    const rows: string[] = [];
    for (const [job, claims] of JOBS) {
      const reached: GithubEnvironment[] = [];
      for (const env of GITHUB_ENVIRONMENTS) {
        // The simulator's action data (AWS's service authorization reference) has the GitHub claims
        // but not the generic OIDC aud/sub keys, which it would count as missing: those two are asserted
        // above, the rest of the real trust policy is evaluated here.
        const trust = structuredClone(single.trust[env]!);
        delete trust.Statement[0].Condition!.StringEquals[githubClaim('aud')];
        delete trust.Statement[0].Condition!.StringEquals[githubClaim('sub')];
        const decision = await decide({
          identityPolicies: [],
          resourcePolicy: trust,
          request: {
            principal: `arn:aws:iam::${ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`,
            action: 'sts:AssumeRoleWithWebIdentity',
            resource: { accountId: ACCOUNT, resource: `arn:aws:iam::${ACCOUNT}:role/cemetery-github-${env}` },
            contextVariables: { [githubClaim('repository')]: claims.repository, [githubClaim('environment')]: claims.environment, [githubClaim('job_workflow_ref')]: claims.workflow },
          },
        });
        if (decision === 'Allowed') reached.push(env);
      }
      rows.push(`| ${job} | ${reached.join(', ') || '–'} |`);
      expect({ job, reached }).toEqual({ job, reached: EXPECTED[job] ? [EXPECTED[job]] : [] });
    }
    console.log(['| job (its OIDC token) | roles it can assume |', '|---|---|', ...rows].join('\n'));
  });

  test("the workflows the roles name exist and declare that environment (so the table is about the real files)", () => {
    const workflows = path.join(ROOT, '.github', 'workflows');
    const named: Array<[GithubEnvironment, string]> = [['production', 'up.yml'], ['dev', 'up.yml'], ['preview', 'pull-request.yml'], ['staging', 'staging.yml'], ['staging', 'staging-sweep.yml']];
    for (const [env, file] of named) {
      const jobs = Object.values((parse(readFileSync(path.join(workflows, file), 'utf8')) as { jobs: Record<string, { environment?: string }> }).jobs);
      expect({ file, environments: jobs.map((j) => j.environment) }).toEqual({ file, environments: expect.arrayContaining([env]) });
    }
  });
});

describe('what each role can do', () => {
  type Row = { what: string; action: string; resource: string; context?: Record<string, string>; resourcePolicy?: (a: Account) => PolicyDocument };
  const instance = (env: string) => ({ resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0${env}`, context: { 'aws:ResourceTag/Environment': env } });
  const state = (key: string) => ({ resource: `{bucket}/.pulumi/${key}`, resourcePolicy: (a: Account) => a.bucketPolicy, context: { 'aws:SecureTransport': 'true', 'aws:PrincipalAccount': ACCOUNT } });
  const key = (env: string) => ({ resource: `{key:${env}}`, resourcePolicy: (a: Account) => a.keyPolicy[env] });
  /** A host role named for `env`, carrying `boundaryEnv`'s boundary. */
  const hostRole = (env: string, boundaryEnv: string) => ({
    resource: `arn:aws:iam::${ACCOUNT}:role/cemetery-${env}-host-role-3f2a1b9`,
    context: { 'iam:PermissionsBoundary': `arn:aws:iam::${ACCOUNT}:policy/cemetery-${boundaryEnv}-host-boundary` },
  });
  // The bootstrap's backup key of an environment, with the same key policy as its secrets key.
  const backupKey = (env: string) => ({ resource: `arn:aws:kms:${REGION}:${ACCOUNT}:key/backups-${env}`, resourcePolicy: (a: Account) => a.keyPolicy[env], context: { 'aws:ResourceTag/Environment': env, 'aws:ResourceTag/Purpose': 'backups' } });
  /** A bucket (or object) of this account. */
  const ownBucket = (path: string) => ({ resource: `arn:aws:s3:::${path}`, context: { 'aws:ResourceAccount': ACCOUNT } });

  /** Sensitive requests, and which roles of the one-account layout may make them (the assertion and the printed table). */
  const TABLE: Array<[Row, GithubEnvironment[]]> = [
    [{ what: "read prod's user data (its SSH host key)", action: 'ec2:DescribeInstanceAttribute', ...instance('prod') }, ['production']],
    [{ what: "read dev's user data (refresh)", action: 'ec2:DescribeInstanceAttribute', ...instance('dev') }, ['preview', 'dev']],
    [{ what: "read an untagged host's user data", action: 'ec2:DescribeInstanceAttribute', resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0untagged` }, ['dev', 'staging', 'production']],
    [{ what: "terminate prod's host", action: 'ec2:TerminateInstances', ...instance('prod') }, ['production']],
    [{ what: "terminate a staging host", action: 'ec2:TerminateInstances', ...instance('staging') }, ['staging']],
    [{ what: "snapshot prod's root volume", action: 'ec2:CreateSnapshot', resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:volume/vol-0prod`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: "open prod's security group", action: 'ec2:AuthorizeSecurityGroupIngress', resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:security-group/sg-0prod`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: 'launch a host tagged prod', action: 'ec2:RunInstances', resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/*`, context: { 'aws:RequestTag/Environment': 'prod' } }, ['production']],
    [{ what: "delete prod's database", action: 'rds:DeleteDBInstance', resource: `arn:aws:rds:${REGION}:${ACCOUNT}:db:cemetery-prod-pg`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: "snapshot prod's database (before migrations)", action: 'rds:CreateDBSnapshot', resource: `arn:aws:rds:${REGION}:${ACCOUNT}:db:cemetery-prod-pg`, context: { 'aws:ResourceTag/Environment': 'prod', 'aws:RequestTag/Environment': 'prod' } }, ['production']],
    [{ what: "reset prod's database password", action: 'rds:ModifyDBInstance', resource: `arn:aws:rds:${REGION}:${ACCOUNT}:db:cemetery-prod-pg`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: "delete prod's host alarm", action: 'cloudwatch:DeleteAlarms', resource: `arn:aws:cloudwatch:${REGION}:${ACCOUNT}:alarm:cemetery-prod-host-hardware`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: 'create an alarm tagged prod', action: 'cloudwatch:PutMetricAlarm', resource: `arn:aws:cloudwatch:${REGION}:${ACCOUNT}:alarm:cemetery-prod-db-cpu`, context: { 'aws:RequestTag/Environment': 'prod' } }, ['production']],
    [{ what: 'create a load balancer tagged prod', action: 'elasticloadbalancing:CreateLoadBalancer', resource: `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/app/cemetery-prod-alb/1`, context: { 'aws:RequestTag/Environment': 'prod' } }, ['production']],
    [{ what: "take prod's hosts out of its balancer", action: 'elasticloadbalancing:DeregisterTargets', resource: `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:targetgroup/cemetery-prod-web/1`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: "delete dev's load balancer", action: 'elasticloadbalancing:DeleteLoadBalancer', resource: `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/app/cemetery-dev-alb/1`, context: { 'aws:ResourceTag/Environment': 'dev' } }, ['dev']],
    [{ what: 'request a certificate tagged prod', action: 'acm:RequestCertificate', resource: '*', context: { 'aws:RequestTag/Environment': 'prod' } }, ['production']],
    [{ what: "delete prod's certificate", action: 'acm:DeleteCertificate', resource: `arn:aws:acm:${REGION}:${ACCOUNT}:certificate/1`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: "create ELB's service-linked role (the first load balancer)", action: 'iam:CreateServiceLinkedRole', resource: `arn:aws:iam::${ACCOUNT}:role/aws-service-role/elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing`, context: { 'iam:AWSServiceName': 'elasticloadbalancing.amazonaws.com' } }, ['dev', 'staging', 'production']],
    [{ what: "subscribe to prod's alert topic", action: 'sns:Subscribe', resource: `arn:aws:sns:${REGION}:${ACCOUNT}:cemetery-prod-alerts`, context: { 'aws:ResourceTag/Environment': 'prod' } }, ['production']],
    [{ what: "delete staging's alert topic", action: 'sns:DeleteTopic', resource: `arn:aws:sns:${REGION}:${ACCOUNT}:cemetery-staging-alerts`, context: { 'aws:ResourceTag/Environment': 'staging' } }, ['staging']],
    [{ what: "read prod's state", action: 's3:GetObject', ...state('stacks/cemetery-backend/prod.json') }, ['production']],
    [{ what: "read prod-eu's state", action: 's3:GetObject', ...state('stacks/cemetery-backend/prod-eu.json') }, ['production']],
    [{ what: "write prod's state", action: 's3:PutObject', ...state('stacks/cemetery-backend/prod.json') }, ['production']],
    [{ what: "take prod's lock", action: 's3:PutObject', ...state('locks/organization/cemetery-backend/prod/0b5e.json') }, ['production']],
    [{ what: "remove prod's lock", action: 's3:DeleteObject', ...state('locks/organization/cemetery-backend/prod/0b5e.json') }, ['production']],
    [{ what: "read dev's state", action: 's3:GetObject', ...state('stacks/cemetery-backend/dev.json') }, ['preview', 'dev']],
    [{ what: "write dev's state", action: 's3:PutObject', ...state('stacks/cemetery-backend/dev.json') }, ['dev']],
    [{ what: "take dev's lock", action: 's3:PutObject', ...state('locks/organization/cemetery-backend/dev/0b5e.json') }, ['dev']],
    [{ what: "write a staging stack's state", action: 's3:PutObject', ...state('stacks/cemetery-backend/staging-pr-7.json') }, ['staging']],
    [{ what: "decrypt prod's secrets", action: 'kms:Decrypt', ...key('prod') }, ['production']],
    [{ what: "decrypt dev's secrets", action: 'kms:Decrypt', ...key('dev') }, ['preview', 'dev']],
    [{ what: "decrypt staging's secrets", action: 'kms:Decrypt', ...key('staging') }, ['staging']],
    [{ what: 'assume another role', action: 'sts:AssumeRole', resource: `arn:aws:iam::${ACCOUNT}:role/cemetery-github-production` }, []],
    [{ what: 'pass a role to a host', action: 'iam:PassRole', resource: `arn:aws:iam::${ACCOUNT}:role/admin` }, []],
    [{ what: 'create a role', action: 'iam:CreateRole', resource: `arn:aws:iam::${ACCOUNT}:role/backdoor` }, []],
    [{ what: "create CloudWatch's service-linked role (alarms that recover or reboot a host)", action: 'iam:CreateServiceLinkedRole', resource: `arn:aws:iam::${ACCOUNT}:role/aws-service-role/events.amazonaws.com/AWSServiceRoleForCloudWatchEvents`, context: { 'iam:AWSServiceName': 'events.amazonaws.com' } }, ['dev', 'staging', 'production']],
    [{ what: "create another service's linked role", action: 'iam:CreateServiceLinkedRole', resource: `arn:aws:iam::${ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS`, context: { 'iam:AWSServiceName': 'ecs.amazonaws.com' } }, []],
    [{ what: 'widen its own policy', action: 'iam:PutRolePolicy', resource: `arn:aws:iam::${ACCOUNT}:role/cemetery-github-staging` }, []],
    // On-host backups on target aws (infra/backup-bucket.ts): host roles only within the environment's boundary.
    [{ what: "create a host role that carries prod's boundary", action: 'iam:CreateRole', ...hostRole('prod', 'prod') }, ['production']],
    [{ what: "create a host role that carries staging's boundary", action: 'iam:CreateRole', ...hostRole('staging', 'staging') }, ['staging']],
    [{ what: 'create a host role without a boundary', action: 'iam:CreateRole', resource: hostRole('prod', 'prod').resource }, []],
    [{ what: "create a prod-named role with staging's boundary", action: 'iam:CreateRole', ...hostRole('prod', 'staging') }, []],
    [{ what: "write a policy on prod's host role (it carries the boundary)", action: 'iam:PutRolePolicy', ...hostRole('prod', 'prod') }, ['production']],
    [{ what: "remove the boundary from prod's host role", action: 'iam:DeleteRolePermissionsBoundary', resource: hostRole('prod', 'prod').resource }, []],
    [{ what: "set another boundary on prod's host role", action: 'iam:PutRolePermissionsBoundary', ...hostRole('prod', 'prod') }, []],
    [{ what: "attach a managed policy to prod's host role", action: 'iam:AttachRolePolicy', ...hostRole('prod', 'prod') }, []],
    [{ what: "pass prod's host role to EC2", action: 'iam:PassRole', resource: hostRole('prod', 'prod').resource, context: { 'iam:PassedToService': 'ec2.amazonaws.com' } }, ['production']],
    [{ what: "pass prod's host role to Lambda", action: 'iam:PassRole', resource: hostRole('prod', 'prod').resource, context: { 'iam:PassedToService': 'lambda.amazonaws.com' } }, []],
    [{ what: "create prod's backup bucket", action: 's3:CreateBucket', ...ownBucket('cemetery-prod-backups-1') }, ['production']],
    [{ what: "delete an object of a staging stack's backups (forceDestroy)", action: 's3:DeleteObject', ...ownBucket('cemetery-staging-backups-1/cemetery-backend/staging-pr-7/archive/x') }, ['staging']],
    [{ what: "read dev's backups", action: 's3:GetObject', ...ownBucket('cemetery-dev-backups-1/cemetery-backend/dev/backup/x') }, []],
    [{ what: "read the settings of dev's backup bucket (refresh)", action: 's3:GetEncryptionConfiguration', ...ownBucket('cemetery-dev-backups-1') }, ['preview', 'dev']],
    [{ what: "change the state bucket's policy", action: 's3:PutBucketPolicy', resource: '{bucket}' }, []],
    [{ what: 'create a KMS key, even one tagged for its own backups', action: 'kms:CreateKey', resource: '*', context: { 'aws:RequestTag/Environment': 'prod', 'aws:RequestTag/Purpose': 'backups' } }, []],
    [{ what: "tag another workload's untagged key as a backup key", action: 'kms:TagResource', resource: `arn:aws:kms:${REGION}:${ACCOUNT}:key/other`, resourcePolicy: (a: Account) => a.keyPolicy.prod, context: { 'aws:RequestTag/Environment': 'staging', 'aws:RequestTag/Purpose': 'backups' } }, []],
    [{ what: "schedule the deletion of prod's backup key", action: 'kms:ScheduleKeyDeletion', ...backupKey('prod') }, []],
    [{ what: "decrypt with prod's backup key", action: 'kms:Decrypt', ...backupKey('prod') }, []],
    [{ what: "schedule the deletion of prod's secrets key", action: 'kms:ScheduleKeyDeletion', ...key('prod'), context: { 'aws:ResourceTag/Environment': 'prod' } }, []],
    [{ what: "lock staging's backups in compliance mode", action: 's3:PutBucketObjectLockConfiguration', ...ownBucket('cemetery-staging-backups-1') }, []],
    [{ what: "grant another account staging's backups by ACL", action: 's3:PutBucketAcl', ...ownBucket('cemetery-staging-backups-1') }, []],
    [{ what: "replicate prod's backups elsewhere", action: 's3:PutReplicationConfiguration', ...ownBucket('cemetery-prod-backups-1') }, []],
    [{ what: "delete an older version of prod's backups", action: 's3:DeleteObjectVersion', ...ownBucket('cemetery-prod-backups-1/cemetery-backend/prod/archive/x') }, []],
    [{ what: 'write to a cemetery-staging-* bucket of another account', action: 's3:PutObject', resource: 'arn:aws:s3:::cemetery-staging-x/a', context: { 'aws:ResourceAccount': '999999999999' } }, []],
  ];

  async function allowedRoles(account: Account, row: Row): Promise<GithubEnvironment[]> {
    const roles: GithubEnvironment[] = [];
    for (const env of GITHUB_ENVIRONMENTS) {
      if (!account.permissions[env]) continue;
      const keyEnv = /^\{key:(\w+)\}$/.exec(row.resource)?.[1];
      // A key another account holds is that account's: the role's account has no such key.
      if (keyEnv && !account.keyArn[keyEnv]) continue;
      const resource = keyEnv ? account.keyArn[keyEnv] : row.resource.replace('{bucket}', account.bucketArn);
      const decision = await decide({
        identityPolicies: [{ name: 'cemetery-deploy', policy: account.permissions[env]! }],
        resourcePolicy: row.resourcePolicy?.(account),
        request: { principal: `arn:aws:iam::${ACCOUNT}:role/cemetery-github-${env}`, action: row.action, resource: { accountId: ACCOUNT, resource }, contextVariables: row.context ?? {} },
      });
      if (decision === 'Allowed') roles.push(env);
    }
    return roles;
  }

  test('in one account: each role reaches only its own environment, and in IAM only host roles that carry its boundary (table printed)', async () => {
    const printed = ['| request | preview | dev | staging | production |', '|---|---|---|---|---|'];
    for (const [row, expected] of TABLE) {
      const roles = await allowedRoles(single, row);
      printed.push(`| ${row.what} (${row.action}) | ${GITHUB_ENVIRONMENTS.map((e) => (roles.includes(e) ? 'yes' : '–')).join(' | ')} |`);
      expect({ request: row.what, roles }).toEqual({ request: row.what, roles: expected });
    }
    console.log(printed.join('\n'));
  });

  test("a role with DNS names changes those records and their certificates' ACM validation records, no other name", async () => {
    const policy = permissionPolicy({ environment: 'production', accountId: ACCOUNT, state: { arn: 'arn:aws:s3:::state', project: 'cemetery-backend' }, keyArn: 'arn:aws:kms:eu-central-1:1:key/k', dnsNames: ['cemetery.example.org'] });
    const change = async (...names: string[]) =>
      decide({
        identityPolicies: [{ name: 'cemetery-deploy', policy }],
        request: {
          principal: `arn:aws:iam::${ACCOUNT}:role/cemetery-github-production`,
          action: 'route53:ChangeResourceRecordSets',
          resource: { accountId: ACCOUNT, resource: 'arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ' },
          contextVariables: { 'route53:ChangeResourceRecordSetsNormalizedRecordNames': names },
        },
      });
    expect(await change('cemetery.example.org')).toBe('Allowed');
    expect(await change('cemetery.example.org', '_a79865eb4cd1a6ab990a45779b4e0b96.cemetery.example.org')).toBe('Allowed');
    expect(await change('www.cemetery.example.org')).toBe('ImplicitlyDenied');
    expect(await change('cemetery.example.org', 'example.org')).toBe('ImplicitlyDenied');
    expect(await change('_x.example.org')).toBe('ImplicitlyDenied');
  });

  test("a host role's boundary: whatever policy a deploy writes on it, from an EC2 instance only, pgBackRest's objects under its environment's stacks in its account's buckets, and its environment's backup key through S3; nothing else", async () => {
    const boundaries = Object.fromEntries(single.resources.filter((r) => r.type === 'aws:iam/policy:Policy').map((r) => [r.inputs.name, JSON.parse(r.inputs.policy)]));
    expect(Object.keys(boundaries)).toEqual(['cemetery-dev-host-boundary', 'cemetery-staging-host-boundary', 'cemetery-prod-host-boundary']);
    // The key the boundary lets a host use is the bootstrap's, one per environment, rotated, never a deploy's.
    const backupKeys = single.resources.filter((r) => r.type === 'aws:kms/key:Key' && r.name.startsWith('backups-'));
    expect(backupKeys.map((k) => [k.inputs.tags.Environment, k.inputs.tags.Purpose, k.inputs.enableKeyRotation])).toEqual([['dev', 'backups', true], ['staging', 'backups', true], ['prod', 'backups', true]]);
    expect(single.resources.filter((r) => r.type === 'aws:kms/alias:Alias' && r.name.startsWith('backups-')).map((a) => a.inputs.name)).toEqual(['alias/cemetery-dev-backups', 'alias/cemetery-staging-backups', 'alias/cemetery-prod-backups']);
    // The widest policy a deploy could write on the role.
    const everything: PolicyDocument = { Version: '2012-10-17', Statement: [{ Sid: 'All', Effect: 'Allow', Action: '*', Resource: '*' }] };
    const asHost = async (env: string, action: string, resource: string, context: Record<string, string> = {}) =>
      decide({
        identityPolicies: [{ name: 'written-by-a-deploy', policy: everything }],
        permissionBoundaryPolicies: [{ name: `cemetery-${env}-host-boundary`, policy: boundaries[`cemetery-${env}-host-boundary`] }],
        // A key created without a policy gets KMS's default one, which leaves access to IAM (as keyPolicy does).
        resourcePolicy: action.startsWith('kms:') ? single.keyPolicy.prod : undefined,
        request: { principal: `arn:aws:iam::${ACCOUNT}:role/cemetery-${env}-host-role-3f2a1b9`, action, resource: { accountId: ACCOUNT, resource }, contextVariables: context },
      });
    const viaS3 = { 'kms:ViaService': `s3.${REGION}.amazonaws.com` };
    // As the host sends it: with its instance's credentials, to a bucket of this account.
    const fromHost = { 'ec2:SourceInstanceARN': `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0host`, 'aws:ResourceAccount': ACCOUNT };
    const cases: Array<[string, string, string, string, Record<string, string>, Decision]> = [
      ['prod', 's3:PutObject', 'arn:aws:s3:::cemetery-prod-backups-1/cemetery-backend/prod/archive/cemetery/x', "push WAL to prod's repository", fromHost, 'Allowed'],
      ['prod', 's3:ListBucket', 'arn:aws:s3:::cemetery-prod-backups-1', "list prod's bucket", fromHost, 'Allowed'],
      ['staging', 's3:GetObject', 'arn:aws:s3:::cemetery-staging-backups-1/cemetery-backend/staging-pr-7/backup/x', "read a staging stack's backup", fromHost, 'Allowed'],
      ['staging', 's3:GetObject', 'arn:aws:s3:::cemetery-staging-backups-1/cemetery-backend/staging-pr-7/backup/x', 'the same with the role assumed outside EC2 (whoever its trust policy names)', { 'aws:ResourceAccount': ACCOUNT }, 'ImplicitlyDenied'],
      ['staging', 's3:PutObject', 'arn:aws:s3:::cemetery-staging-x/cemetery-backend/staging-pr-7/backup/x', 'write to a cemetery-staging-* bucket of another account', { ...fromHost, 'aws:ResourceAccount': '999999999999' }, 'ImplicitlyDenied'],
      ['staging', 's3:GetObject', 'arn:aws:s3:::cemetery-prod-backups-1/cemetery-backend/prod/backup/x', "read prod's backups", fromHost, 'ImplicitlyDenied'],
      ['staging', 's3:GetObject', 'arn:aws:s3:::cemetery-staging-backups-1/cemetery-backend/prod/backup/x', 'read a prod repository kept in a staging bucket', fromHost, 'ImplicitlyDenied'],
      ['prod', 's3:PutBucketPolicy', 'arn:aws:s3:::cemetery-prod-backups-1', "open prod's bucket", fromHost, 'ImplicitlyDenied'],
      ['prod', 's3:GetObject', `arn:aws:s3:::cemetery-pulumi-state-${ACCOUNT}-${REGION}/.pulumi/stacks/cemetery-backend/prod.json`, "read prod's state", fromHost, 'ImplicitlyDenied'],
      ['prod', 'kms:GenerateDataKey', `arn:aws:kms:${REGION}:${ACCOUNT}:key/backups-prod`, "encrypt with prod's backup key through S3", { ...viaS3, 'aws:ResourceTag/Environment': 'prod', 'aws:ResourceTag/Purpose': 'backups' }, 'Allowed'],
      ['prod', 'kms:Decrypt', `arn:aws:kms:${REGION}:${ACCOUNT}:key/backups-prod`, "decrypt with prod's backup key directly", { 'aws:ResourceTag/Environment': 'prod', 'aws:ResourceTag/Purpose': 'backups' }, 'ImplicitlyDenied'],
      ['prod', 'kms:Decrypt', `arn:aws:kms:${REGION}:${ACCOUNT}:key/secrets-prod`, "decrypt prod's secrets through S3", { ...viaS3, 'aws:ResourceTag/Environment': 'prod' }, 'ImplicitlyDenied'],
      ['prod', 'iam:CreateRole', `arn:aws:iam::${ACCOUNT}:role/backdoor`, 'create a role', {}, 'ImplicitlyDenied'],
      ['prod', 'ec2:DescribeInstanceAttribute', `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0prod`, "read prod's user data", {}, 'ImplicitlyDenied'],
    ];
    for (const [env, action, resource, what, context, expected] of cases) {
      expect({ what, decision: await asHost(env, action, resource, context) }).toEqual({ what, decision: expected });
    }
  });

  test('the preview role writes nothing at all (a preview takes no lock)', () => {
    const writes = single.permissions.preview!.Statement.filter((s) => s.Effect === 'Allow').flatMap((s) => [s.Action].flat()).filter((a) => /^s3:(Put|Delete)|^ec2:\*|^rds:\*|^elasticloadbalancing:\*|^acm:(Request|Delete|Add|Remove)|^cloudwatch:(Put|Delete|Tag|Untag)|^sns:(Create|Delete|Set|Subscribe|Unsubscribe|Tag|Untag)|^kms:(Encrypt|GenerateDataKey)/.test(a));
    expect(writes).toEqual([]);
  });

  test('with prod in its own account, the non-prod roles are not even in it; the prod account has one role', async () => {
    expect(Object.keys(prod.permissions)).toEqual(['production']);
    expect(Object.keys(nonprod.permissions)).toEqual(['preview', 'dev', 'staging']);
    // The same requests against the non-prod account's roles: nothing of prod's, since prod's
    // resources live elsewhere, and the tag rules still hold inside the account.
    for (const [row] of TABLE.filter(([, roles]) => roles.length === 1 && roles[0] === 'production')) {
      expect({ request: row.what, roles: await allowedRoles(nonprod, row) }).toEqual({ request: row.what, roles: [] });
    }
  });
});
