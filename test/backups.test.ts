/**
 * On-host PostgreSQL's backups (backupBucket: scripts/host/backups.sh), under Pulumi's mocks: the step the
 * program registers, where it stands, what reaches its command line and what only its stdin, and the
 * configuration it refuses. The VM tier (test/e2e) runs the step against a local S3 server.
 */
import { parseProjectConfig } from '../infra/config';
import { stackRules } from '../policy/rules';
import { BACKUPS_CONFIG, changed, MOCK_ACCOUNT_ID, MOCK_PASSWORD, prodOnHostConfig, runProgram, S3_TEST_SECRET, SECRET_SIG, SECRET_SIG_VALUE, stackFiles, withUserSecrets, type RecordedResource } from './support/pulumi-mocks';

const local = (extra: Record<string, string> = {}): Record<string, string> => ({ ...withUserSecrets(stackFiles().local), ...BACKUPS_CONFIG, ...extra });
const commands = (resources: RecordedResource[]) => resources.filter((r) => r.type === 'command:remote:Command');
const step = (resources: RecordedResource[], name: string) => commands(resources).find((c) => c.name === `cemetery-dev-${name}`);

describe('the backups step', () => {
  let run: Awaited<ReturnType<typeof runProgram>>;
  beforeAll(async () => {
    run = await runProgram('local', local());
  });

  test('comes after the postgres step, and the proxy (so the release, which migrates) after it', () => {
    expect(run.dependencies['cemetery-dev-backups']).toContain('cemetery-dev-postgres');
    expect(run.dependencies['cemetery-dev-proxy']).toContain('cemetery-dev-backups');
    expect(run.dependencies['cemetery-dev-release']).toContain('cemetery-dev-proxy');
  });

  test('its command line names the bucket, the region, the repository path and the retention; no credential', () => {
    const create = step(run.resources, 'backups')!.inputs.create as string;
    expect(create).toMatch(/^sudo bash \/home\/admin\/\.cemetery-provision\/host\/backups\.sh /);
    for (const arg of ['S3_BUCKET=cemetery-backups', 'S3_ENDPOINT=s3.eu-central-1.amazonaws.com', 'S3_PORT=443', 'S3_REGION=eu-central-1', 'S3_URI_STYLE=host', 'REPO_PATH=/cemetery-backend/local', 'RETENTION_DAYS=1', 'ARCHIVE_TIMEOUT=30']) {
      expect(create.split(' ')).toContain(arg);
    }
    expect(create).not.toContain('RESTORE_FROM');
    for (const secret of [S3_TEST_SECRET, BACKUPS_CONFIG['cemetery-backend:backupS3AccessKeyId'], MOCK_PASSWORD]) expect(create).not.toContain(secret);
  });

  test('the password and the key pair reach it on stdin, a secret; its output is shown (it prints none of them: the VM tier checks)', () => {
    const backups = step(run.resources, 'backups')!;
    expect(backups.inputs.stdin[SECRET_SIG]).toBe(SECRET_SIG_VALUE);
    expect(backups.inputs.stdin.value).toBe(`${MOCK_PASSWORD}\nAKIAEXAMPLE0123456\n${S3_TEST_SECRET}\n`);
    expect(backups.inputs.logging).toBe('stdoutAndStderr');
  });

  test('an S3-compatible endpoint is addressed by path, on its own port; restoreFrom reaches the step', async () => {
    const other = await runProgram('local', local({ 'cemetery-backend:backupS3Endpoint': 's3.example.org:9000', 'cemetery-backend:restoreFrom': '2026-11-29T03:00:00Z' }));
    const create = (step(other.resources, 'backups')!.inputs.create as string).split(' ');
    expect(create).toEqual(expect.arrayContaining(['S3_ENDPOINT=s3.example.org', 'S3_PORT=9000', 'S3_URI_STYLE=path', 'RESTORE_FROM=2026-11-29T03:00:00Z']));
  });

  test('without backupBucket there is no backups step, and the proxy follows the postgres step', async () => {
    const plain = await runProgram('local', withUserSecrets(stackFiles().local));
    expect(step(plain.resources, 'backups')).toBeUndefined();
    expect(plain.dependencies['cemetery-dev-proxy']).toContain('cemetery-dev-postgres');
  });
});

