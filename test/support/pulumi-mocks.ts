/**
 * Runs the real Pulumi program (infra/) under Pulumi's mocks: the AWS API is
 * the one part that cannot be reached from here. Records every resource the
 * program registers, with its inputs, and resolves the stack outputs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import { PROJECT, type StackConfig } from '../../infra/config';
import { ROOT } from './db';
import { ed25519KeyPair } from './ssh-keypair';

export type RecordedResource = { type: string; name: string; inputs: Record<string, any> };

/** How an output the engine keeps secret appears in a resource's recorded inputs (the SDK's secret signature). */
export const SECRET_SIG = '4dabf18193072939515e22adb298388d';
export const SECRET_SIG_VALUE = '1b47061264138c4ac30d75fd1eb44270';
export const MOCK_PASSWORD = 'MockGeneratedPassword0123456789';
export const MOCK_PUBLIC_IP = '203.0.113.10';
export const MOCK_ACCOUNT_ID = '123456789012';
/** RDS instances in the mocked account, for restores (aws.rds.getInstance). */
export const MOCK_RDS_INSTANCES: Record<string, { engine: string; engineVersion: string; backupRetentionPeriod: number }> = {
  'cemetery-prod-pg-1a2b3c4': { engine: 'postgres', engineVersion: '17.6', backupRetentionPeriod: 14 },
  'cemetery-dev-pg-nobackup': { engine: 'postgres', engineVersion: '17.6', backupRetentionPeriod: 0 },
  'legacy-pg16': { engine: 'postgres', engineVersion: '16.4', backupRetentionPeriod: 7 },
};

/** aws.rds.getInstance in the mocked account: one of MOCK_RDS_INSTANCES, or an error as for a missing instance. */
export function mockRdsGetInstance(inputs: Record<string, unknown>) {
  const source = MOCK_RDS_INSTANCES[inputs.dbInstanceIdentifier as string];
  if (!source) throw new Error(`mock: no RDS DB Instance ${inputs.dbInstanceIdentifier}`);
  return { dbInstanceIdentifier: inputs.dbInstanceIdentifier, ...source };
}
/** The shared staging network (stack staging-shared), as the tag lookup finds it. */
export const MOCK_SHARED_VPC = 'vpc-0sharedstaging';
export const MOCK_SHARED_SUBNETS = { public: ['subnet-0sharedpublica'], private: ['subnet-0sharedprivateb', 'subnet-0sharedprivatea'] };

/** Per-user values the stack files leave to `pulumi config set` (see README): a real deploy key pair (config checks that they match). */
const deployKey = ed25519KeyPair({ comment: 'test@cemetery' });
export const TEST_SSH_PUBLIC_KEY = deployKey.public;
export const TEST_SSH_PRIVATE_KEY = deployKey.private;
/** target ssh: the existing host's key, as `ssh-keyscan` prints it (no comment). */
export const TEST_SSH_HOST_KEY = ed25519KeyPair().public.split(' ').slice(0, 2).join(' ');
/** target aws: the host key @pulumi/tls would generate (a real one, in OpenSSH form). */
export const MOCK_HOST_KEY = ed25519KeyPair();
const USER_SECRETS = { sshPublicKey: TEST_SSH_PUBLIC_KEY, sshPrivateKey: TEST_SSH_PRIVATE_KEY };

/** Every Pulumi.<stack>.yaml at the top level, as raw config (`key -> string`, as Pulumi stores it). */
export function stackFiles(): Record<string, Record<string, string>> {
  const stacks: Record<string, Record<string, string>> = {};
  for (const file of readdirSync(ROOT).filter((f) => /^Pulumi\.[\w-]+\.yaml$/.test(f))) {
    const doc = parse(readFileSync(path.join(ROOT, file), 'utf8')) as { config?: Record<string, unknown> };
    const config: Record<string, string> = {};
    for (const [key, value] of Object.entries(doc.config ?? {})) {
      if (value && typeof value === 'object' && 'secure' in value) continue; // a user's own encrypted value
      config[key] = typeof value === 'string' ? value : JSON.stringify(value);
    }
    stacks[file.split('.')[1]] = config;
  }
  return stacks;
}

export const withUserSecrets = (config: Record<string, string>): Record<string, string> => ({
  ...Object.fromEntries(Object.entries(USER_SECRETS).map(([k, v]) => [`${PROJECT}:${k}`, v])),
  ...(config[`${PROJECT}:target`] === 'ssh' ? { [`${PROJECT}:sshHostKey`]: TEST_SSH_HOST_KEY } : {}),
  ...config,
});

