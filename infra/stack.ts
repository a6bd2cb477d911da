import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { Alarms } from './alarms';
import { parseProjectConfig, StackConfigError, vcpusOfInstanceType, type StackConfig } from './config';
import { Database } from './database';
import { Host } from './host';
import { Network, SHARED_NETWORK_TAG, sharedNetwork, type NetworkRefs } from './network';
import { Provisioning } from './provision';
import { knownHostsFile, knownHostsLine, sshCommandWords } from './ssh-access';
import { baseTags } from './tags';

/** Reads this stack's config as Pulumi holds it and validates it; a bad value stops the program with one clear message. */
export function loadStackConfig(): StackConfig {
  try {
    return parseProjectConfig(pulumi.runtime.allConfig(), pulumi.getStack(), { preview: pulumi.runtime.isDryRun() });
  } catch (err) {
    // RunError: Pulumi prints the message alone, without a stack trace.
    if (err instanceof StackConfigError) throw new pulumi.RunError(err.message);
    throw err;
  }
}

/** The whole stack for one environment (or, for staging-shared, the shared network alone); returns its outputs. */
export function createStack(cfg: StackConfig) {
  return cfg.network === 'provideShared' ? createSharedNetwork(cfg) : createAppStack(cfg);
}

/** Stack outputs of either kind, for the program's exports. */
export type StackOutputs = Partial<ReturnType<typeof createAppStack> & ReturnType<typeof createSharedNetwork>>;

/** The long-lived network that every staging stack shares (stack staging-shared). */
function createSharedNetwork(cfg: StackConfig) {
  const network = new Network(`cemetery-${cfg.environment}`, { tags: { ...baseTags(cfg.environment), [SHARED_NETWORK_TAG.key]: SHARED_NETWORK_TAG.value } });
  return { environment: cfg.environment, vpcId: network.vpcId, publicSubnetId: network.publicSubnetId, privateSubnetIds: pulumi.all(network.privateSubnetIds) };
}

function createAppStack(cfg: StackConfig) {
  const tags = baseTags(cfg.environment);
  const name = `cemetery-${cfg.environment}`;
  const machine = cfg.target === 'aws' ? awsMachine(name, cfg, tags) : existingMachine(cfg);

  const database = new Database(name, {
    mode: cfg.databaseMode,
    vpcId: machine.vpcId,
    privateSubnetIds: machine.privateSubnetIds,
    hostSecurityGroupId: machine.securityGroupId,
    instanceClass: cfg.rdsInstanceClass,
    engineVersion: cfg.postgresVersion,
    allocatedStorageGiB: cfg.allocatedStorageGiB,
    maxAllocatedStorageGiB: cfg.maxAllocatedStorageGiB,
    backupRetentionDays: cfg.backupRetentionDays,
    multiAz: cfg.multiAz,
    deletionProtection: cfg.deletionProtection,
    keepOnDestroy: cfg.environment === 'prod',
    restore: cfg.restoreFrom && cfg.restoreSourceDatabase ? { source: cfg.restoreSourceDatabase, time: cfg.restoreFrom } : undefined,
    tags,
  });

  // A preview connects to nothing, so it runs without the private key (pull
  // requests and read-only roles never hold it). Its steps then ignore the
  // unknown connection instead of showing every step as changed.
  const keyless = cfg.sshPrivateKey === undefined;
  const provisioning = new Provisioning(
    name,
    {
      host: machine.address,
      port: cfg.sshPort,
      user: cfg.sshUser,
      privateKey: keyless ? pulumi.output<string>(pulumi.unknown as unknown as string) : cfg.sshPrivateKey!,
      machineId: machine.id,
      hostKey: machine.sshHostKey,
      // A new EC2 host takes minutes to boot and start sshd; an existing one is up (and a wrong host key then fails in seconds).
      dialErrorLimit: cfg.target === 'aws' ? 60 : 10,
      cfg,
      databasePassword: database.password,
      databaseUrl: database.url,
      databaseCa: database.ca,
      beforeMigrations: cfg.snapshotBeforeMigrations ? (newest) => database.snapshotBefore(newest) : undefined,
    },
    // `transformations` run in the SDK (mocks included); they reach the component's children.
    keyless ? { transformations: [({ props, opts }) => ({ props, opts: pulumi.mergeOptions(opts, { ignoreChanges: ['connection'] }) })] } : {},
  );

  const alarms =
    cfg.target === 'aws'
      ? new Alarms(name, {
          stack: pulumi.getStack(),
          region: cfg.region!,
          instanceId: machine.id,
          database: database.identifier && {
            identifier: database.identifier,
            allocatedStorageGiB: cfg.allocatedStorageGiB,
            workers: cfg.pm2Instances === 'max' ? vcpusOfInstanceType(cfg.instanceType) : cfg.pm2Instances,
          },
          alertEmail: cfg.alertEmail,
          tags,
        })
      : undefined;

  return {
    environment: cfg.environment,
    publicIp: machine.address,
    appUrl: cfg.domainName ? pulumi.output(`https://${cfg.domainName}`) : pulumi.interpolate`http://${machine.address}`,
    // Verifies the host from the first connection: `pulumi stack output sshKnownHosts > ~/.ssh/cemetery-<stack>.known_hosts` once.
    sshCommand: machine.address.apply((host) => sshCommandWords({ user: cfg.sshUser, host, port: cfg.sshPort, knownHosts: knownHostsFile(pulumi.getStack()) }).join(' ')),
    sshKnownHosts: pulumi.all([machine.address, machine.sshHostKey]).apply(([host, key]) => knownHostsLine(host, cfg.sshPort, key)),
    instanceId: machine.id,
    databaseEndpoint: pulumi.interpolate`${database.host}:${database.port}`,
    /** RDS: the instance's identifier, what another stack's restoreSourceDatabase names. */
    databaseIdentifier: database.identifier,
    databaseUrl: database.url,
    releaseId: provisioning.releaseId,
    /** target aws: the alarms' SNS topic (subscribe more than alertEmail to it). */
    alertTopicArn: alarms?.topicArn,
  };
}

