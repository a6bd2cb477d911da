/**
 * What one AWS account needs before any cemetery-backend stack: the state
 * bucket (versioned, encrypted, public access blocked, TLS and this account
 * only), one KMS key per app environment for Pulumi secrets, GitHub's OIDC
 * provider, and one role per GitHub environment with the policies of
 * access.ts. Prod belongs in an account of its own: bootstrap each account
 * with the environments it serves.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as z from 'zod';
import { PROJECT } from '../config';
import {
  APP_ENVIRONMENTS,
  ENVIRONMENT_ACCESS,
  GITHUB_ENVIRONMENTS,
  GITHUB_OIDC_HOST,
  backupKeyAlias,
  BACKUPS_PURPOSE,
  hostBoundaryName,
  hostBoundaryPolicy,
  keyPolicy,
  permissionPolicy,
  stateBucketPolicy,
  trustPolicy,
  type AppEnvironment,
  type GithubEnvironment,
} from './access';

export const BOOTSTRAP_PROJECT = 'cemetery-bootstrap';

const configSchema = z
  .object({
    githubRepository: z
      .string({ error: 'required: the repository whose workflows assume the roles, e.g. pulumi config set githubRepository acme/cemetery-backend' })
      .regex(/^[A-Za-z0-9-]+\/[A-Za-z0-9._-]+$/, 'expected owner/name, e.g. acme/cemetery-backend'),
    environments: z
      .array(z.enum(GITHUB_ENVIRONMENTS, { error: `expected GitHub environments among ${GITHUB_ENVIRONMENTS.join(', ')}` }))
      .min(1, 'expected at least one GitHub environment')
      .default([...GITHUB_ENVIRONMENTS]),
    dnsNames: z.partialRecord(z.enum(GITHUB_ENVIRONMENTS), z.array(z.string().regex(/^[a-z0-9.-]+$/, 'expected DNS names in lower case'))).default({}),
    region: z.string({ error: 'required: pulumi config set aws:region eu-central-1' }),
  })
  .superRefine((c, ctx) => {
    // A preview reads dev's state with dev's key: they live in the same account.
    if (c.environments.includes('preview') && !c.environments.includes('dev')) {
      ctx.addIssue({ code: 'custom', path: ['environments'], message: "preview reads dev's state and key: bootstrap dev in the same account" });
    }
    for (const env of Object.keys(c.dnsNames)) {
      if (!c.environments.includes(env as GithubEnvironment)) ctx.addIssue({ code: 'custom', path: ['dnsNames'], message: `${env} is not among environments` });
    }
  });
export type BootstrapConfig = z.output<typeof configSchema>;

/** Raw config (key -> string, as Pulumi keeps it), checked; every problem names its key. */
export function parseBootstrapConfig(raw: Record<string, string | undefined>, region: string | undefined): BootstrapConfig {
  const json = (key: string) => {
    const value = raw[key];
    if (value === undefined) return undefined;
    try {
      return JSON.parse(value);
    } catch {
      throw new Error(`${BOOTSTRAP_PROJECT}:${key}: expected JSON, got ${value}`);
    }
  };
  const parsed = configSchema.safeParse({ githubRepository: raw.githubRepository, environments: json('environments'), dnsNames: json('dnsNames'), region });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path[0] === 'region' ? 'aws:region' : `${BOOTSTRAP_PROJECT}:${String(i.path[0])}`}: ${i.message}`);
    throw new Error(`Invalid bootstrap configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

export function loadBootstrapConfig(): BootstrapConfig {
  const config = new pulumi.Config(BOOTSTRAP_PROJECT);
  const keys = ['githubRepository', 'environments', 'dnsNames'];
  try {
    return parseBootstrapConfig(Object.fromEntries(keys.map((k) => [k, config.get(k)])), new pulumi.Config('aws').get('region'));
  } catch (err) {
    throw new pulumi.RunError((err as Error).message);
  }
}