/** Backups of on-host PostgreSQL to S3 (backupBucket), as a stack on target ssh sets them. */
export const S3_TEST_SECRET = 'wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY0';
export const BACKUPS_CONFIG: Record<string, string> = {
  [`${PROJECT}:backupBucket`]: 'cemetery-backups',
  [`${PROJECT}:backupS3Region`]: 'eu-central-1',
  [`${PROJECT}:backupS3AccessKeyId`]: 'AKIAEXAMPLE0123456',
  [`${PROJECT}:backupS3SecretAccessKey`]: S3_TEST_SECRET,
};

/** `config` with the keys in `change` set, or removed where undefined. */
export function changed(config: Record<string, string>, change: Record<string, string | undefined>): Record<string, string> {
  const out = { ...config };
  for (const [k, v] of Object.entries(change)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * Prod on an existing host (target ssh): its register in PostgreSQL on that host, backed up (backupBucket), on a disk
 * of its own (dataVolumeDevice); the prod stack file's aws-only keys left out. `change` as in changed().
 */
export function prodOnHostConfig(change: Record<string, string | undefined> = {}): Record<string, string> {
  const prod = changed(stackFiles().prod, { [`${PROJECT}:sshAllowedCidrs`]: undefined, [`${PROJECT}:hostedZoneId`]: undefined, [`${PROJECT}:alertEmail`]: undefined });
  return changed(
    withUserSecrets({
      ...prod,
      ...BACKUPS_CONFIG,
      [`${PROJECT}:target`]: 'ssh',
      [`${PROJECT}:hosts`]: '1',
      [`${PROJECT}:databaseMode`]: 'onHost',
      [`${PROJECT}:sshHost`]: 'register.example.org',
      [`${PROJECT}:dataVolumeDevice`]: stackFiles().local[`${PROJECT}:dataVolumeDevice`],
    }),
    change,
  );
}

function mockState(type: string, name: string, inputs: Record<string, any>): Record<string, any> {
  switch (type) {
    case 'aws:ec2/eip:Eip':
      return { ...inputs, publicIp: MOCK_PUBLIC_IP };
    case 'aws:ec2/instance:Instance':
      // Without an Elastic IP, the address the instance got at launch.
      return { ...inputs, publicIp: inputs.associatePublicIpAddress ? MOCK_PUBLIC_IP : '' };
    case 'aws:rds/instance:Instance':
      // identifier: Pulumi's autoname (name and a random suffix).
      return { ...inputs, identifier: inputs.identifier ?? `${name}-1a2b3c4`, address: `${name}.cluster-mock.eu-central-1.rds.amazonaws.com`, port: inputs.port ?? 5432 };
    case 'random:index/randomPassword:RandomPassword':
      return { ...inputs, result: MOCK_PASSWORD };
    case 'aws:ec2/keyPair:KeyPair':
      return { ...inputs, keyName: inputs.keyName ?? `${name}-key` };
    case 'tls:index/privateKey:PrivateKey':
      return { ...inputs, privateKeyOpenssh: MOCK_HOST_KEY.private, publicKeyOpenssh: `${MOCK_HOST_KEY.public}\n` };
    // The load balancer (infra/balancer.ts): names and ARNs as AWS forms them.
    case 'aws:lb/loadBalancer:LoadBalancer':
      return { ...inputs, arn: `arn:aws:elasticloadbalancing:eu-central-1:${MOCK_ACCOUNT_ID}:loadbalancer/app/${name}/50dc6c495c0c9188`, arnSuffix: `app/${name}/50dc6c495c0c9188`, dnsName: `${name}-1234567890.eu-central-1.elb.amazonaws.com`, zoneId: 'Z215JYRZR1TBD5' };
    case 'aws:lb/targetGroup:TargetGroup':
      return { ...inputs, arn: `arn:aws:elasticloadbalancing:eu-central-1:${MOCK_ACCOUNT_ID}:targetgroup/${name}/943f017f100becff`, arnSuffix: `targetgroup/${name}/943f017f100becff` };
    case 'aws:acm/certificate:Certificate':
      return {
        ...inputs,
        arn: `arn:aws:acm:eu-central-1:${MOCK_ACCOUNT_ID}:certificate/${name}`,
        domainValidationOptions: [{ domainName: inputs.domainName, resourceRecordName: `_a79865eb4cd1a6ab990a45779b4e0b96.${inputs.domainName}.`, resourceRecordType: 'CNAME', resourceRecordValue: '_424c7224e9b0146f9a8808af955727d0.acm-validations.aws.' }],
      };
    case 'aws:acm/certificateValidation:CertificateValidation':
      return { ...inputs, certificateArn: inputs.certificateArn };
    case 'aws:route53/record:Record':
      return { ...inputs, fqdn: inputs.name };
    case 'aws:sns/topic:Topic':
      return { ...inputs, arn: `arn:aws:sns:eu-central-1:${MOCK_ACCOUNT_ID}:${name}` };
    case 'aws:rds/subnetGroup:SubnetGroup':
      return { ...inputs, name: inputs.name ?? name };
    // The bootstrap program (infra/bootstrap), and on-host backups on target aws (infra/backup-bucket.ts): ARNs as AWS forms them.
    case 'aws:s3/bucket:Bucket':
      return { ...inputs, arn: `arn:aws:s3:::${inputs.bucket}` };
    case 'aws:kms/key:Key':
      return { ...inputs, keyId: `${name}-key-id`, arn: `arn:aws:kms:eu-central-1:${MOCK_ACCOUNT_ID}:key/${name}-key-id` };
    case 'aws:iam/openIdConnectProvider:OpenIdConnectProvider':
      return { ...inputs, arn: `arn:aws:iam::${MOCK_ACCOUNT_ID}:oidc-provider/${String(inputs.url).replace('https://', '')}` };
    // Named, or (the app's host role and its instance profile: infra/backup-bucket.ts) autonamed as Pulumi does.
    case 'aws:iam/role:Role':
    case 'aws:iam/instanceProfile:InstanceProfile': {
      const named = inputs.name ?? `${name}-5e1f2a3`;
      return { ...inputs, name: named, arn: `arn:aws:iam::${MOCK_ACCOUNT_ID}:${type === 'aws:iam/role:Role' ? 'role' : 'instance-profile'}/${named}` };
    }
    default:
      return inputs;
  }
}

async function resolve(output: pulumi.Output<unknown>): Promise<{ value: unknown; secret: boolean }> {
  // Output.promise is internal too; unlike apply, it rejects when the program throws inside an apply.
  const value = await (output as unknown as { promise: () => Promise<unknown> }).promise();
  // Output.isSecret is internal but stable: what `pulumi stack output` shows as [secret].
  const secret = await (output as unknown as { isSecret: Promise<boolean> }).isSecret;
  return { value, secret };
}

type StackOutputs = Record<string, pulumi.Output<unknown> | unknown>;

/**
 * Runs `program` as stack `stack` with `config` (full keys, e.g. "aws:region").
 * `program` defaults to the real one: validate the config, then create the stack.
 */
async function runProgramNow(
  stack: string,
  config: Record<string, string>,
  program?: (cfg?: StackConfig) => StackOutputs,
  { preview = false, project = PROJECT }: { preview?: boolean; project?: string } = {},
): Promise<{
  resources: RecordedResource[];
  dependencies: Record<string, string[]>;
  /** Each resource's ignoreChanges option (the mocks API does not pass options either). */
  ignoreChanges: Record<string, string[]>;
  /** The resources registered with retainOnDelete (Pulumi forgets them without deleting them). */
  retainedOnDelete: string[];
  /** The resources registered with protect (pulumi destroy refuses them), and with deleteBeforeReplace. */
  protectedResources: string[];
  deletedBeforeReplace: string[];
  outputs: Record<string, { value: unknown; secret: boolean }>;
}> {
  const resources: RecordedResource[] = [];
  const dependencies: Record<string, string[]> = {};
  const ignoreChanges: Record<string, string[]> = {};
  const retainedOnDelete: string[] = [];
  const protectedResources: string[] = [];
  const deletedBeforeReplace: string[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        resources.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: mockState(args.type, args.name, args.inputs) };
      },
      call: (args) => {
        if (args.token === 'aws:index/getAvailabilityZones:getAvailabilityZones') return { names: ['eu-central-1a', 'eu-central-1b', 'eu-central-1c'] };
        if (args.token === 'aws:index/getCallerIdentity:getCallerIdentity') return { accountId: MOCK_ACCOUNT_ID, arn: `arn:aws:iam::${MOCK_ACCOUNT_ID}:user/admin`, userId: 'AIDAMOCK' };
        if (args.token === 'aws:rds/getInstance:getInstance') return mockRdsGetInstance(args.inputs);
        if (args.token === 'aws:ec2/getSubnet:getSubnet') return { id: args.inputs.id, availabilityZone: 'eu-central-1a' };
        // An environment's backup key (the bootstrap's alias/cemetery-<env>-backups).
        if (args.token === 'aws:kms/getAlias:getAlias') {
          const keyName = String(args.inputs.name).replace('alias/cemetery-', '');
          return { name: args.inputs.name, arn: `arn:aws:kms:eu-central-1:${MOCK_ACCOUNT_ID}:${String(args.inputs.name)}`, targetKeyId: `${keyName}-key-id`, targetKeyArn: `arn:aws:kms:eu-central-1:${MOCK_ACCOUNT_ID}:key/${keyName}-key-id` };
        }
        if (args.token === 'aws:ec2/getAmi:getAmi') return { id: 'ami-0debian13mock', name: 'debian-13-amd64-20261101-2100' };
        if (args.token === 'aws:ec2/getVpcs:getVpcs') {
          expect(args.inputs.tags).toEqual({ SharedNetwork: 'cemetery-backend-staging' });
          return { ids: [MOCK_SHARED_VPC] };
        }
        if (args.token === 'aws:ec2/getSubnets:getSubnets') {
          const filter = (name: string) => (args.inputs.filters as Array<{ name: string; values: string[] }>).find((f) => f.name === name)?.values;
          expect(filter('vpc-id')).toEqual([MOCK_SHARED_VPC]);
          return { ids: MOCK_SHARED_SUBNETS[filter('tag:Tier')![0] as 'public' | 'private'] };
        }
        throw new Error(`unmocked call ${args.token}`);
      },
    },
    project,
    stack,
    preview,
  );
  pulumi.runtime.setAllConfig(config, [`${PROJECT}:sshPrivateKey`]);
  // The mocks API does not pass a resource's dependencies; the request to the monitor has them.
  const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource: (req: any, cb: unknown) => unknown };
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    dependencies[req.getName()] = (req.getDependenciesList() as string[]).map((urn) => urn.split('::').pop()!);
    ignoreChanges[req.getName()] = req.getIgnorechangesList() as string[];
    if (req.getRetainondelete()) retainedOnDelete.push(req.getName());
    if (req.getProtect()) protectedResources.push(req.getName());
    if (req.getDeletebeforereplace()) deletedBeforeReplace.push(req.getName());
    return register(req, cb);
  };

  let outputs: StackOutputs;
  if (program) {
    outputs = program();
  } else {
    // Imported here so that each run sees the config just set.
    const { createStack, loadStackConfig } = await import('../../infra/stack');
    outputs = createStack(loadStackConfig());
  }
  const resolved: Record<string, { value: unknown; secret: boolean }> = {};
  for (const [key, value] of Object.entries(outputs)) {
    resolved[key] = pulumi.Output.isInstance(value) ? await resolve(value) : { value, secret: false };
  }
  // Let the components' late registerOutputs calls land before the next run swaps the mock monitor.
  await pulumi.runtime.disconnect();
  return { resources, dependencies, ignoreChanges, retainedOnDelete, protectedResources, deletedBeforeReplace, outputs: resolved };
}