type Machine = {
  id: pulumi.Output<string>;
  address: pulumi.Output<string>;
  vpcId: pulumi.Input<string>;
  privateSubnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  sshHostKey: pulumi.Input<string>;
};

/** target aws: a new EC2 host, in the stack's own network or the shared staging one. */
function awsMachine(name: string, cfg: StackConfig, tags: Record<string, string>): Machine {
  const network: NetworkRefs = cfg.network === 'shared' ? sharedNetwork() : new Network(name, { tags });
  const host = new Host(name, {
    vpcId: network.vpcId,
    subnetId: network.publicSubnetId,
    instanceType: cfg.instanceType,
    rootVolumeSizeGiB: cfg.rootVolumeSizeGiB,
    sshAllowedCidrs: cfg.sshAllowedCidrs!,
    sshPublicKey: cfg.sshPublicKey!,
    publicAddress: cfg.network === 'shared' ? 'launch' : 'elastic',
    https: cfg.domainName !== undefined,
    tags,
  });
  if (cfg.hostedZoneId) {
    // The name follows the host's address; a user without a Route 53 zone points the name at publicIp by hand.
    new aws.route53.Record(`${name}-dns`, { zoneId: cfg.hostedZoneId, name: cfg.domainName!, type: 'A', ttl: 300, records: [host.publicIp] });
  }
  return {
    id: host.instanceId,
    address: host.publicIp,
    vpcId: network.vpcId,
    privateSubnetIds: network.privateSubnetIds,
    securityGroupId: host.securityGroupId,
    sshHostKey: host.sshHostKey,
  };
}

/** target ssh: an existing Debian host; nothing is created in a cloud. */
function existingMachine(cfg: StackConfig): Machine {
  const address = pulumi.output(cfg.sshHost!);
  // Required for `up` (config.ts); a preview connects to nothing and may run without it.
  const sshHostKey = cfg.sshHostKey ?? pulumi.output<string>(pulumi.unknown as unknown as string);
  return { id: pulumi.output(`${cfg.sshHost}:${cfg.sshPort}`), address, vpcId: '', privateSubnetIds: [], securityGroupId: '', sshHostKey };
}