export function createBootstrap(cfg: BootstrapConfig) {
  const tags = { Project: PROJECT, ManagedBy: 'pulumi', Stack: pulumi.getStack() };
  const accountId = aws.getCallerIdentityOutput().accountId;

  // The state: everything Pulumi knows about every stack, secrets encrypted by the stacks' own keys.
  const bucket = new aws.s3.Bucket('state', { bucket: pulumi.interpolate`cemetery-pulumi-state-${accountId}-${cfg.region}`, tags }, { protect: true });
  new aws.s3.BucketVersioning('state', { bucket: bucket.id, versioningConfiguration: { status: 'Enabled' } });
  new aws.s3.BucketServerSideEncryptionConfiguration('state', { bucket: bucket.id, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' } }] });
  new aws.s3.BucketPublicAccessBlock('state', { bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true });
  new aws.s3.BucketOwnershipControls('state', { bucket: bucket.id, rule: { objectOwnership: 'BucketOwnerEnforced' } });
  new aws.s3.BucketPolicy('state', { bucket: bucket.id, policy: pulumi.all([bucket.arn, accountId]).apply(([arn, account]) => JSON.stringify(stateBucketPolicy(arn, account))) });

  const appEnvironments = APP_ENVIRONMENTS.filter((env) => cfg.environments.some((g) => ENVIRONMENT_ACCESS[g].environment === env));
  const keys = {} as Record<AppEnvironment, aws.kms.Key>;
  for (const env of appEnvironments) {
    keys[env] = new aws.kms.Key(
      `secrets-${env}`,
      {
        description: `Pulumi secrets of cemetery-backend's ${env} stacks`,
        enableKeyRotation: true,
        deletionWindowInDays: 30,
        policy: accountId.apply((account) => JSON.stringify(keyPolicy(account))),
        tags: { ...tags, Environment: env },
      },
      { protect: true },
    );
    new aws.kms.Alias(`secrets-${env}`, { name: `alias/cemetery-${env}`, targetKeyId: keys[env].keyId });
  }

  // On-host backups on target aws (infra/backup-bucket.ts): each environment's key for its backup buckets, which no
  // deploy changes, and the most the host roles that deploys create may do (they must carry it).
  for (const env of appEnvironments) {
    const backupKey = new aws.kms.Key(
      `backups-${env}`,
      {
        description: `Backups of cemetery-backend's ${env} registers (on-host PostgreSQL)`,
        enableKeyRotation: true,
        deletionWindowInDays: 30,
        policy: accountId.apply((account) => JSON.stringify(keyPolicy(account))),
        tags: { ...tags, Environment: env, Purpose: BACKUPS_PURPOSE },
      },
      { protect: true },
    );
    new aws.kms.Alias(`backups-${env}`, { name: backupKeyAlias(env), targetKeyId: backupKey.keyId });
    new aws.iam.Policy(`host-boundary-${env}`, {
      name: hostBoundaryName(env),
      description: `Permissions boundary of cemetery-backend's ${env} host roles`,
      policy: accountId.apply((account) => JSON.stringify(hostBoundaryPolicy(env, cfg.region, account))),
      tags,
    });
  }

  const github = new aws.iam.OpenIdConnectProvider('github', { url: `https://${GITHUB_OIDC_HOST}`, clientIdLists: ['sts.amazonaws.com'], tags });

  const roleArns: Partial<Record<GithubEnvironment, pulumi.Output<string>>> = {};
  for (const env of cfg.environments) {
    const role = new aws.iam.Role(`github-${env}`, {
      name: `cemetery-github-${env}`,
      description: `GitHub Actions jobs of ${cfg.githubRepository} in its ${env} environment`,
      assumeRolePolicy: github.arn.apply((arn) => JSON.stringify(trustPolicy(arn, cfg.githubRepository, env))),
      maxSessionDuration: 3600,
      tags,
    });
    new aws.iam.RolePolicy(`github-${env}`, {
      role: role.name,
      name: 'cemetery-deploy',
      policy: pulumi
        .all([bucket.arn, keys[ENVIRONMENT_ACCESS[env].environment].arn, accountId])
        .apply(([arn, keyArn, account]) => JSON.stringify(permissionPolicy({ environment: env, accountId: account, state: { arn, project: PROJECT }, keyArn, dnsNames: cfg.dnsNames[env] ?? [] }))),
    });
    roleArns[env] = role.arn;
  }

  return {
    stateBackend: pulumi.interpolate`s3://${bucket.bucket}?region=${cfg.region}`,
    secretsProviders: Object.fromEntries(appEnvironments.map((env) => [env, `awskms://alias/cemetery-${env}?region=${cfg.region}`])),
    roleArns,
  };
}