/**
 * The program under the mocks, as `pulumi up` runs it. The mocks are one per process (setMocks swaps a global
 * monitor), so runs queue: the VM tier's two stacks may ask at once.
 */
let programsBefore: Promise<unknown> = Promise.resolve();
export function runProgram(...args: Parameters<typeof runProgramNow>): ReturnType<typeof runProgramNow> {
  const run = programsBefore.then(() => runProgramNow(...args));
  programsBefore = run.catch(() => undefined);
  return run;
}

/** target ssh, several existing hosts: their SSH host keys, as `ssh-keyscan` prints them. */
export const TEST_FLEET_HOST_KEYS = [1, 2, 3, 4].map(() => ed25519KeyPair().public.split(' ').slice(0, 2).join(' '));
/** The external database's password, to look for where it must not be. */
export const EXTERNAL_DB_PASSWORD = 'ExternalDbPassw0rdNotForLogs';
export const EXTERNAL_DB_URL = `postgres://cemetery:${EXTERNAL_DB_PASSWORD}@db.example.org:6432/register?sslmode=verify-full`;

/**
 * The local stack (target ssh) as a fleet of `hosts` existing hosts (sshHosts) behind the user's balancer
 * (balancerCidrs), sharing an external database; `change` as in changed().
 */
export function sshFleetConfig(hosts: number, change: Record<string, string | undefined> = {}): Record<string, string> {
  const local = changed(withUserSecrets(stackFiles().local), {
    [`${PROJECT}:sshHost`]: undefined,
    [`${PROJECT}:sshHostKey`]: undefined,
    [`${PROJECT}:dataVolumeDevice`]: undefined,
    [`${PROJECT}:certificateIssuer`]: undefined,
  });
  return changed(
    {
      ...local,
      [`${PROJECT}:databaseMode`]: 'external',
      [`${PROJECT}:databaseUrl`]: EXTERNAL_DB_URL,
      [`${PROJECT}:sshHosts`]: JSON.stringify(TEST_FLEET_HOST_KEYS.slice(0, hosts).map((hostKey, i) => ({ host: `10.0.7.${i + 1}`, hostKey }))),
      [`${PROJECT}:balancerCidrs`]: JSON.stringify(['10.0.5.0/24']),
    },
    change,
  );
}