describe('backup configuration that cannot work is refused, naming the key', () => {
  test.each([
    ['a bucket without its region', { 'cemetery-backend:backupS3Region': '' }, /cemetery-backend:backupS3Region = "": expected a region name/],
    ['a bucket without an access key', { 'cemetery-backend:backupS3AccessKeyId': undefined }, /cemetery-backend:backupS3AccessKeyId = undefined: required with backupBucket on target ssh/],
    ['a bucket without its secret key (up)', { 'cemetery-backend:backupS3SecretAccessKey': undefined }, /cemetery-backend:backupS3SecretAccessKey = \[secret\]: required with backupBucket for pulumi up: pulumi config set --secret backupS3SecretAccessKey/],
    ['an endpoint with a scheme', { 'cemetery-backend:backupS3Endpoint': 'https://s3.example.org' }, /cemetery-backend:backupS3Endpoint = "https:\/\/s3.example.org": expected the S3 endpoint as host or host:port, no scheme/],
    ['a bucket name S3 refuses', { 'cemetery-backend:backupBucket': 'Cemetery_Backups' }, /cemetery-backend:backupBucket = "Cemetery_Backups": expected an S3 bucket name/],
    ['a bucket name with dots on AWS', { 'cemetery-backend:backupBucket': 'cemetery.backups' }, /cemetery-backend:backupBucket = "cemetery.backups": a bucket name with dots does not match AWS's certificate/],
    ['no retention', { 'cemetery-backend:backupRetentionDays': '0' }, /cemetery-backend:backupRetentionDays = "0": on-host backups keep their full backups this many days: expected 1 or more/],
    ['an RDS instance to restore from', { 'cemetery-backend:restoreFrom': 'latest', 'cemetery-backend:restoreSourceDatabase': 'cemetery-prod-pg-1a2b3c4' }, /cemetery-backend:restoreSourceDatabase = "cemetery-prod-pg-1a2b3c4": on-host PostgreSQL restores from its own backupBucket/],
  ])('%s', async (_what, change, message) => {
    await expect(runProgram('local', changed(local(), change))).rejects.toThrow(message);
  });

  test('the secret key is never quoted in an error', () => {
    expect(() => parseProjectConfig({ ...local(), 'cemetery-backend:backupS3SecretAccessKey': 'has a space in it' }, 'local')).toThrow(
      /cemetery-backend:backupS3SecretAccessKey = \[secret\]: expected a secret access key/,
    );
    try {
      parseProjectConfig({ ...local(), 'cemetery-backend:backupS3SecretAccessKey': 'has a space in it' }, 'local');
    } catch (err) {
      expect((err as Error).message).not.toContain('has a space in it');
    }
  });

  test('S3 settings without a bucket, a bucket for RDS, and where the bucket is or what signs for it on target aws (the stack makes the bucket; the instance profile signs) are refused', async () => {
    const { 'cemetery-backend:backupBucket': _bucket, ...noBucket } = local();
    await expect(runProgram('local', noBucket)).rejects.toThrow(/cemetery-backend:backupS3Region = "eu-central-1": describes where backupBucket is: set backupBucket too, or remove it/);
    await expect(runProgram('dev', { ...withUserSecrets(stackFiles().dev), 'cemetery-backend:backupBucket': 'cemetery-backups' })).rejects.toThrow(
      /cemetery-backend:backupBucket = "cemetery-backups": RDS keeps its own automated backups/,
    );
    for (const key of ['backupS3Region', 'backupS3AccessKeyId', 'backupS3SecretAccessKey']) {
      await expect(runProgram('staging', { ...withUserSecrets(stackFiles().staging), ...BACKUPS_CONFIG })).rejects.toThrow(
        new RegExp(`cemetery-backend:${key} = [^:]+: target aws creates backupBucket in the stack's region, and its host reaches it with its instance profile's credentials: remove it`),
      );
    }
    await expect(runProgram('staging', { ...withUserSecrets(stackFiles().staging), 'cemetery-backend:backupBucket': 'cemetery.backups' })).rejects.toThrow(/cemetery-backend:backupBucket = "cemetery.backups": a bucket name with dots/);
    await expect(runProgram('staging', { ...withUserSecrets(stackFiles().staging), 'cemetery-backend:backupBucket': 'cemetery-prod-backups' })).rejects.toThrow(
      /cemetery-backend:backupBucket = "cemetery-prod-backups": the deploy roles \(infra\/bootstrap\) create and change only the buckets of their environment, named cemetery-staging-\*: expected e.g. cemetery-staging-backups-<account id>/,
    );
  });

  test('with a bucket, backupRetentionDays and restoreFrom are accepted on on-host PostgreSQL', async () => {
    await expect(runProgram('local', local({ 'cemetery-backend:backupRetentionDays': '14', 'cemetery-backend:restoreFrom': 'latest' }))).resolves.toBeDefined();
  });
});

describe("prod's register on its own host: backups and a data volume, or RDS", () => {
  test('accepted with backupBucket and dataVolumeDevice: the volume, PostgreSQL and backups steps run', async () => {
    const run = await runProgram('prod', prodOnHostConfig());
    expect(commands(run.resources).map((c) => c.name)).toEqual(expect.arrayContaining(['cemetery-prod-data-volume', 'cemetery-prod-postgres', 'cemetery-prod-backups']));
  });

  test.each([
    ['without backupBucket', { 'cemetery-backend:backupBucket': undefined, 'cemetery-backend:backupS3Region': undefined, 'cemetery-backend:backupS3AccessKeyId': undefined, 'cemetery-backend:backupS3SecretAccessKey': undefined }, /cemetery-backend:backupBucket = undefined: prod keeps its register in RDS, or on the host with continuous backups; on-host PostgreSQL without backupBucket has no backups[^\n]*: expected the bucket's name/],
    ['on the root disk', { 'cemetery-backend:dataVolumeDevice': undefined }, /cemetery-backend:dataVolumeDevice = undefined: prod keeps an on-host register on a disk of its own, which outlives the host's: expected that disk's \/dev\/disk\/by-id\/... name/],
    ['keeping 3 days', { 'cemetery-backend:backupRetentionDays': '3' }, /cemetery-backend:backupRetentionDays = "3": prod keeps at least 7 days of backups/],
  ])('refused %s, naming the key', async (_what, change, message) => {
    await expect(runProgram('prod', prodOnHostConfig(change))).rejects.toThrow(message);
  });

  test('on target aws: refused without backupBucket; with it, the volume, PostgreSQL and backups steps run, and the bucket is protected', async () => {
    const prodAws = { ...withUserSecrets(stackFiles().prod), 'cemetery-backend:databaseMode': 'onHost', 'cemetery-backend:hosts': '1' };
    await expect(runProgram('prod', prodAws)).rejects.toThrow(/cemetery-backend:backupBucket = undefined: prod keeps its register in RDS, or on the host with continuous backups/);
    const run = await runProgram('prod', { ...prodAws, 'cemetery-backend:backupBucket': 'cemetery-prod-backups-123456789012' });
    expect(commands(run.resources).map((c) => c.name)).toEqual(expect.arrayContaining(['cemetery-prod-data-volume', 'cemetery-prod-postgres', 'cemetery-prod-backups']));
    expect(run.protectedResources).toEqual(expect.arrayContaining(['cemetery-prod-backups']));
    expect(run.resources.find((r) => r.type === 'aws:s3/bucket:Bucket')!.inputs.forceDestroy).toBe(false);
  });
});

describe('target aws: the stack\'s own bucket, reached through the host\'s instance profile', () => {
  const BUCKET = 'cemetery-staging-backups-123456789012';
  let run: Awaited<ReturnType<typeof runProgram>>;
  const of = (type: string) => run.resources.filter((r) => r.type === `aws:${type}`);
  const one = (type: string) => {
    const found = of(type);
    expect(found).toHaveLength(1);
    return found[0].inputs;
  };
  beforeAll(async () => {
    run = await runProgram('staging', { ...withUserSecrets(stackFiles().staging), 'cemetery-backend:backupBucket': BUCKET, 'cemetery-backend:backupRetentionDays': '10' });
  });

  test('the bucket: named as configured, closed to the public and to plain HTTP, versioned, encrypted with its environment\'s backup key (the bootstrap\'s); older versions kept backupRetentionDays', () => {
    const bucket = one('s3/bucket:Bucket');
    expect(bucket).toMatchObject({ bucket: BUCKET, forceDestroy: true, tags: expect.objectContaining({ Environment: 'staging' }) });
    // The environment's backup key is the bootstrap's: the stack makes none.
    expect(of('kms/key:Key')).toEqual([]);
    expect(one('s3/bucketPublicAccessBlock:BucketPublicAccessBlock')).toMatchObject({ bucket: BUCKET, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true });
    expect(one('s3/bucketVersioning:BucketVersioning')).toMatchObject({ bucket: BUCKET, versioningConfiguration: { status: 'Enabled' } });
    expect(one('s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration')).toMatchObject({
      bucket: BUCKET,
      rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'aws:kms', kmsMasterKeyId: `arn:aws:kms:eu-central-1:${MOCK_ACCOUNT_ID}:key/staging-backups-key-id` }, bucketKeyEnabled: true }],
    });
    expect(one('s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration').rules).toEqual([
      expect.objectContaining({ status: 'Enabled', noncurrentVersionExpiration: { noncurrentDays: 10 }, abortIncompleteMultipartUpload: { daysAfterInitiation: 7 } }),
    ]);
    const tlsOnly = JSON.parse(one('s3/bucketPolicy:BucketPolicy').policy);
    expect(tlsOnly.Statement).toEqual([expect.objectContaining({ Effect: 'Deny', Principal: { AWS: '*' }, Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]);
  });

  test('the host\'s role: assumed by EC2 alone; it lists, reads and writes under the stack\'s prefix and nowhere else, and uses the bucket\'s key; the instance carries it', () => {
    const role = one('iam/role:Role');
    expect(JSON.parse(role.assumeRolePolicy).Statement).toEqual([{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }]);
    // The environment's boundary, without which the deploy role may not create it (test/bootstrap.test.ts).
    expect(role.permissionsBoundary).toBe(`arn:aws:iam::${MOCK_ACCOUNT_ID}:policy/cemetery-staging-host-boundary`);
    const statements = JSON.parse(one('iam/rolePolicy:RolePolicy').policy).Statement as Array<{ Action: string | string[]; Resource: string; Condition?: object }>;
    const arn = `arn:aws:s3:::${BUCKET}`;
    expect(statements.map((st) => [st.Action, st.Resource, st.Condition])).toEqual([
      ['s3:ListBucket', arn, { StringEquals: { 's3:prefix': ['', 'cemetery-backend/staging'], 's3:delimiter': ['/'] } }],
      ['s3:ListBucket', arn, { StringLike: { 's3:prefix': ['cemetery-backend/staging/*'] } }],
      [['s3:PutObject', 's3:PutObjectTagging', 's3:GetObject', 's3:GetObjectVersion', 's3:DeleteObject'], `${arn}/cemetery-backend/staging/*`, undefined],
      [['kms:GenerateDataKey', 'kms:Decrypt'], `arn:aws:kms:eu-central-1:${MOCK_ACCOUNT_ID}:key/staging-backups-key-id`, undefined],
    ]);
    expect(one('iam/instanceProfile:InstanceProfile').role).toMatch(/^cemetery-staging-host-role/);
    expect(one('ec2/instance:Instance').iamInstanceProfile).toMatch(/^cemetery-staging-host-profile/);
  });

  test('the backups step: AWS S3 in the stack\'s region, by the bucket\'s host name, the instance profile\'s credentials; stdin holds the password alone', () => {
    const backups = commands(run.resources).find((c) => c.name === 'cemetery-staging-backups')!;
    expect((backups.inputs.create as string).split(' ')).toEqual(
      expect.arrayContaining([`S3_BUCKET=${BUCKET}`, 'S3_ENDPOINT=s3.eu-central-1.amazonaws.com', 'S3_PORT=443', 'S3_REGION=eu-central-1', 'S3_URI_STYLE=host', 'S3_CREDENTIALS=instance-profile', 'REPO_PATH=/cemetery-backend/staging', 'RETENTION_DAYS=10']),
    );
    expect(backups.inputs.stdin.value).toBe(`${MOCK_PASSWORD}\n\n\n`);
  });

  test('the policy pack passes the bucket, and refuses it without any one of its public access block, versioning or KMS encryption', () => {
    const rule = stackRules.find((r) => r.name === 'buckets-private-versioned-encrypted')!;
    const props = run.resources.map((r) => ({ type: r.type, name: r.name, props: r.inputs }));
    expect(rule.check(props, { stack: 'staging' })).toEqual([]);
    const without = (type: string, change?: Record<string, unknown>) =>
      rule.check(props.flatMap((r) => (r.type !== `aws:s3/${type}` ? [r] : change ? [{ ...r, props: { ...r.props, ...change } }] : [])), { stack: 'staging' });
    const bucket = 'cemetery-staging-backups';
    expect(without('bucketPublicAccessBlock:BucketPublicAccessBlock')).toEqual([`${bucket}: public access must be blocked all four ways (an aws.s3.BucketPublicAccessBlock)`]);
    expect(without('bucketPublicAccessBlock:BucketPublicAccessBlock', { restrictPublicBuckets: false })).toEqual([`${bucket}: public access must be blocked all four ways (an aws.s3.BucketPublicAccessBlock)`]);
    expect(without('bucketVersioning:BucketVersioning', { versioningConfiguration: { status: 'Suspended' } })).toEqual([`${bucket}: must keep older versions (an aws.s3.BucketVersioning, status Enabled)`]);
    expect(without('bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration', { rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' } }] })).toEqual([
      `${bucket}: must be encrypted with a KMS key by default (aws.s3.BucketServerSideEncryptionConfiguration, aws:kms)`,
    ]);
    // Settings of another bucket do not count for this one.
    expect(rule.check(props.map((r) => (r.type === 'aws:s3/bucketVersioning:BucketVersioning' ? { ...r, props: { ...r.props, bucket: 'someone-else' } } : r)), { stack: 'staging' })).toEqual([
      `${bucket}: must keep older versions (an aws.s3.BucketVersioning, status Enabled)`,
    ]);
  });

  test('without backupBucket: no bucket, no role, and the instance has no profile', async () => {
    const plain = await runProgram('staging', withUserSecrets(stackFiles().staging));
    expect(plain.resources.filter((r) => /^aws:(s3|kms|iam)\//.test(r.type))).toEqual([]);
    expect(plain.resources.find((r) => r.type === 'aws:ec2/instance:Instance')!.inputs.iamInstanceProfile).toBeUndefined();
  });
});
