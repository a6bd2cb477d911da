/** The Pulumi program under mocks, for every stack file in the repository. */
import { shippedMigrations } from '../app/src/release';
import { snapshotSlug } from '../infra/database';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { performance } from 'node:perf_hooks';
import * as pulumi from '@pulumi/pulumi';
import { parseProjectConfig, PROJECT } from '../infra/config';
import { APP_DIST_DIR, HOST_LAYOUT, hostSteps, listFiles, provisioningLayout, releaseId } from '../infra/host-steps';
import { DEREGISTRATION_DELAY_SECONDS, HEALTH_CHECK, TLS_POLICY } from '../infra/balancer';
import { metadataGuardCommand } from '../infra/metadata-guard';
import { appliesTo, securityRules, stackRules } from '../policy/rules';
import { missingUploads } from './standin/uploads';
import {
  MOCK_HOST_KEY,
  MOCK_PASSWORD,
  MOCK_PUBLIC_IP,
  MOCK_SHARED_SUBNETS,
  MOCK_SHARED_VPC,
  EXTERNAL_DB_PASSWORD,
  EXTERNAL_DB_URL,
  prodOnHostConfig,
  sshFleetConfig,
  TEST_FLEET_HOST_KEYS,
  runProgram,
  SECRET_SIG,
  SECRET_SIG_VALUE,
  stackFiles,
  TEST_SSH_HOST_KEY,
  TEST_SSH_PRIVATE_KEY,
  TEST_SSH_PUBLIC_KEY,
  withUserSecrets,
  type RecordedResource,
} from './support/pulumi-mocks';
import { ed25519KeyPair } from './support/ssh-keypair';

const STACKS = stackFiles();
const runs: Record<string, Awaited<ReturnType<typeof runProgram>>> = {};
/** How many hosts a stack file's stack runs (staging-shared: none). */
const hostsOf = (stack: string) => (stack === 'staging-shared' ? 0 : parseProjectConfig(withUserSecrets(STACKS[stack]), stack).hosts);
/** Prod as one host in front of itself (hosts 1): Caddy holds the certificate, from Let's Encrypt. */
const PROD_ONE_HOST = { 'cemetery-backend:hosts': '1', 'cemetery-backend:acmeEmail': 'ops@example.org' };
const variants = new Map<string, ReturnType<typeof runProgram>>();
/** A stack file's program with some keys changed, run once per distinct config (the tests only read a run). */
const runWith = (stack: string, overrides: Record<string, string>) => {
  const config = { ...withUserSecrets(STACKS[stack]), ...overrides };
  const key = `${stack} ${JSON.stringify(config)}`;
  if (!variants.has(key)) variants.set(key, runProgram(stack, config));
  return variants.get(key)!;
};

beforeAll(async () => {
  for (const [stack, config] of Object.entries(STACKS)) {
    const started = performance.now();
    runs[stack] = await runProgram(stack, withUserSecrets(config));
    console.log(`${stack}: program under mocks in ${Math.round(performance.now() - started)} ms, ${runs[stack].resources.length} resources`);
  }
});

const ofType = (resources: RecordedResource[], type: string) => resources.filter((r) => r.type === type);
/** What the policy pack reports: every resource rule on its resources, then every stack rule on them all. */
const violations = (resources: RecordedResource[], stack: string) => [
  ...resources.flatMap((r) =>
    securityRules.filter((rule) => appliesTo(rule, r.type)).flatMap((rule) => rule.check(r.inputs, { stack, type: r.type }).map((m) => `${rule.name}: ${r.name}: ${m}`)),
  ),
  ...stackRules.flatMap((rule) => rule.check(resources.map((r) => ({ type: r.type, name: r.name, props: r.inputs })), { stack }).map((m) => `${rule.name}: ${m}`)),
];

/** The resource graph as a reviewer reads it; generated or per-user values replaced by their names. */
function graph(resources: RecordedResource[]) {
  // Generated, per-user or content-hashed values would churn the snapshot; name them instead.
  const replacements: Array<[RegExp, string]> = [
    [new RegExp(MOCK_PASSWORD, 'g'), '[generated password]'],
    [new RegExp(TEST_SSH_PUBLIC_KEY.replace(/[+/]/g, '\\$&'), 'g'), '[user ssh public key]'],
    [new RegExp(TEST_SSH_HOST_KEY.replace(/[+/]/g, '\\$&'), 'g'), '[ssh host key]'],
    [new RegExp(MOCK_HOST_KEY.public.replace(/[+/]/g, '\\$&'), 'g'), '[generated ssh host key]'],
[/"ed25519_private": "-----BEGIN OPENSSH PRIVATE KEY-----[^"]*-----END OPENSSH PRIVATE KEY-----\\n"/g, '"ed25519_private": "[generated ssh host private key]"'],
    [/-----BEGIN OPENSSH PRIVATE KEY-----[^]*?-----END OPENSSH PRIVATE KEY-----\n?/g, '[user ssh private key]'],
    [/\br-[0-9a-f]{12}\b/g, '[release id]'],
    // The snapshot before migrations is named after the newest one.
    [/-before-\d{13}-[a-z0-9-]+/g, '-before-[newest migration]'],
    [/^[0-9a-f]{12}$/, '[content hash]'],
  ];
  const redact = (value: unknown): unknown =>
    JSON.parse(JSON.stringify(value), (_k, v) => (typeof v === 'string' ? replacements.reduce((acc, [re, by]) => acc.replace(re, by), v) : v));
  return resources
    .map((r) => ({ resource: redact(`${r.type} ${r.name}`) as string, ...(redact(r.inputs) as object) }))
    .sort((a, b) => a.resource.localeCompare(b.resource));
}

test('there is a dev and a prod stack file', () => {
  expect(Object.keys(STACKS)).toEqual(expect.arrayContaining(['dev', 'prod']));
});

describe.each(Object.keys(STACKS))('stack %s', (stack) => {
  test('runs and matches the reviewed resource graph', () => {
    expect(graph(runs[stack].resources)).toMatchSnapshot();
  });

  test('components are namespaced and every AWS resource is tagged with the stack', () => {
    const types = runs[stack].resources.map((r) => r.type);
    const aws = types.some((t) => t.startsWith('aws:'));
    const network = STACKS[stack]['cemetery-backend:network'] ?? (stack.startsWith('staging') ? 'shared' : 'own');
    const components =
      network === 'provideShared'
        ? ['cemetery:infra:Network']
        : [
            'cemetery:infra:Database',
            // One per host; more than one host stand behind a balancer.
            ...Array<string>(hostsOf(stack)).fill('cemetery:infra:Provisioning'),
            ...(hostsOf(stack) > 1 ? ['cemetery:infra:Balancer'] : []),
            ...(aws ? ['cemetery:infra:Host', 'cemetery:infra:Alarms'] : []),
            ...(aws && network === 'own' ? ['cemetery:infra:Network'] : []),
          ];
    expect(types.filter((t) => t.startsWith('cemetery:')).sort()).toEqual(components.sort());
    for (const r of runs[stack].resources.filter((r) => r.type.startsWith('aws:') && 'tags' in r.inputs)) {
      expect(r.inputs.tags).toMatchObject({ Project: 'cemetery-backend', Stack: stack });
    }
  });

  test('passes every security rule', () => {
    expect(violations(runs[stack].resources, stack)).toEqual([]);
  });

  test('the database port is open to the host only, never to a CIDR', () => {
    for (const sg of ofType(runs[stack].resources, 'aws:ec2/securityGroup:SecurityGroup')) {
      for (const rule of sg.inputs.ingress ?? []) {
        if (rule.fromPort <= 5432 && 5432 <= rule.toPort) {
          expect(rule.cidrBlocks ?? []).toEqual([]);
          expect(rule.securityGroups).toHaveLength(1);
        }
      }
    }
  });

  test('outputs: address, URL, SSH command; the database URL is a secret', () => {
    const { outputs } = runs[stack];
    if (stack === 'staging-shared') {
      expect(outputs.vpcId.value).toBe('cemetery-staging-vpc-id');
      expect(outputs.publicIp).toBeUndefined();
      return;
    }
    // The host key the stack pins: generated for aws, the stack's sshHostKey for the local VM.
    const pinned = (key: string) => key.split(' ').slice(0, 2).join(' ');
    const checked = `ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%d/.ssh/cemetery-${stack}.known_hosts`;
    const [ip, ssh, knownHosts] =
      stack === 'local'
        ? ['127.0.0.1', `${checked} -p 2222 admin@127.0.0.1`, `[127.0.0.1]:2222 ${pinned(STACKS.local['cemetery-backend:sshHostKey'] ?? TEST_SSH_HOST_KEY)}`]
        : [MOCK_PUBLIC_IP, `${checked} admin@${MOCK_PUBLIC_IP}`, `${MOCK_PUBLIC_IP} ${pinned(MOCK_HOST_KEY.public)}`];
    expect(outputs.publicIp).toEqual({ value: ip, secret: false });
    expect(outputs.hostAddresses.value).toEqual(Array(hostsOf(stack)).fill(ip));
    const domain = STACKS[stack]['cemetery-backend:domainName'];
    expect(outputs.appUrl.value).toBe(domain ? `https://${domain}` : `http://${ip}`);
    expect(outputs.sshCommand.value).toBe(ssh);
    // Every host's key, a line each (the mocks give every host the same address and key).
    expect(outputs.sshKnownHosts.value).toBe(Array(hostsOf(stack)).fill(knownHosts).join('\n'));
    expect(outputs.releaseId.value).toMatch(/^r-[0-9a-f]{12}$/);
    expect(outputs.databaseUrl.secret).toBe(true);
    expect(outputs.databaseUrl.value).toContain(MOCK_PASSWORD);
  });
});

test('infra/index.ts exports every output the stacks have: what `pulumi stack output` shows', () => {
  const exported = [...readFileSync(path.join(__dirname, '..', 'infra', 'index.ts'), 'utf8').matchAll(/^export const (\w+) = stack\.(\w+);$/gm)];
  for (const [, name, from] of exported) expect(name).toBe(from);
  const outputs = new Set(Object.values(runs).flatMap((r) => Object.keys(r.outputs)));
  expect(exported.map(([, name]) => name).sort()).toEqual([...outputs].sort());
});

