/**
 * On-host PostgreSQL's backups (backupBucket: scripts/host/backups.sh), under Pulumi's mocks: the step the
 * program registers, where it stands, what reaches its command line and what only its stdin, and the
 * configuration it refuses. The VM tier (test/e2e) runs the step against a local S3 server.
 */
import { parseProjectConfig } from '../infra/config';
import { BACKUPS_CONFIG, changed, MOCK_PASSWORD, prodOnHostConfig, runProgram, S3_TEST_SECRET, SECRET_SIG, SECRET_SIG_VALUE, stackFiles, withUserSecrets, type RecordedResource } from './support/pulumi-mocks';

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

  test('S3 settings without a bucket, a bucket for RDS, and a bucket on target aws (not built yet) are refused', async () => {
    const { 'cemetery-backend:backupBucket': _bucket, ...noBucket } = local();
    await expect(runProgram('local', noBucket)).rejects.toThrow(/cemetery-backend:backupS3Region = "eu-central-1": describes where backupBucket is: set backupBucket too, or remove it/);
    await expect(runProgram('dev', { ...withUserSecrets(stackFiles().dev), 'cemetery-backend:backupBucket': 'cemetery-backups' })).rejects.toThrow(
      /cemetery-backend:backupBucket = "cemetery-backups": RDS keeps its own automated backups/,
    );
    await expect(runProgram('staging', { ...withUserSecrets(stackFiles().staging), ...BACKUPS_CONFIG })).rejects.toThrow(/cemetery-backend:backupBucket = "cemetery-backups": not yet for target aws/);
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

  test('on target aws, which has no on-host backups yet, databaseMode onHost is refused', async () => {
    await expect(runProgram('prod', { ...withUserSecrets(stackFiles().prod), 'cemetery-backend:databaseMode': 'onHost', 'cemetery-backend:hosts': '1' })).rejects.toThrow(
      /cemetery-backend:databaseMode = "onHost": prod keeps its register in RDS, or on the host with backupBucket and a data volume, which target aws does not offer yet/,
    );
  });
});