describe('provisioning over SSH', () => {
  const commands = (stack: string) => ofType(runs[stack].resources, 'command:remote:Command');
  const secretsOf = (_stack: string) => [MOCK_PASSWORD, 'PRIVATE KEY'];

  test.each(['dev', 'local'])('%s: the steps, in order; npm and Debian\'s packages in two branches after the app user, the release after both; each depends on what it needs', (stack) => {
    // Registered as their dependencies resolve (the SDK awaits dependsOn first): the order across branches is not fixed.
    const steps = commands(stack).map((c) => c.name.replace(/^cemetery-\w+-/, ''));
    expect([...steps].sort()).toEqual([
      'wait-for-host',
      'ssh-authorized-keys',
      'system-limits',
      'app-user',
      'nodejs',
      'pm2',
      'pm2-logrotate',
      ...(stack === 'local' ? ['data-volume', 'postgres'] : []),
      'proxy',
      'release',
    ].sort());
    const deps = runs[stack].dependencies;
    const stepsBefore = (step: string) =>
      deps[`cemetery-dev-${step}`]
        .filter((d) => steps.includes(d.replace(/^cemetery-\w+-/, '')))
        .map((d) => d.replace(/^cemetery-\w+-/, ''))
        .sort();
    expect(deps['cemetery-dev-wait-for-host']).toContain('cemetery-dev-host-scripts');
    expect(Object.fromEntries(steps.map((s) => [s, stepsBefore(s)]))).toEqual({
      'wait-for-host': [],
      'ssh-authorized-keys': ['wait-for-host'],
      'system-limits': ['ssh-authorized-keys'],
      'app-user': ['system-limits'],
      nodejs: ['app-user'],
      pm2: ['nodejs'],
      'pm2-logrotate': ['pm2'],
      ...(stack === 'local' ? { 'data-volume': ['app-user'], postgres: ['data-volume'], proxy: ['postgres'] } : { proxy: ['app-user'] }),
      release: ['pm2-logrotate', 'proxy'],
    });
  });

  test.each(['dev', 'local', 'prod', 'staging'])('%s: no secret in a command line; secret steps read stdin, their output hidden but the release\'s (it shows its phases)', (stack) => {
    for (const cmd of commands(stack)) {
      for (const secret of secretsOf(stack)) expect(cmd.inputs.create).not.toContain(secret);
      expect(cmd.inputs.create).toMatch(/^sudo bash \/home\/admin\/\.cemetery-provision\/host\/[a-z0-9-]+\.sh( [A-Z][A-Z0-9_]*=\S+| '[A-Z][A-Z0-9_]*=[^']*')*$/);
      // The connection holds the private key, so Pulumi keeps the whole of it secret.
      expect(cmd.inputs.connection[SECRET_SIG]).toBe(SECRET_SIG_VALUE);
      // Every connection checks the host's key: generated with the EC2 host, or the stack's sshHostKey.
      const hostKey = STACKS[stack]['cemetery-backend:target'] === 'ssh' ? TEST_SSH_HOST_KEY : MOCK_HOST_KEY.public;
      expect(cmd.inputs.connection.value).toMatchObject({ user: 'admin', hostKey, dialErrorLimit: stack === 'local' ? 10 : 60, perDialTimeout: 10 });
      if (cmd.inputs.stdin !== undefined) expect(cmd.inputs.logging).toBe(cmd.name.endsWith('-release') ? 'stdoutAndStderr' : 'none');
    }
    const release = commands(stack).find((c) => c.name.endsWith('-release'))!;
    expect(release.inputs.stdin[SECRET_SIG]).toBe(SECRET_SIG_VALUE);
    expect(release.inputs.stdin.value).toContain(`DATABASE_URL=postgres://cemetery:${MOCK_PASSWORD}@`);
    // A reload waits for each new worker as long as the gate waits for the release.
    expect(release.inputs.stdin.value).toContain(`PM2_LISTEN_TIMEOUT_MS=${Number(STACKS[stack]['cemetery-backend:releaseHealthTimeoutSeconds'] ?? 60) * 1000}\n`);
    expect(release.inputs.stdin.value).toContain(`DB_CONNECT_TIMEOUT_MS=${Number(STACKS[stack]['cemetery-backend:databaseConnectTimeoutSeconds'] ?? 3) * 1000}\n`);
  });

  test('configuration reaches the steps: limits, Node.js, logrotate', () => {
    const create = (step: string) => commands('prod').find((c) => c.name === `cemetery-prod-${step}`)!.inputs.create as string;
    expect(create('system-limits')).toContain('APP_USER=cemetery NOFILE=65536');
    expect(create('nodejs')).toContain('NODE_VERSION=24.21.0 NODE_MIRROR=https://nodejs.org/dist');
    expect(create('pm2')).toContain('PM2_VERSION=7.0.4');
    expect(create('pm2-logrotate')).toContain("MAX_SIZE=10M RETAIN=30 COMPRESS=true 'ROTATE_INTERVAL=0 0 * * *'");
  });
});

describe('uploads land where the steps look for them (the provider copy rules, on an in-memory host)', () => {
  const checkOf = (stack: string) => {
    const cfg = parseProjectConfig(withUserSecrets(STACKS[stack]), stack);
    const layout = provisioningLayout(cfg.sshUser, releaseId());
    // What each step reads besides its script and lib.sh: the helpers it uses, and the upload.
    const reads = Object.fromEntries(
      hostSteps(cfg, releaseId(), layout, cfg.environment).map((s) => [`cemetery-${cfg.environment}-${s.name}`, [...(s.uses ?? []).map((f) => `${layout.scriptsDir}/${f}`), ...(s.reads ?? [])]]),
    );
    return { layout, opts: { home: `/home/${cfg.sshUser}`, base: layout.base, reads } };
  };

  test.each(Object.keys(STACKS))('%s: every script, library and upload a step uses is there when it runs', async (stack) => {
    const { opts } = checkOf(stack);
    expect(await missingUploads(runs[stack], opts)).toEqual([]);
  });

  test('the check finds files that land elsewhere (directories copied as if with scp)', async () => {
    const { layout, opts } = checkOf('dev');
    // What the product did before: each directory's remotePath named as the directory itself.
    const scpStyle = {
      ...runs.dev,
      resources: runs.dev.resources.map((r) =>
        r.name === 'cemetery-dev-host-scripts' ? { ...r, inputs: { ...r.inputs, remotePath: layout.scriptsDir } }
        : r.name === 'cemetery-dev-release-bundle' ? { ...r, inputs: { ...r.inputs, remotePath: `${layout.uploadDir}/dist` } }
        : r,
      ),
    };
    const missing = await missingUploads(scpStyle, opts);
    expect(missing).toContain(`cemetery-dev-wait-for-host: ${layout.scriptsDir}/wait-for-host.sh`);
    expect(missing).toContain(`cemetery-dev-release: ${layout.uploadDir}/dist/server.js`);
  });
});

test('the release ships what runs on the host: the bundles, their migrations and the build id, no source maps', () => {
  const files = listFiles(APP_DIST_DIR).map((f) => path.relative(APP_DIST_DIR, f));
  expect(files.filter((f) => !f.startsWith('migrations/'))).toEqual(['BUILD_ID', 'admin.js', 'migrate.js', 'server.js']);
  expect(files.filter((f) => f.startsWith('migrations/')).length).toBeGreaterThan(0);
});

describe('environment differences', () => {
  const rds = (stack: string) => ofType(runs[stack].resources, 'aws:rds/instance:Instance')[0].inputs;
  const vm = (stack: string) => ofType(runs[stack].resources, 'aws:ec2/instance:Instance')[0].inputs;

  test('RDS PostgreSQL 17, private, encrypted, in two private subnets', () => {
    for (const stack of ['dev', 'prod']) {
      expect(rds(stack)).toMatchObject({ engine: 'postgres', engineVersion: '17', publiclyAccessible: false, storageEncrypted: true, storageType: 'gp3' });
    }
    const subnets = ofType(runs.dev.resources, 'aws:ec2/subnet:Subnet');
    const privateSubnets = subnets.filter((s) => s.name.includes('private'));
    expect(new Set(privateSubnets.map((s) => s.inputs.availabilityZone))).toEqual(new Set(['eu-central-1a', 'eu-central-1b']));
    expect(ofType(runs.dev.resources, 'aws:ec2/natGateway:NatGateway')).toEqual([]);
  });

  test('dev is destroyable; prod is protected with a final snapshot and multi-AZ', () => {
    expect(rds('dev')).toMatchObject({ deletionProtection: false, skipFinalSnapshot: true, multiAz: false, backupRetentionPeriod: 1 });
    expect(rds('dev').finalSnapshotIdentifier).toBeUndefined();
    expect(rds('prod')).toMatchObject({ deletionProtection: true, skipFinalSnapshot: false, multiAz: true, backupRetentionPeriod: 14 });
    expect(rds('prod').finalSnapshotIdentifier).toBe('cemetery-prod-final-prod');
  });

  test('prod snapshots RDS before a release with a new migration: named after the newest migration, the release step waits for it, and a later one leaves it in AWS; dev does not unless asked', async () => {
    const newest = shippedMigrations(path.join(APP_DIST_DIR, 'migrations')).at(-1)!;
    const name = `cemetery-prod-before-${snapshotSlug(newest)}`;
    const snapshots = ofType(runs.prod.resources, 'aws:rds/snapshot:Snapshot');
    expect(snapshots.map((r) => r.name)).toEqual([name]);
    expect(snapshots[0].inputs).toMatchObject({ dbInstanceIdentifier: rds('prod').identifier ?? expect.anything(), tags: { Environment: 'prod' } });
    expect(runs.prod.retainedOnDelete).toContain(name);
    expect(runs.prod.dependencies['cemetery-prod-release']).toContain(name);
    // Only the release step, which applies the migrations, waits for it.
    const waiting = Object.entries(runs.prod.dependencies).filter(([, deps]) => deps.includes(name)).map(([n]) => n);
    expect(waiting).toEqual(['cemetery-prod-release']);
    expect(ofType(runs.dev.resources, 'aws:rds/snapshot:Snapshot')).toEqual([]);
    const asked = await runProgram('dev', { ...withUserSecrets(STACKS.dev), 'cemetery-backend:snapshotBeforeMigrations': 'true' });
    expect(ofType(asked.resources, 'aws:rds/snapshot:Snapshot').map((r) => r.name)).toEqual([`cemetery-dev-before-${snapshotSlug(newest)}`]);
    expect(asked.dependencies['cemetery-dev-release']).toContain(`cemetery-dev-before-${snapshotSlug(newest)}`);
  });

  test('a migration name as a snapshot identifier: lower-case letters, digits, single hyphens, none at the end', () => {
    expect(snapshotSlug('1765000000000_rate-limit-hits')).toBe('1765000000000-rate-limit-hits');
    expect(snapshotSlug('1765000000000__Add  Plots_')).toBe('1765000000000-add-plots');
    expect(snapshotSlug(`1765000000000_${'x'.repeat(200)}`)).toHaveLength(120);
    expect(snapshotSlug(`1765000000000_${'a-'.repeat(100)}`)).not.toMatch(/-$|--/);
  });

  test('the host: Debian 13 AMI, IMDSv2, encrypted gp3; dev 2 vCPU, prod 4', () => {
    for (const stack of ['dev', 'prod']) {
      expect(vm(stack)).toMatchObject({
        ami: 'ami-0debian13mock',
        metadataOptions: { httpTokens: 'required' },
        rootBlockDevice: { encrypted: true, volumeType: 'gp3' },
      });
    }
    expect(vm('dev').instanceType).toBe('t3.medium');
    expect(vm('prod').instanceType).toBe('c7i.xlarge');
  });

  test('SSH is open only to the configured ranges in prod', () => {
    const hostSg = ofType(runs.prod.resources, 'aws:ec2/securityGroup:SecurityGroup').find((s) => s.inputs.ingress.some((r: { fromPort: number }) => r.fromPort === 22))!;
    expect(hostSg.inputs.ingress.find((r: { fromPort: number }) => r.fromPort === 22).cidrBlocks).toEqual(['198.51.100.0/28']);
  });
});

describe('the register on a volume of its own (on-host PostgreSQL)', () => {
  const volumes = (run: Awaited<ReturnType<typeof runProgram>>) => ofType(run.resources, 'aws:ebs/volume:Volume');
  const step = (run: Awaited<ReturnType<typeof runProgram>>, name: string) => ofType(run.resources, 'command:remote:Command').find((c) => c.name.endsWith(`-${name}`));

  test('target aws: an encrypted gp3 volume of dataVolumeSizeGiB in the host\'s zone, attached to the instance; nothing of it follows the instance but the attachment, detached first from a stopped instance', async () => {
    const run = runs.staging;
    const [volume] = volumes(run);
    expect(volume).toMatchObject({ name: 'cemetery-staging-data', inputs: { size: 20, type: 'gp3', encrypted: true, availabilityZone: 'eu-central-1a', tags: { Environment: 'staging', Name: 'cemetery-staging-data' } } });
    const [attachment] = ofType(run.resources, 'aws:ec2/volumeAttachment:VolumeAttachment');
    expect(attachment).toMatchObject({ name: 'cemetery-staging-data-attachment', inputs: { instanceId: 'cemetery-staging-vm-id', volumeId: 'cemetery-staging-data-id', stopInstanceBeforeDetaching: true } });
    // A replaced instance (a new user data, --replace) changes none of the volume's inputs, nor does it wait for the instance.
    expect(JSON.stringify(volume.inputs)).not.toContain('cemetery-staging-vm');
    expect(run.dependencies['cemetery-staging-data']).not.toContain('cemetery-staging-vm');
    expect(run.deletedBeforeReplace).toContain('cemetery-staging-data-attachment');
    // pulumi destroy of a staging stack takes it; deletionProtection (prod's default) protects it.
    expect(run.protectedResources).not.toContain('cemetery-staging-data');
    const kept = await runWith('dev', { 'cemetery-backend:databaseMode': 'onHost', 'cemetery-backend:deletionProtection': 'true', 'cemetery-backend:dataVolumeSizeGiB': '50' });
    expect(volumes(kept)[0].inputs.size).toBe(50);
    expect(kept.protectedResources).toContain('cemetery-dev-data');
    // RDS keeps the register: no volume.
    expect(volumes(runs.dev)).toEqual([]);
    expect(volumes(runs.prod)).toEqual([]);
  });

  test('the data-volume step runs before PostgreSQL is installed, after the attachment, naming the EBS device by the volume id', () => {
    const run = runs.staging;
    const create = step(run, 'data-volume')!.inputs.create as string;
    expect(create).toMatch(/\/data-volume\.sh DEVICE=\/dev\/disk\/by-id\/nvme-Amazon_Elastic_Block_Store_cemeterystaging-data-id DATA_MOUNT=\/srv\/cemetery-data SIZE_GIB=20$/);
    expect(run.dependencies['cemetery-staging-data-volume']).toEqual(expect.arrayContaining(['cemetery-staging-app-user', 'cemetery-staging-data-attachment']));
    expect(run.dependencies['cemetery-staging-postgres']).toContain('cemetery-staging-data-volume');
  });

  test('target ssh: the disk dataVolumeDevice names, if any; without it PostgreSQL stays on the host\'s disk', async () => {
    expect(step(runs.local, 'data-volume')!.inputs.create).toMatch(/DEVICE=\/dev\/disk\/by-id\/virtio-cemetery-data DATA_MOUNT=\/srv\/cemetery-data$/);
    const { 'cemetery-backend:dataVolumeDevice': _, ...withoutVolume } = withUserSecrets(STACKS.local);
    const run = await runProgram('local', withoutVolume);
    expect(step(run, 'data-volume')).toBeUndefined();
    expect(run.dependencies['cemetery-dev-postgres']).toContain('cemetery-dev-app-user');
  });

  test.each([
    ['a device on target aws', 'dev', { 'cemetery-backend:databaseMode': 'onHost', 'cemetery-backend:dataVolumeDevice': '/dev/disk/by-id/nvme-x' }, /cemetery-backend:dataVolumeDevice = "\/dev\/disk\/by-id\/nvme-x": target aws attaches a data volume of its own \(dataVolumeSizeGiB\): remove dataVolumeDevice/],
    ['a device name that can change between boots', 'local', { 'cemetery-backend:dataVolumeDevice': '/dev/vdb' }, /cemetery-backend:dataVolumeDevice = "\/dev\/vdb": expected a stable name of the disk/],
    ['a size on target ssh', 'local', { 'cemetery-backend:dataVolumeSizeGiB': '30' }, /cemetery-backend:dataVolumeSizeGiB = "30": target ssh uses a disk the host has \(dataVolumeDevice\): remove dataVolumeSizeGiB/],
    ['a size with RDS', 'dev', { 'cemetery-backend:dataVolumeSizeGiB': '30' }, /cemetery-backend:dataVolumeSizeGiB = "30": RDS keeps the register \(allocatedStorageGiB\)/],
    ['a size of 0', 'staging', { 'cemetery-backend:dataVolumeSizeGiB': '0' }, /cemetery-backend:dataVolumeSizeGiB = "0": expected a whole number from 1 to 16384/],
  ])('refused: %s', async (_what, stack, override, message) => {
    await expect(runProgram(stack, { ...withUserSecrets(STACKS[stack]), ...override })).rejects.toThrow(message);
  });
});

describe('the front door: the proxy, the host key, the web ports', () => {
  const hostSg = (resources: RecordedResource[]) => ofType(resources, 'aws:ec2/securityGroup:SecurityGroup').find((s) => s.name.endsWith('-host-sg'))!;
  const ingress = (resources: RecordedResource[]) =>
    (hostSg(resources).inputs.ingress as Array<{ fromPort: number; toPort: number; cidrBlocks?: string[]; securityGroups?: string[] }>).map(
      (r) => `${r.fromPort}-${r.toPort} from ${[...(r.cidrBlocks ?? []), ...(r.securityGroups ?? [])].join(',')}`,
    );
  const step = (stack: string, name: string) => ofType(runs[stack].resources, 'command:remote:Command').find((c) => c.name === `cemetery-${stack === 'local' ? 'dev' : stack}-${name}`)!;

  test('the host opens SSH to its ranges and the proxy to the world (behind a balancer: to the balancer alone), never the app port', async () => {
    const { resources } = await runWith('prod', PROD_ONE_HOST);
    expect(ingress(resources)).toEqual(['22-22 from 198.51.100.0/28', '80-80 from 0.0.0.0/0', '443-443 from 0.0.0.0/0']);
    expect(ingress(runs.prod.resources)).toEqual(['22-22 from 198.51.100.0/28', '80-80 from cemetery-prod-alb-sg-id']);
    // No domain: plain HTTP on 80 only.
    expect(ingress(runs.dev.resources)).toEqual(['22-22 from 0.0.0.0/0', '80-80 from 0.0.0.0/0']);
    expect(ingress(runs.staging.resources)).toEqual(['22-22 from 0.0.0.0/0', '80-80 from 0.0.0.0/0']);
  });

  test('the app listens on loopback; the proxy step gets the domain and issuer', async () => {
    expect(step('prod', 'release').inputs.stdin.value).toMatch(/^HOST=127\.0\.0\.1$/m);
    expect(step('prod', 'release').inputs.stdin.value).toMatch(/^PUBLIC_READS=true$/m);
    const flag = `MAINTENANCE_FLAG=${HOST_LAYOUT.maintenanceFlag}`;
    expect(step('prod', 'proxy').inputs.create).toMatch(new RegExp(`proxy\\.sh APP_PORT=3000 ISSUER=acme DOMAIN=cemetery\\.example\\.org ${flag} 'BALANCER_RANGES=10\\.40\\.0\\.0/24 10\\.40\\.1\\.0/24'$`));
    const oneHost = (await runWith('prod', PROD_ONE_HOST)).resources.find((r) => r.name === 'cemetery-prod-proxy')!;
    expect(oneHost.inputs.create).toMatch(new RegExp(`proxy\\.sh APP_PORT=3000 ISSUER=acme DOMAIN=cemetery\\.example\\.org ACME_EMAIL=ops@example\\.org ${flag}$`));
    expect(step('dev', 'proxy').inputs.create).toMatch(new RegExp(`proxy\\.sh APP_PORT=3000 ISSUER=acme ${flag}$`));
    expect(step('local', 'proxy').inputs.create).toMatch(new RegExp(`proxy\\.sh APP_PORT=3000 ISSUER=internal DOMAIN=cemetery\\.test ${flag}$`));
  });

  test('target aws: the host key is generated, installed by cloud-init at first boot behind the metadata guard, and a new one replaces the instance', () => {
    const keys = ofType(runs.prod.resources, 'tls:index/privateKey:PrivateKey');
    expect(keys.map((k) => [k.name, k.inputs.algorithm])).toEqual([
      ['cemetery-prod-ssh-host-key', 'ED25519'],
      ['cemetery-prod-2-ssh-host-key', 'ED25519'],
    ]);
    const vm = ofType(runs.prod.resources, 'aws:ec2/instance:Instance')[0].inputs;
    expect(vm.userDataReplaceOnChange).toBe(true);
    // User data holds the private host key: Pulumi keeps it secret.
    expect(vm.userData[SECRET_SIG]).toBe(SECRET_SIG_VALUE);
    const userData: string = vm.userData.value;
    expect(userData.split('\n')[0]).toBe('#cloud-config');
    expect(JSON.parse(userData.slice(userData.indexOf('\n') + 1))).toEqual({
      // At every boot, first among cloud-init's modules: only root reaches the metadata service (and this key).
      bootcmd: [['sh', '-c', metadataGuardCommand()]],
      ssh_deletekeys: true,
      ssh_keys: { ed25519_private: MOCK_HOST_KEY.private, ed25519_public: MOCK_HOST_KEY.public },
    });
    expect(metadataGuardCommand()).toBe(
      [
        'iptables -w -C OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -m comment --comment cemetery-metadata-guard -j REJECT 2>/dev/null || iptables -w -I OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -m comment --comment cemetery-metadata-guard -j REJECT',
        'ip6tables -w -C OUTPUT -d fd00:ec2::254 -m owner ! --uid-owner 0 -m comment --comment cemetery-metadata-guard -j REJECT 2>/dev/null || ip6tables -w -I OUTPUT -d fd00:ec2::254 -m owner ! --uid-owner 0 -m comment --comment cemetery-metadata-guard -j REJECT',
      ].join('\n'),
    );
  });

  test('target aws: the first step refuses a host without the metadata guard; target ssh has no user data to guard', () => {
    const wait = (stack: string) => hostSteps(parseProjectConfig(withUserSecrets(STACKS[stack]), stack), 'r-000000000000', provisioningLayout('admin', 'r-000000000000'), stack)[0];
    expect(wait('prod')).toEqual({ name: 'wait-for-host', script: 'wait-for-host.sh', args: { METADATA_GUARD: 'cemetery-metadata-guard' } });
    expect(wait('local')).toEqual({ name: 'wait-for-host', script: 'wait-for-host.sh', args: {} });
  });

  test('a Route 53 zone gets an A record for the domain at the host address (one host); none without a zone', async () => {
    const { resources } = await runWith('prod', PROD_ONE_HOST);
    expect(ofType(resources, 'aws:route53/record:Record').map((r) => r.inputs)).toEqual([
      { zoneId: 'Z0123456789ABCDEFGHIJ', name: 'cemetery.example.org', type: 'A', ttl: 300, records: [MOCK_PUBLIC_IP] },
    ]);
    const zoneless = Object.fromEntries(Object.entries({ ...withUserSecrets(STACKS.prod), ...PROD_ONE_HOST }).filter(([k]) => k !== 'cemetery-backend:hostedZoneId'));
    expect(ofType((await runProgram('prod', zoneless)).resources, 'aws:route53/record:Record')).toEqual([]);
  });

  test.each([
    ['prod', 'prod without a domain', { 'cemetery-backend:domainName': '' }, /cemetery-backend:domainName = "": expected a DNS name/],
    ['prod', 'prod on the internal CA', { 'cemetery-backend:certificateIssuer': 'internal' }, /cemetery-backend:certificateIssuer = "internal": prod's certificate comes from Let's Encrypt/],
    ['dev', 'a URL for a domain', { 'cemetery-backend:domainName': 'https://dev.example.org' }, /cemetery-backend:domainName = "https:\/\/dev.example.org": expected a DNS name such as cemetery.example.org \(no scheme, no port\)/],
    ['dev', 'a zone without a domain', { 'cemetery-backend:hostedZoneId': 'Z0123456789ABCDEFGHIJ' }, /cemetery-backend:hostedZoneId = "Z0123456789ABCDEFGHIJ": the DNS record is for domainName: set domainName too/],
    ['dev', 'a host key for an EC2 host', { 'cemetery-backend:sshHostKey': TEST_SSH_HOST_KEY }, /cemetery-backend:sshHostKey = "ssh-ed25519 [^"]+": target aws generates the host key itself/],
    ['local', 'an existing host without its host key', { 'cemetery-backend:sshHostKey': '' }, /cemetery-backend:sshHostKey = "": expected the host's public key as `ssh-keyscan -t ed25519 <host>` prints it/],
  ])('%s: %s is refused', async (stack, _what, override, message) => {
    await expect(runProgram(stack, { ...withUserSecrets(STACKS[stack]), ...override })).rejects.toThrow(message);
  });

  test('prod without domainName says how to set it', async () => {
    const config = Object.fromEntries(Object.entries(withUserSecrets(STACKS.prod)).filter(([k]) => !['cemetery-backend:domainName', 'cemetery-backend:acmeEmail'].includes(k)));
    await expect(runProgram('prod', config)).rejects.toThrow(/cemetery-backend:domainName = undefined: prod serves HTTPS: expected its DNS name, pulumi config set domainName/);
  });

  test('target ssh: pulumi up needs sshHostKey, a preview does not', async () => {
    const config = Object.fromEntries(Object.entries(withUserSecrets(STACKS.local)).filter(([k]) => k !== 'cemetery-backend:sshHostKey'));
    await expect(runProgram('local', config)).rejects.toThrow(/cemetery-backend:sshHostKey = undefined: required for pulumi up on target ssh/);
    await expect(runProgram('local', config, undefined, { preview: true })).resolves.toBeDefined();
  });
});

describe('bad configuration fails the program with a message naming the key', () => {
  const devConfig = () => withUserSecrets(STACKS.dev);
  const prodConfig = () => withUserSecrets(STACKS.prod);
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['instance type that does not exist in form', { 'cemetery-backend:instanceType': 't3.hugee' }, /cemetery-backend:instanceType = "t3.hugee": expected an EC2 instance type/],
    ['Graviton instance type', { 'cemetery-backend:instanceType': 'm7g.large' }, /cemetery-backend:instanceType = "m7g.large": expected an x86_64 type/],
    ['max_memory_restart 1GB', { 'cemetery-backend:maxMemoryRestart': '1GB' }, /cemetery-backend:maxMemoryRestart = "1GB": expected a size in PM2 form/],
    ['instances maxx', { 'cemetery-backend:pm2Instances': 'maxx' }, /cemetery-backend:pm2Instances = "maxx": expected "max" or a whole number from 1 to 999/],
    ['instances 0', { 'cemetery-backend:pm2Instances': '0' }, /cemetery-backend:pm2Instances = "0": expected a whole number from 1 to 999/],
    ['nofile 100', { 'cemetery-backend:nofileLimit': '100' }, /cemetery-backend:nofileLimit = "100": expected a whole number from 1024 to 1048576/],
    ['negative storage', { 'cemetery-backend:allocatedStorageGiB': '-20' }, /cemetery-backend:allocatedStorageGiB = "-20": expected a whole number from 20 to 65536/],
    ['max storage below allocated', { 'cemetery-backend:maxAllocatedStorageGiB': '10' }, /cemetery-backend:maxAllocatedStorageGiB = "10": expected a whole number from 20/],
    ['unknown region form', { 'aws:region': 'europe-1' }, /aws:region = "europe-1": expected an AWS region/],
    ['database mode', { 'cemetery-backend:databaseMode': 'sqlite' }, /cemetery-backend:databaseMode = "sqlite": expected rds, onHost or external/],
    ['postgres version', { 'cemetery-backend:postgresVersion': '9.6' }, /cemetery-backend:postgresVersion = "9.6": expected PostgreSQL 14 to 17/],
    ['SSH CIDR', { 'cemetery-backend:sshAllowedCidrs': '["10.0.0.0/33"]' }, /cemetery-backend:sshAllowedCidrs.0 = "10.0.0.0\/33": expected IPv4 CIDRs/],
    // A version the repository has no pin for: the host would have nothing to check its tarball against.
    ['Node.js without a pinned SHA-256', { 'cemetery-backend:nodeVersion': '24.99.0' }, /cemetery-backend:nodeVersion = "24.99.0": no SHA-256 is pinned for node-v24.99.0-linux-x64.tar.gz: add its line from https:\/\/nodejs.org\/dist\/v24.99.0\/SHASUMS256.txt to infra\/nodejs-releases.ts/],
    ['a Node.js mirror over plain http', { 'cemetery-backend:nodeDistMirror': 'http://mirror.example.org/dist' }, /cemetery-backend:nodeDistMirror = "http:\/\/mirror.example.org\/dist": expected https: a plain-http mirror can be changed on the way \(set nodeDistMirrorLocal true/],
    ['a malformed tarball SHA-256', { 'cemetery-backend:nodeTarballSha256': 'ABC' }, /cemetery-backend:nodeTarballSha256 = "ABC": expected a SHA-256 as 64 lower-case hex digits/],
    ['backup retention', { 'cemetery-backend:backupRetentionDays': '36' }, /cemetery-backend:backupRetentionDays = "36": expected a whole number from 0 to 35/],
    ['logrotate interval', { 'cemetery-backend:logrotateRotateInterval': 'daily' }, /cemetery-backend:logrotateRotateInterval = "daily": expected a cron expression/],
    ['Node.js version', { 'cemetery-backend:nodeVersion': 'lts' }, /cemetery-backend:nodeVersion = "lts": expected an exact Node.js version/],
    ['a misspelt key', { 'cemetery-backend:instanceTyp': 't3.large' }, /cemetery-backend:instanceTyp: unknown key; known keys: environment, target, sshHost, sshHosts, balancerCidrs, sshPort, instanceType/],
    ['a missing SSH key', { 'cemetery-backend:sshPublicKey': '' }, /cemetery-backend:sshPublicKey = "": expected an OpenSSH public key/],
    ['a second key smuggled into sshPublicKey', { 'cemetery-backend:sshPublicKey': `${TEST_SSH_PUBLIC_KEY}\n${TEST_SSH_HOST_KEY} intruder` }, /cemetery-backend:sshPublicKey = "ssh-ed25519 [^"]+": expected an OpenSSH public key: ssh-ed25519 AAAA... comment \(more than one line\)/],
  ];

  test.each(cases)('%s', async (_what, override, message) => {
    await expect(runProgram('dev', { ...devConfig(), ...override })).rejects.toThrow(message);
  });

  test.each([
    ['SSH from 0.0.0.0/0 in prod', { 'cemetery-backend:sshAllowedCidrs': '["0.0.0.0/0"]' }, /cemetery-backend:sshAllowedCidrs = \["0.0.0.0\/0"\]: prod does not open SSH to the whole internet/],
    ['a 2-vCPU host in prod', { 'cemetery-backend:instanceType': 't3.large' }, /cemetery-backend:instanceType = "t3.large": prod runs a multi-core cluster: expected 4 vCPU or more/],
    ['prod without deletion protection', { 'cemetery-backend:deletionProtection': 'false' }, /cemetery-backend:deletionProtection = "false": prod keeps deletion protection on/],
    // The register: in RDS, or on the host with backups on a data volume (target ssh: test/backups.test.ts).
    ['prod with PostgreSQL on the host', { 'cemetery-backend:databaseMode': 'onHost' }, /cemetery-backend:backupBucket = undefined: prod keeps its register in RDS, or on the host with continuous backups; on-host PostgreSQL without backupBucket has no backups: a lost disk, or a mistake made in it, loses the register/],
    ['prod on an existing host without backups', { 'cemetery-backend:target': 'ssh', 'cemetery-backend:sshHost': 'db.example.org', 'cemetery-backend:databaseMode': 'onHost' }, /cemetery-backend:backupBucket = undefined: prod keeps its register in RDS, or on the host with continuous backups/],
    ['prod with backups off', { 'cemetery-backend:backupRetentionDays': '0' }, /cemetery-backend:backupRetentionDays = "0": prod keeps at least 7 days of backups/],
  ])('%s', async (_what, override, message) => {
    await expect(runProgram('prod', { ...prodConfig(), ...override })).rejects.toThrow(message);
  });

  test('backupRetentionDays on a stack whose PostgreSQL is on the host, where it would keep nothing, is refused; the default is not', async () => {
    const staging = () => withUserSecrets(STACKS.staging);
    await expect(runProgram('staging', { ...staging(), 'cemetery-backend:backupRetentionDays': '7' })).rejects.toThrow(
      /cemetery-backend:backupRetentionDays = "7": on-host PostgreSQL without backupBucket has no backups[^\n]*, so backupRetentionDays would keep nothing: remove it, set backupBucket, or use databaseMode rds/,
    );
    await expect(runProgram('staging', staging())).resolves.toBeDefined();
  });

  test('snapshotBeforeMigrations on a stack whose PostgreSQL is on the host is refused; staging\'s default is not', async () => {
    const staging = () => withUserSecrets(STACKS.staging);
    await expect(runProgram('staging', { ...staging(), 'cemetery-backend:snapshotBeforeMigrations': 'true' })).rejects.toThrow(
      /cemetery-backend:snapshotBeforeMigrations = "true": RDS takes the snapshots; databaseMode onHost has none: remove it, or use databaseMode rds/,
    );
  });

  test('a secret is never echoed', async () => {
    const err = await runProgram('dev', { ...devConfig(), 'cemetery-backend:sshPrivateKey': 'hunter2-not-a-key' }).catch((e: Error) => e);
    expect(String(err)).toContain('cemetery-backend:sshPrivateKey = [secret]: expected an unencrypted OpenSSH private key');
    expect(String(err)).not.toContain('hunter2');
  });

  test('errors reach Pulumi as a RunError (printed without a stack trace)', async () => {
    const err = await runProgram('dev', { ...devConfig(), 'cemetery-backend:nofileLimit': '100' }).catch((e: Error) => e);
    expect(pulumi.RunError.isInstance(err)).toBe(true);
  });
});

describe('CrossGuard rules (policy/)', () => {
  test('report violations on a deliberately bad stack', async () => {
    const { createStack } = await import('../infra/stack');
    // Valid config, then made bad behind the validator's back: what the policies must still catch.
    const cfg = { ...parseProjectConfig(withUserSecrets(STACKS.prod), 'prod'), sshAllowedCidrs: ['0.0.0.0/0'], deletionProtection: false };
    const { resources } = await runProgram('prod', withUserSecrets(STACKS.prod), () => createStack(cfg));
    expect(violations(resources, 'prod')).toEqual([
      'no-public-ssh-in-prod: cemetery-prod-host-sg: SSH in prod (port 22): 0.0.0.0/0 admits more public IPv4 addresses than a /16: open to the world',
      'prod-database-protected: cemetery-prod-pg: the prod database must have deletionProtection: true',
    ]);
  });

  test("the register's volume: unencrypted, or without its Environment tag, is refused", () => {
    const rule = securityRules.find((r) => r.name === 'data-volume-encrypted-and-tagged')!;
    const [volume] = ofType(runs.staging.resources, 'aws:ebs/volume:Volume');
    expect(rule.check(volume.inputs, { stack: 'staging', type: volume.type })).toEqual([]);
    expect(rule.check({ ...volume.inputs, encrypted: false, tags: { Project: 'cemetery-backend' } }, { stack: 'staging', type: volume.type })).toEqual([
      'the volume must be encrypted (encrypted: true)',
      "the volume must carry its stack's Environment tag",
    ]);
  });

  test("prod's register: a prod stack whose database is on the host, or keeps too few days of backups, is refused; dev's on-host database is not", async () => {
    const { createStack } = await import('../infra/stack');
    const run = async (stack: string, bad: Record<string, unknown>) =>
      violations((await runProgram(stack, withUserSecrets(STACKS[stack]), () => createStack({ ...parseProjectConfig(withUserSecrets(STACKS[stack]), stack), ...bad }))).resources, stack);
    expect(await run('prod', { databaseMode: 'onHost' })).toEqual([
      'prod-register-in-backed-up-database: prod keeps PostgreSQL on the host without continuous backups: a lost disk, or a mistake made in it, loses the register (cemetery-backend:backupBucket)',
      'fleet-shares-one-database: 2 hosts (cemetery-prod-vm, cemetery-prod-2-vm) without an RDS database: each would keep a register of its own (cemetery-backend:hosts: 1, or databaseMode: rds)',
      'fleet-shares-one-database: 2 hosts run PostgreSQL of their own (cemetery-prod-postgres, cemetery-prod-2-postgres): each would keep a register of its own (cemetery-backend:databaseMode: rds, or external with sshHosts)',
    ]);
    expect(await run('prod', { backupRetentionDays: 3 })).toEqual([
      'prod-register-in-backed-up-database: cemetery-prod-pg: keeps 3 days of automated backups; prod keeps at least 7 (cemetery-backend:backupRetentionDays)',
    ]);
    expect(await run('dev', { databaseMode: 'onHost' })).toEqual([]);
  });

  test("prod's register on its own host: passed with backups and a data volume; refused without either, or keeping too few days", async () => {
    const { createStack } = await import('../infra/stack');
    const good = prodOnHostConfig();
    const run = async (bad: Record<string, unknown>) =>
      violations((await runProgram('prod', good, () => createStack({ ...parseProjectConfig(good, 'prod'), ...bad }))).resources, 'prod').filter((v) => v.startsWith('prod-register'));
    expect(await run({})).toEqual([]);
    expect(await run({ backupBucket: undefined, dataVolumeDevice: undefined })).toEqual([
      'prod-register-in-backed-up-database: prod keeps PostgreSQL on the host without continuous backups: a lost disk, or a mistake made in it, loses the register (cemetery-backend:backupBucket)',
      "prod-register-in-backed-up-database: prod keeps PostgreSQL on the host's own disk, which dies with the host (cemetery-backend:dataVolumeDevice)",
    ]);
    expect(await run({ backupRetentionDays: 3 })).toEqual(['prod-register-in-backed-up-database: cemetery-prod-backups: keeps 3 days of backups; prod keeps at least 7 (cemetery-backend:backupRetentionDays)']);
  });

  test.each([
    ['aws:rds/instance:Instance', { publiclyAccessible: true, storageEncrypted: false, tags: { Environment: 'dev' }, skipFinalSnapshot: true }, ['rds-private-and-encrypted', 'rds-private-and-encrypted']],
    ['aws:ec2/securityGroup:SecurityGroup', { ingress: [{ protocol: 'tcp', fromPort: 5400, toPort: 5500, cidrBlocks: ['0.0.0.0/0'] }] }, ['no-postgres-from-anywhere', 'only-web-and-ssh-from-anywhere']],
    ['aws:ec2/securityGroup:SecurityGroup', { ingress: [{ protocol: '-1', fromPort: 0, toPort: 0, ipv6CidrBlocks: ['::/0'] }], tags: { Environment: 'prod' } }, ['no-postgres-from-anywhere', 'only-web-and-ssh-from-anywhere', 'no-public-ssh-in-prod']],
    // The app port behind the proxy, opened to the world as before the proxy; a range that includes 443.
    ['aws:ec2/securityGroup:SecurityGroup', { ingress: [{ protocol: 'tcp', fromPort: 3000, toPort: 3000, cidrBlocks: ['0.0.0.0/0'] }] }, ['only-web-and-ssh-from-anywhere']],
    ['aws:ec2/securityGroup:SecurityGroup', { ingress: [{ protocol: 'tcp', fromPort: 443, toPort: 444, cidrBlocks: ['0.0.0.0/0'] }] }, ['only-web-and-ssh-from-anywhere']],
    ['aws:ec2/securityGroup:SecurityGroup', { ingress: [{ protocol: 'tcp', fromPort: 3000, toPort: 3000, cidrBlocks: ['10.0.0.0/8'] }, { protocol: 'tcp', fromPort: 443, toPort: 443, cidrBlocks: ['0.0.0.0/0'] }] }, []],
    ['aws:ec2/instance:Instance', { metadataOptions: { httpTokens: 'optional' }, rootBlockDevice: { encrypted: false }, tags: { Environment: 'dev' }, volumeTags: { Environment: 'dev' } }, ['imdsv2-required', 'encrypted-root-volume']],
    // Untagged volumes, or tagged for another environment: open to another environment's deploy role.
    ['aws:ec2/instance:Instance', { metadataOptions: { httpTokens: 'required' }, rootBlockDevice: { encrypted: true }, tags: { Environment: 'prod' } }, ['volumes-carry-the-environment-tag']],
    ['aws:ec2/instance:Instance', { metadataOptions: { httpTokens: 'required' }, rootBlockDevice: { encrypted: true }, tags: { Environment: 'prod' }, volumeTags: { Environment: 'dev' } }, ['volumes-carry-the-environment-tag']],
    ['aws:rds/instance:Instance', { publiclyAccessible: false, storageEncrypted: true, tags: { Environment: 'prod' }, deletionProtection: true, skipFinalSnapshot: true }, ['prod-database-protected']],
    ['aws:rds/instance:Instance', { publiclyAccessible: false, storageEncrypted: true, tags: { Environment: 'dev' }, deletionProtection: true }, ['non-prod-database-destroyable', 'non-prod-database-destroyable']],
  ])('%s %j violates %j', (type, inputs, expected) => {
    const fired = securityRules.filter((r) => r.resourceType !== '*' && appliesTo(r, type)).flatMap((r) => r.check(inputs, { stack: 'dev', type }).map(() => r.name));
    expect(fired).toEqual(expected);
  });
});

describe('the stack name decides prod-ness', () => {
  const config = (stack: string, extra: Record<string, string> = {}) => ({ ...withUserSecrets(STACKS[stack]), ...extra });

  test.each([
    ['prod relabelled dev', 'prod', config('prod', { 'cemetery-backend:environment': 'dev' }), /cemetery-backend:environment = "dev": stack "prod" is prod \(its name starts with prod\): expected prod, or no environment key/],
    ['prod-eu relabelled staging', 'prod-eu', config('prod', { 'cemetery-backend:environment': 'staging' }), /cemetery-backend:environment = "staging": stack "prod-eu" is prod/],
    ['dev relabelled prod', 'dev', config('prod', { 'cemetery-backend:environment': 'prod' }), /cemetery-backend:environment = "prod": only a stack named prod\* is prod: expected dev or staging for stack "dev"/],
    // prod-eu gets prod's rules without saying so: the dev file's open SSH is refused.
    ['prod-eu with dev settings', 'prod-eu', config('dev'), /Invalid configuration for stack "prod-eu" \(prod\):[^]*sshAllowedCidrs = \["0.0.0.0\/0"\]: prod does not open SSH/],
    ['prod sharing a network', 'prod', config('prod', { 'cemetery-backend:network': 'shared' }), /cemetery-backend:network = "shared": only staging stacks share a network; prod owns its network: expected own/],
  ])('%s is refused', async (_what, stack, cfg, message) => {
    await expect(runProgram(stack, cfg)).rejects.toThrow(message);
  });

  test('prod-eu is prod: protected database, final snapshot, prod tags', async () => {
    const { resources, outputs } = await runProgram('prod-eu', config('prod'));
    expect(outputs.environment.value).toBe('prod');
    const rds = ofType(resources, 'aws:rds/instance:Instance')[0].inputs;
    expect(rds).toMatchObject({ deletionProtection: true, skipFinalSnapshot: false, finalSnapshotIdentifier: 'cemetery-prod-final-prod-eu', tags: { Environment: 'prod' } });
    expect(violations(resources, 'prod-eu')).toEqual([]);
  });

  test('the policy pack takes prod-ness from the stack, whatever the tags say', () => {
    const rule = (name: string) => securityRules.find((r) => r.name === name)!;
    const SG = 'aws:ec2/securityGroup:SecurityGroup';
    const openSsh = { ingress: [{ protocol: 'tcp', fromPort: 22, toPort: 22, cidrBlocks: ['0.0.0.0/0'] }], tags: { Environment: 'dev' } };
    expect(rule('no-public-ssh-in-prod').check(openSsh, { stack: 'prod-eu', type: SG })).toHaveLength(1);
    expect(rule('no-public-ssh-in-prod').check(openSsh, { stack: 'dev', type: SG })).toEqual([]);
    expect(rule('environment-matches-stack').check(openSsh, { stack: 'prod', type: SG })).toEqual(['stack "prod" is prod, but the resource is tagged Environment=dev']);
    expect(rule('environment-matches-stack').check({ tags: { Environment: 'prod' } }, { stack: 'staging-pr-7', type: SG })).toHaveLength(1);
    expect(rule('prod-database-protected').check({ tags: { Environment: 'dev' }, deletionProtection: false, skipFinalSnapshot: true }, { stack: 'production', type: 'aws:rds/instance:Instance' })).toHaveLength(2);
  });
});

describe('previews need no private key', () => {
  const withoutPrivateKey = (stack: string) => Object.fromEntries(Object.entries(withUserSecrets(STACKS[stack])).filter(([k]) => k !== 'cemetery-backend:sshPrivateKey'));

  test.each(['dev', 'prod', 'staging'])('%s: a preview runs without sshPrivateKey and shows no connection change', async (stack) => {
    const { resources, ignoreChanges } = await runProgram(stack, withoutPrivateKey(stack), undefined, { preview: true });
    const remote = resources.filter((r) => r.type.startsWith('command:remote:'));
    expect(remote.length).toBeGreaterThan(5);
    for (const r of remote) {
      expect(JSON.stringify(r.inputs)).not.toContain('PRIVATE KEY');
      expect(ignoreChanges[r.name]).toEqual(['connection']);
    }
  });

  test('with the key, nothing is ignored', async () => {
    const { ignoreChanges } = await runProgram('dev', withUserSecrets(STACKS.dev), undefined, { preview: true });
    expect(ignoreChanges['cemetery-dev-release']).toEqual([]);
  });

  test('pulumi up without it fails, naming the key', async () => {
    await expect(runProgram('dev', withoutPrivateKey('dev'))).rejects.toThrow(
      /cemetery-backend:sshPrivateKey = \[secret\]: required for pulumi up, which provisions the host over SSH \(a preview runs without it\)/,
    );
  });
});

describe('rotating the deploy key', () => {
  /** The incoming deploy key pair. */
  const NEXT = ed25519KeyPair({ comment: 'rotated@cemetery' });
  const OTHER_PUBLIC_KEY = NEXT.public;

  /** Properties that differ between two runs and that the resource does not ignore, by resource. */
  async function changes(stack: string, override: Record<string, string>) {
    const before = await runProgram(stack, withUserSecrets(STACKS[stack]));
    const after = await runProgram(stack, { ...withUserSecrets(STACKS[stack]), ...override });
    expect(after.resources.map((r) => r.name)).toEqual(before.resources.map((r) => r.name));
    const changed: Record<string, string[]> = {};
    const ignored: Record<string, string[]> = {};
    for (const [i, old] of before.resources.entries()) {
      const now = after.resources[i];
      const keys = [...new Set([...Object.keys(old.inputs), ...Object.keys(now.inputs)])].filter((k) => JSON.stringify(old.inputs[k]) !== JSON.stringify(now.inputs[k]));
      const notIgnored = keys.filter((k) => !after.ignoreChanges[now.name].includes(k));
      const ignoredKeys = keys.filter((k) => after.ignoreChanges[now.name].includes(k));
      if (ignoredKeys.length) ignored[now.name] = ignoredKeys;
      if (notIgnored.length) changed[now.name] = notIgnored;
    }
    return { changed, ignored };
  }

  test.each(['dev', 'prod', 'staging'])('%s: the incoming key (first up) changes only the authorized_keys step', async (stack) => {
    const { changed, ignored } = await changes(stack, { 'cemetery-backend:sshNextPublicKey': NEXT.public });
    // Every host's (prod has two).
    const hosts = stack === 'prod' ? [`cemetery-${stack}`, `cemetery-${stack}-2`] : [`cemetery-${stack}`];
    expect(changed).toEqual(Object.fromEntries(hosts.map((h) => [`${h}-ssh-authorized-keys`, ['create']])));
    expect(ignored).toEqual({});
  });

  test.each(['dev', 'prod', 'staging'])('%s: the new key pair (second up) replaces nothing', async (stack) => {
    const { changed, ignored } = await changes(stack, { 'cemetery-backend:sshPublicKey': NEXT.public, 'cemetery-backend:sshPrivateKey': NEXT.private });
    // Only what a step re-runs idempotently may change (its connection, command line or stdin): never an AWS
    // resource, never a step's triggers (a trigger replaces the step).
    for (const [name, keys] of Object.entries(changed)) {
      expect({ name, keys: keys.filter((k) => !['connection', 'create', 'stdin'].includes(k)) }).toEqual({ name, keys: [] });
    }
    expect(ignored).toEqual({ [`cemetery-${stack === 'prod' ? 'prod' : stack}-key`]: ['publicKey'] });
    // The new key reaches authorized_keys through its step's command line: an update, which runs it again.
    expect(changed[`cemetery-${stack}-ssh-authorized-keys`]).toEqual(['connection', 'create']);
  });

  test('the instance ignores its launch key pair and its AMI', async () => {
    const { ignoreChanges } = await runProgram('prod', withUserSecrets(STACKS.prod));
    expect(ignoreChanges['cemetery-prod-vm']).toEqual(['ami', 'keyName']);
    expect(ignoreChanges['cemetery-prod-key']).toEqual(['publicKey']);
  });

  test('sshNextPublicKey is an OpenSSH key other than the current one', async () => {
    await expect(runProgram('dev', { ...withUserSecrets(STACKS.dev), 'cemetery-backend:sshNextPublicKey': TEST_SSH_PUBLIC_KEY })).rejects.toThrow(
      /cemetery-backend:sshNextPublicKey = "ssh-ed25519 [^"]+": expected the incoming key, different from sshPublicKey/,
    );
    await expect(runProgram('dev', { ...withUserSecrets(STACKS.dev), 'cemetery-backend:sshNextPublicKey': 'hello' })).rejects.toThrow(/sshNextPublicKey = "hello": expected an OpenSSH public key/);
    // The right shape with a broken body: the parser, not a pattern, decides.
    await expect(runProgram('dev', { ...withUserSecrets(STACKS.dev), 'cemetery-backend:sshNextPublicKey': 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm0oVw7kUu4gw8dPj1QyUpiGmo8C1m9rM8UuJ2c0Z' })).rejects.toThrow(
      /sshNextPublicKey = "ssh-ed25519 [^"]+": expected an OpenSSH public key: ssh-ed25519 AAAA... comment \(Malformed OpenSSH public key\)/,
    );
    await expect(runProgram('dev', { ...withUserSecrets(STACKS.dev), 'cemetery-backend:sshNextPublicKey': OTHER_PUBLIC_KEY })).resolves.toBeDefined();
  });
});

describe('the deploy key guard: pulumi up refuses a key that authorized_keys would not hold', () => {
  const NEXT = ed25519KeyPair({ comment: 'next@cemetery' });
  const STRANGER = ed25519KeyPair({ comment: 'stranger@cemetery' });
  const fingerprint = (publicKey: string) => execFileSync('ssh-keygen', ['-l', '-f', '-'], { input: publicKey }).toString().split(' ')[1];
  const STACKS_WITH_KEYS = Object.keys(STACKS).filter((s) => s !== 'staging-shared');
  const config = (stack: string, keys: Record<string, string>) => ({ ...withUserSecrets(STACKS[stack]), ...Object.fromEntries(Object.entries(keys).map(([k, v]) => [`${PROJECT}:${k}`, v])) });

  test.each(STACKS_WITH_KEYS)('%s: the matching key, and either key of a rotation in progress, are accepted', async (stack) => {
    await expect(runProgram(stack, config(stack, {}))).resolves.toBeDefined();
    await expect(runProgram(stack, config(stack, { sshNextPublicKey: NEXT.public }))).resolves.toBeDefined();
    await expect(runProgram(stack, config(stack, { sshNextPublicKey: NEXT.public, sshPrivateKey: NEXT.private }))).resolves.toBeDefined();
  });

  test.each(STACKS_WITH_KEYS)('%s: a private key that is not sshPublicKey (nor sshNextPublicKey) fails before any resource, naming both fingerprints and the rotation', async (stack) => {
    const err = await runProgram(stack, config(stack, { sshPublicKey: NEXT.public })).catch((e: Error) => e);
    expect(pulumi.RunError.isInstance(err)).toBe(true);
    const message = String((err as Error).message);
    expect(message).toContain(
      `${PROJECT}:sshPrivateKey = [secret]: its public key, ${fingerprint(TEST_SSH_PUBLIC_KEY)}, is neither sshPublicKey (${fingerprint(NEXT.public)}) nor sshNextPublicKey (not set): ` +
        'this up would leave authorized_keys without the key it connects with, and lock every later up out. To rotate the deploy key: set sshNextPublicKey to the new public key and up',
    );
    expect(message).not.toContain(TEST_SSH_PRIVATE_KEY.split('\n')[1]);
    // During a rotation, a third key is refused too, naming the incoming one.
    await expect(runProgram(stack, config(stack, { sshNextPublicKey: NEXT.public, sshPrivateKey: STRANGER.private }))).rejects.toThrow(
      `its public key, ${fingerprint(STRANGER.public)}, is neither sshPublicKey (${fingerprint(TEST_SSH_PUBLIC_KEY)}) nor sshNextPublicKey (${fingerprint(NEXT.public)})`,
    );
  });

  test('a preview (no private key) is not checked: it connects to nothing', async () => {
    const preview = Object.fromEntries(Object.entries(config('dev', { sshPublicKey: NEXT.public })).filter(([k]) => k !== `${PROJECT}:sshPrivateKey`));
    await expect(runProgram('dev', preview, undefined, { preview: true })).resolves.toBeDefined();
  });
});

describe('staging stacks share one network', () => {
  const count = (stack: string, type: string) => ofType(runs[stack].resources, type).length;
  const NETWORK_TYPES = ['aws:ec2/vpc:Vpc', 'aws:ec2/internetGateway:InternetGateway', 'aws:ec2/subnet:Subnet', 'aws:ec2/routeTable:RouteTable', 'aws:ec2/eip:Eip'];

  test('a staging stack has no VPC, gateway, subnet or Elastic IP; its host takes a launch address in the shared subnet', () => {
    for (const type of NETWORK_TYPES) expect([type, count('staging', type)]).toEqual([type, 0]);
    const vm = ofType(runs.staging.resources, 'aws:ec2/instance:Instance')[0].inputs;
    expect(vm).toMatchObject({ subnetId: MOCK_SHARED_SUBNETS.public[0], associatePublicIpAddress: true });
    expect(ofType(runs.staging.resources, 'aws:ec2/securityGroup:SecurityGroup')[0].inputs.vpcId).toBe(MOCK_SHARED_VPC);
    expect(runs.staging.outputs.publicIp.value).toBe(MOCK_PUBLIC_IP);
  });

  test('an RDS staging stack uses the shared private subnets', async () => {
    const { resources } = await runProgram('staging-pr-7', { ...withUserSecrets(STACKS.staging), 'cemetery-backend:databaseMode': 'rds' });
    expect(ofType(resources, 'aws:rds/subnetGroup:SubnetGroup')[0].inputs.subnetIds).toEqual([...MOCK_SHARED_SUBNETS.private].sort());
  });

  test('staging-shared holds the network alone, tagged for the lookup', () => {
    expect(runs['staging-shared'].resources.filter((r) => r.type.startsWith('aws:')).map((r) => r.type).sort()).toEqual(
      [...NETWORK_TYPES.slice(0, 4), 'aws:ec2/routeTableAssociation:RouteTableAssociation', 'aws:ec2/subnet:Subnet', 'aws:ec2/subnet:Subnet'].sort(),
    );
    expect(ofType(runs['staging-shared'].resources, 'aws:ec2/vpc:Vpc')[0].inputs.tags).toMatchObject({ SharedNetwork: 'cemetery-backend-staging' });
  });

  test('without the shared network, a staging stack says how to create it', async () => {
    // The check on the lookup's answer (under mocks, a throw inside an apply leaves the program pending).
    const { theSharedVpc } = await import('../infra/network');
    expect(theSharedVpc([MOCK_SHARED_VPC])).toBe(MOCK_SHARED_VPC);
    expect(() => theSharedVpc(['vpc-1', 'vpc-2'])).toThrow('found 2 VPCs tagged SharedNetwork=cemetery-backend-staging, expected one');
    expect(() => theSharedVpc([])).toThrow(
      'found 0 VPCs tagged SharedNetwork=cemetery-backend-staging, expected one: create the shared staging network once with `pulumi up -s staging-shared`',
    );
  });

  test('ten open pull requests stay within the default quotas (5 VPCs, 5 internet gateways, 5 Elastic IPs per region)', () => {
    // The region's default VPC (and its gateway) counts against the quota too.
    const total = (type: string, defaultVpc: number) => defaultVpc + count('dev', type) + count('prod', type) + count('staging-shared', type) + 10 * count('staging', type);
    expect(total('aws:ec2/vpc:Vpc', 1)).toBe(4);
    expect(total('aws:ec2/internetGateway:InternetGateway', 1)).toBe(4);
    // dev's host and prod's two.
    expect(total('aws:ec2/eip:Eip', 0)).toBe(3);
  });
});

describe('several hosts behind a load balancer (hosts)', () => {
  // The stack file's own number of hosts is its run from beforeAll.
  const fleet = async (stack: 'dev' | 'prod', hosts: number, extra: Record<string, string> = {}) =>
    hosts === hostsOf(stack) && !Object.keys(extra).length
      ? runs[stack]
      : runWith(stack, { 'cemetery-backend:hosts': String(hosts), ...(stack === 'prod' && hosts === 1 ? PROD_ONE_HOST : {}), ...extra });
  const names = (resources: RecordedResource[], type: string) => ofType(resources, type).map((r) => r.name);

  test.each([
    ['dev', 1],
    ['dev', 2],
    ['dev', 3],
    ['prod', 1],
    ['prod', 2],
    ['prod', 3],
  ] as const)('%s with %i host(s): the instances across two zones, the balancer in front of more than one, the hosts reachable on the web port from it alone', async (stack, hosts) => {
    const { resources } = await fleet(stack, hosts);
    expect(violations(resources, stack)).toEqual([]);
    const vms = ofType(resources, 'aws:ec2/instance:Instance');
    // The first keeps a single host's names: adding hosts replaces nothing.
    expect(vms.map((v) => v.name).sort()).toEqual([`cemetery-${stack}-vm`, `cemetery-${stack}-2-vm`, `cemetery-${stack}-3-vm`].slice(0, hosts).sort());
    expect(names(resources, 'aws:ec2/eip:Eip')).toHaveLength(hosts);
    if (hosts === 1) {
      expect(names(resources, 'aws:lb/loadBalancer:LoadBalancer')).toEqual([]);
      expect(names(resources, 'aws:ec2/subnet:Subnet').sort()).toEqual([`cemetery-${stack}-private-a`, `cemetery-${stack}-private-b`, `cemetery-${stack}-public-a`]);
      return;
    }
    // Host i in public subnet i mod 2: two zones.
    const zoneOf = Object.fromEntries(vms.map((v) => [v.name, v.inputs.subnetId]));
    expect([`cemetery-${stack}-vm`, `cemetery-${stack}-2-vm`, `cemetery-${stack}-3-vm`].slice(0, hosts).map((n) => zoneOf[n])).toEqual(
      ['a', 'b', 'a'].slice(0, hosts).map((z) => `cemetery-${stack}-public-${z}-id`),
    );
    const [alb] = ofType(resources, 'aws:lb/loadBalancer:LoadBalancer');
    expect(alb.inputs).toMatchObject({
      loadBalancerType: 'application',
      internal: false,
      subnets: [`cemetery-${stack}-public-a-id`, `cemetery-${stack}-public-b-id`],
      securityGroups: [`cemetery-${stack}-alb-sg-id`],
      dropInvalidHeaderFields: true,
      enableDeletionProtection: stack === 'prod',
    });
    const albSg = ofType(resources, 'aws:ec2/securityGroup:SecurityGroup').find((g) => g.name === `cemetery-${stack}-alb-sg`)!;
    const https = stack === 'prod';
    expect(albSg.inputs.ingress.map((r: { fromPort: number; cidrBlocks: string[] }) => `${r.fromPort} from ${r.cidrBlocks}`)).toEqual(https ? ['80 from 0.0.0.0/0', '443 from 0.0.0.0/0'] : ['80 from 0.0.0.0/0']);
    expect(albSg.inputs.egress).toEqual([expect.objectContaining({ protocol: 'tcp', fromPort: 80, toPort: 80, cidrBlocks: ['10.40.0.0/16'] })]);
    const hostSg = ofType(resources, 'aws:ec2/securityGroup:SecurityGroup').find((g) => g.name === `cemetery-${stack}-host-sg`)!;
    const web = hostSg.inputs.ingress.filter((r: { fromPort: number }) => r.fromPort !== 22);
    expect(web).toEqual([expect.objectContaining({ protocol: 'tcp', fromPort: 80, toPort: 80, securityGroups: [`cemetery-${stack}-alb-sg-id`] })]);
    expect(web[0].cidrBlocks).toBeUndefined();

    const [group] = ofType(resources, 'aws:lb/targetGroup:TargetGroup');
    expect(group.inputs).toMatchObject({ protocol: 'HTTP', port: 80, targetType: 'instance', deregistrationDelay: DEREGISTRATION_DELAY_SECONDS, healthCheck: { ...HEALTH_CHECK, port: 'traffic-port' } });
    expect(ofType(resources, 'aws:lb/targetGroupAttachment:TargetGroupAttachment').map((a) => [a.name, a.inputs.targetId, a.inputs.port]).sort()).toEqual(
      [`cemetery-${stack}-vm`, `cemetery-${stack}-2-vm`, `cemetery-${stack}-3-vm`].slice(0, hosts).map((v, i) => [`cemetery-${stack}-target-${i + 1}`, `${v}-id`, 80]).sort(),
    );
    const listeners = Object.fromEntries(ofType(resources, 'aws:lb/listener:Listener').map((l) => [l.name.replace(`cemetery-${stack}-`, ''), l.inputs]));
    const forward = [{ type: 'forward', targetGroupArn: expect.stringContaining(`targetgroup/cemetery-${stack}-web/`) }];
    if (!https) {
      expect(listeners).toEqual({ http: expect.objectContaining({ protocol: 'HTTP', port: 80, defaultActions: forward }) });
      return;
    }
    expect(listeners.https).toMatchObject({ protocol: 'HTTPS', port: 443, sslPolicy: TLS_POLICY, certificateArn: expect.stringContaining('certificate/cemetery-prod-cert'), defaultActions: forward });
    expect(listeners.http).toMatchObject({ protocol: 'HTTP', port: 80, defaultActions: [{ type: 'redirect', redirect: { protocol: 'HTTPS', port: '443', statusCode: 'HTTP_301' } }] });
    // ACM's certificate for the domain, validated by the CNAME Pulumi writes in the zone; the name is an alias of the balancer.
    expect(ofType(resources, 'aws:acm/certificate:Certificate').map((c) => c.inputs)).toEqual([expect.objectContaining({ domainName: 'cemetery.example.org', validationMethod: 'DNS' })]);
    const records = Object.fromEntries(ofType(resources, 'aws:route53/record:Record').map((r) => [r.name, r.inputs]));
    expect(records['cemetery-prod-cert-validation']).toMatchObject({ zoneId: 'Z0123456789ABCDEFGHIJ', type: 'CNAME', records: ['_424c7224e9b0146f9a8808af955727d0.acm-validations.aws.'] });
    expect(records['cemetery-prod-dns']).toEqual({
      zoneId: 'Z0123456789ABCDEFGHIJ',
      name: 'cemetery.example.org',
      type: 'A',
      aliases: [{ name: 'cemetery-prod-alb-1234567890.eu-central-1.elb.amazonaws.com', zoneId: 'Z215JYRZR1TBD5', evaluateTargetHealth: true }],
    });
    expect(ofType(resources, 'aws:acm/certificateValidation:CertificateValidation').map((v) => v.inputs.validationRecordFqdns)).toEqual([[records['cemetery-prod-cert-validation'].name]]);
  });

  test('canary first: every copy and step of host i+1 waits for host i\'s release; a host joins the balancer once its own release serves; the snapshot before migrations is host 1\'s alone', async () => {
    const { resources, dependencies } = await fleet('prod', 3);
    const host = ['cemetery-prod', 'cemetery-prod-2', 'cemetery-prod-3'];
    const byHost = host.map((h) => resources.filter((r) => r.type.startsWith('command:remote:') && (h === 'cemetery-prod' ? !/^cemetery-prod-\d-/.test(r.name) : r.name.startsWith(`${h}-`))));
    expect(byHost.map((rs) => rs.length)).toEqual([12, 12, 12]);
    for (const r of byHost[0]) expect(dependencies[r.name].filter((d) => /-\d-release$/.test(d))).toEqual([]);
    for (const [i, rs] of byHost.slice(1).entries()) {
      for (const r of rs) expect(dependencies[r.name]).toContain(`${host[i]}-release`);
    }
    for (const i of [0, 1, 2]) expect(dependencies[`cemetery-prod-target-${i + 1}`]).toContain(`${host[i]}-release`);
    const snapshot = (name: string) => dependencies[name].filter((d) => d.startsWith('cemetery-prod-before-'));
    expect(snapshot('cemetery-prod-release')).toHaveLength(1);
    expect(snapshot('cemetery-prod-2-release')).toEqual([]);
    // Every host runs the same release, and the proxy behind the balancer believes its nodes' X-Forwarded-For; so does the app.
    const command = (name: string) => resources.find((r) => r.name === name)!.inputs;
    const releaseId = (name: string) => /RELEASE_ID=(r-[0-9a-f]{12})/.exec(command(name).create)![1];
    expect(new Set(host.map((h) => releaseId(`${h}-release`))).size).toBe(1);
    for (const h of host) {
      expect(command(`${h}-proxy`).create).toContain("'BALANCER_RANGES=10.40.0.0/24 10.40.1.0/24'");
      expect(command(`${h}-release`).stdin.value).toMatch(/^TRUST_PROXY=127\.0\.0\.1,::1,10\.40\.0\.0\/24,10\.40\.1\.0\/24$/m);
    }
    expect(ofType(runs.dev.resources, 'command:remote:Command').find((r) => r.name === 'cemetery-dev-release')!.inputs.stdin.value).not.toMatch(/TRUST_PROXY/);
  });

  test('one host behind the balancer when asked (loadBalancer true)', async () => {
    const { resources } = await fleet('dev', 1, { 'cemetery-backend:loadBalancer': 'true' });
    expect(names(resources, 'aws:lb/loadBalancer:LoadBalancer')).toEqual(['cemetery-dev-alb']);
    expect(names(resources, 'aws:lb/targetGroupAttachment:TargetGroupAttachment')).toEqual(['cemetery-dev-target-1']);
    expect(names(resources, 'aws:ec2/subnet:Subnet')).toContain('cemetery-dev-public-b');
  });

  test.each([
    ['dev', 'two hosts on on-host PostgreSQL', { 'cemetery-backend:hosts': '2', 'cemetery-backend:databaseMode': 'onHost' }, /cemetery-backend:hosts = "2": 2 hosts share one register, which only databaseMode rds gives: expected rds, or hosts 1/],
    ['staging', 'a staging stack of two hosts (shared network, on-host PostgreSQL)', { 'cemetery-backend:hosts': '2' }, /cemetery-backend:hosts = "2": the load balancer needs public subnets in two zones of a network of its own, and staging stacks share one: expected hosts 1 and no loadBalancer/],
    ['local', 'an existing host over SSH counted as two', { 'cemetery-backend:hosts': '2' }, /cemetery-backend:hosts = "2": target ssh provisions the hosts it is given \(1\): remove hosts, and list them in sshHosts \(one host: sshHost\)/],
    ['local', 'an existing host asking for the stack\'s own balancer', { 'cemetery-backend:loadBalancer': 'true' }, /cemetery-backend:loadBalancer = "true": target ssh stands behind a load balancer of yours: remove loadBalancer, and set balancerCidrs/],
    ['dev', 'two hosts without the balancer', { 'cemetery-backend:hosts': '2', 'cemetery-backend:loadBalancer': 'false' }, /cemetery-backend:loadBalancer = "false": 2 hosts are reached through the load balancer: remove loadBalancer, or set hosts 1/],
    ['dev', 'five hosts', { 'cemetery-backend:hosts': '5' }, /cemetery-backend:hosts = "5": expected a whole number from 1 to 4/],
    ['prod', "a domain without its zone (ACM's validation record)", { 'cemetery-backend:hostedZoneId': '' }, /cemetery-backend:hostedZoneId = "": expected a Route 53 hosted zone id/],
    ['prod', 'acmeEmail behind the balancer', { 'cemetery-backend:acmeEmail': 'ops@example.org' }, /cemetery-backend:acmeEmail = "ops@example.org": the load balancer's certificate comes from ACM, not Let's Encrypt: remove it/],
  ])('%s: %s is refused, naming the key', async (stack, _what, override, message) => {
    await expect(runProgram(stack, { ...withUserSecrets(STACKS[stack]), ...override })).rejects.toThrow(message);
  });

  test('prod without a hosted zone: says the certificate needs it', () => {
    const config = Object.fromEntries(Object.entries(withUserSecrets(STACKS.prod)).filter(([k]) => k !== 'cemetery-backend:hostedZoneId'));
    expect(() => parseProjectConfig(config, 'prod')).toThrow(
      "cemetery-backend:hostedZoneId = undefined: the load balancer's certificate (ACM) is validated by a DNS record Pulumi writes in the zone of cemetery.example.org: expected that Route 53 zone's id",
    );
  });

  test('the policy pack refuses a fleet without RDS, and a prod balancer that answers plain HTTP', async () => {
    const { createStack } = await import('../infra/stack');
    const cfg = { ...parseProjectConfig(withUserSecrets(STACKS.dev), 'dev'), hosts: 2, databaseMode: 'onHost' as const };
    const { resources } = await runProgram('dev', withUserSecrets(STACKS.dev), () => createStack(cfg));
    expect(violations(resources, 'dev')).toEqual([
      'fleet-shares-one-database: 2 hosts (cemetery-dev-vm, cemetery-dev-2-vm) without an RDS database: each would keep a register of its own (cemetery-backend:hosts: 1, or databaseMode: rds)',
      'fleet-shares-one-database: 2 hosts run PostgreSQL of their own (cemetery-dev-postgres, cemetery-dev-2-postgres): each would keep a register of its own (cemetery-backend:databaseMode: rds, or external with sshHosts)',
    ]);
    const [rule] = securityRules.filter((r) => r.name === 'prod-balancer-serves-https');
    const type = 'aws:lb/listener:Listener';
    expect(rule.check({ protocol: 'HTTP', port: 80, defaultActions: [{ type: 'forward' }] }, { stack: 'prod', type })).toEqual([
      'the HTTP listener on port 80 must redirect to HTTPS, got forward (cemetery-backend:domainName, hostedZoneId)',
    ]);
    expect(rule.check({ protocol: 'HTTP', port: 80, defaultActions: [{ type: 'forward' }] }, { stack: 'dev', type })).toEqual([]);
    expect(rule.check({ protocol: 'HTTP', port: 80, defaultActions: [{ type: 'redirect', redirect: { protocol: 'HTTPS' } }] }, { stack: 'prod', type })).toEqual([]);
  });
});

describe('several existing hosts (target ssh: sshHosts) behind your balancer, on an external database', () => {
  const run = (hosts: number, change: Record<string, string | undefined> = {}) => runProgram('local', sshFleetConfig(hosts, change));
  const commands = (resources: RecordedResource[]) => ofType(resources, 'command:remote:Command');

  test.each([2, 3])('%i hosts: each provisioned over SSH with its own pinned key, in order (canary first), with no PostgreSQL of its own; the proxy answers the balancer alone; the app reaches the database by the given URL', async (hosts) => {
    const { resources, dependencies, outputs } = await run(hosts);
    expect(violations(resources, 'local')).toEqual([]);
    expect(resources.filter((r) => r.type.startsWith('aws:'))).toEqual([]);
    const host = ['cemetery-dev', 'cemetery-dev-2', 'cemetery-dev-3'].slice(0, hosts);
    const ofHost = (h: string) => resources.filter((r) => r.type.startsWith('command:remote:') && (h === 'cemetery-dev' ? !/^cemetery-dev-\d-/.test(r.name) : r.name.startsWith(`${h}-`)));
    for (const [i, h] of host.entries()) {
      const own = ofHost(h);
      // Every connection of host i checks host i's key, at its address.
      expect(new Set(own.map((r) => `${r.inputs.connection.value.host} ${r.inputs.connection.value.hostKey}`))).toEqual(new Set([`10.0.7.${i + 1} ${TEST_FLEET_HOST_KEYS[i]}`]));
      const steps = own.filter((r) => r.type === 'command:remote:Command').map((r) => r.name.slice(h.length + 1));
      expect(steps).not.toContain('postgres');
      expect(steps).not.toContain('backups');
      expect(steps).toContain('release');
      const proxy = resources.find((r) => r.name === `${h}-proxy`)!.inputs.create as string;
      expect(proxy).toContain("BALANCER_RANGES=10.0.5.0/24");
      const env = resources.find((r) => r.name === `${h}-release`)!.inputs.stdin.value as string;
      expect(env).toMatch(/^TRUST_PROXY=127\.0\.0\.1,::1,10\.0\.5\.0\/24$/m);
      expect(env).toContain(`DATABASE_URL=${EXTERNAL_DB_URL}\n`);
      expect(env).toContain('DATABASE_TLS_CA=url\n');
      // Canary first: nothing of host i+1 starts before host i serves the release.
      if (i > 0) for (const r of own) expect(dependencies[r.name]).toContain(`${host[i - 1]}-release`);
      else for (const r of own) expect(dependencies[r.name].filter((d) => /-\d-release$/.test(d))).toEqual([]);
    }
    expect(outputs.hostAddresses.value).toEqual(host.map((_, i) => `10.0.7.${i + 1}`));
    expect(outputs.sshKnownHosts.value).toBe(host.map((_, i) => `[10.0.7.${i + 1}]:2222 ${TEST_FLEET_HOST_KEYS[i]}`).join('\n'));
    expect(outputs.databaseEndpoint.value).toBe('db.example.org:6432');
    expect(outputs.databaseUrl.secret).toBe(true);
  });

  test("the database's password reaches no command line, only the app's environment file on stdin (a secret)", async () => {
    const { resources } = await run(2);
    for (const r of commands(resources)) {
      expect(JSON.stringify({ ...r.inputs, stdin: undefined })).not.toContain(EXTERNAL_DB_PASSWORD);
      if (JSON.stringify(r.inputs.stdin ?? '').includes(EXTERNAL_DB_PASSWORD)) expect(r.inputs.stdin[SECRET_SIG]).toBe(SECRET_SIG_VALUE);
    }
    expect(commands(resources).filter((r) => JSON.stringify(r.inputs.stdin ?? '').includes(EXTERNAL_DB_PASSWORD)).map((r) => r.name)).toEqual(['cemetery-dev-release', 'cemetery-dev-2-release']);
  });

  test("a password with the characters a URL allows reaches the app unchanged through the hosts' environment file", async () => {
    const url = "postgres://cemetery:p'a$s!&(x)*+,;=%40%23@db.example.org/register?sslmode=verify-full&application_name=cemetery";
    const { resources } = await run(2, { 'cemetery-backend:databaseUrl': url });
    const env = resources.find((r) => r.name === 'cemetery-dev-2-release')!.inputs.stdin.value as string;
    // As the app reads it (app/src/env-file.ts).
    expect(parseEnv(env).DATABASE_URL).toBe(url);
  });

  const refusals: Array<[string, Record<string, string | undefined>, RegExp]> = [
    ['sshHosts beside sshHost', { 'cemetery-backend:sshHost': '10.0.7.9' }, /cemetery-backend:sshHosts = .*: lists every host with its key: remove sshHost and sshHostKey/],
    ['a host listed twice', { 'cemetery-backend:sshHosts': JSON.stringify([{ host: 'a.example.org', hostKey: TEST_FLEET_HOST_KEYS[0] }, { host: 'A.example.org', hostKey: TEST_FLEET_HOST_KEYS[1] }]) }, /cemetery-backend:sshHosts = .*: lists a\.example\.org twice: expected each host once/],
    ['a host without its key', { 'cemetery-backend:sshHosts': JSON.stringify([{ host: 'a.example.org', hostKey: TEST_FLEET_HOST_KEYS[0] }, { host: 'b.example.org' }]) }, /cemetery-backend:sshHosts\.1\.hostKey = undefined: expected the host's public key/],
    ['no balancer', { 'cemetery-backend:balancerCidrs': undefined }, /cemetery-backend:balancerCidrs = undefined: required with sshHosts: the addresses your load balancer connects to the hosts from/],
    ['each host its own PostgreSQL', { 'cemetery-backend:databaseMode': 'onHost', 'cemetery-backend:databaseUrl': undefined }, /cemetery-backend:databaseMode = "onHost": 2 hosts share one register, and each host's own PostgreSQL would be a register of its own: expected external/],
    ['no database URL for an up', { 'cemetery-backend:databaseUrl': undefined }, /cemetery-backend:databaseUrl = \[secret\]: required with databaseMode external for pulumi up/],
    ['a balancer range that is not a CIDR', { 'cemetery-backend:balancerCidrs': JSON.stringify(['10.0.5.0/33']) }, /cemetery-backend:balancerCidrs\.0 = "10\.0\.5\.0\/33": expected your load balancer's IPv4 ranges/],
    // The app reads ::ffff:0:0/96 as all of IPv4 (Caddy does not): any client could name its own address.
    ['an IPv4-mapped IPv6 range', { 'cemetery-backend:balancerCidrs': JSON.stringify(['10.0.5.0/24', '::ffff:0:0/96']) }, /cemetery-backend:balancerCidrs\.1 = "::ffff:0:0\/96": expected your load balancer's IPv4 ranges, each a \/16 or narrower, such as 10\.0\.5\.0\/24: "::ffff:0:0\/96" is IPv6/],
    // A neighbour on a shared private network could reach port 80 and claim any client address.
    ['a private range wider than a /16', { 'cemetery-backend:balancerCidrs': JSON.stringify(['10.0.0.0/8']) }, /cemetery-backend:balancerCidrs\.0 = "10\.0\.0\.0\/8": .*"10\.0\.0\.0\/8" is wider than a \/16: any machine in it could pass as the balancer/],
    ['one machine under two names', { 'cemetery-backend:sshHosts': JSON.stringify([{ host: 'a.example.org', hostKey: TEST_FLEET_HOST_KEYS[0] }, { host: 'a.example.org.', hostKey: TEST_FLEET_HOST_KEYS[1] }]) }, /cemetery-backend:sshHosts = .*: lists a\.example\.org twice/],
    ['two hosts with one host key', { 'cemetery-backend:sshHosts': JSON.stringify([{ host: 'a.example.org', hostKey: TEST_FLEET_HOST_KEYS[0] }, { host: '10.0.7.2', hostKey: TEST_FLEET_HOST_KEYS[0] }]) }, /cemetery-backend:sshHosts = .*: a\.example\.org and 10\.0\.7\.2 have one host key: one machine, counted twice/],
    ['a balancer open to the world (anyone believed about the client)', { 'cemetery-backend:balancerCidrs': JSON.stringify(['0.0.0.0/1', '128.0.0.0/1']) }, /cemetery-backend:balancerCidrs\.0 = "0\.0\.0\.0\/1": .*is wider than a \/16/],
    ['a certificate of its own behind the balancer', { 'cemetery-backend:certificateIssuer': 'internal' }, /cemetery-backend:certificateIssuer = "internal": your load balancer holds the certificate: remove certificateIssuer/],
    ['restoreFrom', { 'cemetery-backend:restoreFrom': 'latest' }, /cemetery-backend:restoreFrom = "latest": an external database is restored by whoever runs it/],
    ['backupRetentionDays', { 'cemetery-backend:backupRetentionDays': '7' }, /cemetery-backend:backupRetentionDays = "7": an external database's backups are kept by whoever runs it/],
    ['the hosts counted otherwise', { 'cemetery-backend:hosts': '3' }, /cemetery-backend:hosts = "3": target ssh provisions the hosts it is given \(2\)/],
  ];
  test.each(refusals)('refused, naming the key: %s', async (_what, change, message) => {
    await expect(run(2, change)).rejects.toThrow(message);
  });

  // The URL goes into the hosts' environment file a line a setting: a line break would add settings of its own.
  test.each([
    ['a second line (a setting of its own in the environment file)', `${EXTERNAL_DB_URL}\nPUBLIC_READS=false`, 'expected one line without spaces or control characters'],
    ['a # (the environment file would cut it there)', EXTERNAL_DB_URL.replace('?', '#x?'), 'expected no # (the hosts\' environment file would cut the URL there; in a password, write it %23)'],
    ['no TLS', EXTERNAL_DB_URL.replace('verify-full', 'disable'), 'expected sslmode=verify-full'],
    // pg-connection-string keeps the last of a repeated key: this one would connect without TLS.
    ['verify-full, then disable', `${EXTERNAL_DB_URL}&sslmode=disable`, 'expected each setting once, got sslmode twice'],
    ['no-verify', EXTERNAL_DB_URL.replace('verify-full', 'no-verify'), 'expected sslmode=verify-full'],
    ['ssl=false beside sslmode', `${EXTERNAL_DB_URL}&ssl=false`, 'expected no ssl= in the query'],
    ['another host in the query', `${EXTERNAL_DB_URL}&host=evil.example.org`, 'expected no host= in the query'],
    ['TLS without checking the server', EXTERNAL_DB_URL.replace('verify-full', 'require'), 'expected sslmode=verify-full'],
    ['no password', 'postgres://cemetery@db.example.org/register?sslmode=verify-full', 'expected the user and password in it'],
    ['another scheme', EXTERNAL_DB_URL.replace('postgres:', 'mysql:'), 'expected postgres:// or postgresql://'],
    ['no database name', 'postgres://cemetery:pw@db.example.org/?sslmode=verify-full', "expected the database's name after the host"],
  ])('a databaseUrl with %s is refused without quoting it', async (_what, url, message) => {
    const refused = run(2, { 'cemetery-backend:databaseUrl': url });
    await expect(refused).rejects.toThrow(`cemetery-backend:databaseUrl = [secret]: ${message}`);
    await expect(refused).rejects.not.toThrow(/ExternalDb|pw@/);
  });

  test.each([
    ['dev', 'target aws on an external database', { 'cemetery-backend:databaseMode': 'external', 'cemetery-backend:databaseUrl': EXTERNAL_DB_URL }, /cemetery-backend:databaseMode = "external": target aws keeps the register in RDS or on its host: expected rds or onHost/],
    ['dev', 'target aws given sshHosts', { 'cemetery-backend:sshHosts': JSON.stringify([{ host: 'a', hostKey: TEST_FLEET_HOST_KEYS[0] }, { host: 'b', hostKey: TEST_FLEET_HOST_KEYS[1] }]) }, /cemetery-backend:sshHosts = .*: target aws creates its hosts: remove sshHosts/],
    ['dev', 'target aws given balancerCidrs', { 'cemetery-backend:balancerCidrs': '["10.0.5.0/24"]' }, /cemetery-backend:balancerCidrs = .*: target aws makes its own load balancer/],
    ['dev', 'databaseUrl with RDS', { 'cemetery-backend:databaseUrl': EXTERNAL_DB_URL }, /cemetery-backend:databaseUrl = \[secret\]: databaseMode rds makes its own database: remove databaseUrl, or use databaseMode external/],
  ])('%s: %s is refused, naming the key', async (stack, _what, override, message) => {
    await expect(runProgram(stack, { ...withUserSecrets(STACKS[stack]), ...override })).rejects.toThrow(message);
  });

  test('a preview without databaseUrl runs, its database unknown', async () => {
    const config = sshFleetConfig(2, { 'cemetery-backend:databaseUrl': undefined });
    const { createStack } = await import('../infra/stack');
    const { resources, outputs } = await runProgram('local', config, () => createStack(parseProjectConfig(config, 'local', { preview: true })));
    expect(ofType(resources, 'command:remote:Command').map((r) => r.name)).toContain('cemetery-dev-2-release');
    expect(outputs.appUrl).toEqual({ value: 'https://cemetery.test', secret: false });
  });

  test("prod on an external database is refused: its backups are not the stack's to see", () => {
    expect(() => parseProjectConfig(prodOnHostConfig({ 'cemetery-backend:databaseMode': 'external', 'cemetery-backend:databaseUrl': EXTERNAL_DB_URL, 'cemetery-backend:backupBucket': undefined, 'cemetery-backend:dataVolumeDevice': undefined, 'cemetery-backend:backupS3Region': undefined, 'cemetery-backend:backupS3AccessKeyId': undefined, 'cemetery-backend:backupS3SecretAccessKey': undefined, 'cemetery-backend:backupRetentionDays': undefined }), 'prod')).toThrow(
      /cemetery-backend:databaseMode = "external": prod keeps its register in RDS, or on the host with continuous backups on a disk of its own/,
    );
  });

  test('the policy pack refuses existing hosts that each run PostgreSQL of their own', async () => {
    const { createStack } = await import('../infra/stack');
    const config = sshFleetConfig(2);
    const { resources } = await runProgram('local', config, () => createStack({ ...parseProjectConfig(config, 'local'), databaseMode: 'onHost' }));
    expect(violations(resources, 'local')).toEqual([
      'fleet-shares-one-database: 2 hosts run PostgreSQL of their own (cemetery-dev-postgres, cemetery-dev-2-postgres): each would keep a register of its own (cemetery-backend:databaseMode: rds, or external with sshHosts)',
    ]);
  });
});
