import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { Alarms } from './alarms';
import { BackupBucket } from './backup-bucket';
import { Balancer } from './balancer';
import { backupRepoPath, balanced, onHostBackups, onHostDataVolume, parseProjectConfig, sshTargets, StackConfigError, vcpusOfInstanceType, type StackConfig } from './config';
import { Database } from './database';
import { Host, machineName, type Machine } from './host';
import { Network, SHARED_NETWORK_TAG, sharedNetwork, type NetworkRefs } from './network';
import { currentRelease, Provisioning } from './provision';
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
  const fleet = cfg.target === 'aws' ? awsFleet(name, cfg, tags) : existingHosts(cfg);
  const first = fleet.machines[0];

  const database = new Database(name, {
    mode: cfg.databaseMode,
    externalUrl: cfg.databaseUrl,
    vpcId: fleet.vpcId,
    privateSubnetIds: fleet.privateSubnetIds,
    hostSecurityGroupId: fleet.securityGroupId,
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
  // Canary first: the first host releases (and applies the migrations) before any other; each next host
  // changes only once the one before serves the release, so a release refused on a host stops the rollout there.
  const releaseId = currentRelease();
  let previousRelease: pulumi.Resource | undefined;
  fleet.machines.forEach((machine, i) => {
    const provisioning = new Provisioning(
      machineName(name, i),
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
        beforeMigrations: i === 0 && cfg.snapshotBeforeMigrations ? (newest) => database.snapshotBefore(newest) : undefined,
        after: previousRelease,
        releaseId,
        dataVolume: machine.dataVolume,
      },
      // `transformations` run in the SDK (mocks included); they reach the component's children.
      keyless ? { transformations: [({ props, opts }) => ({ props, opts: pulumi.mergeOptions(opts, { ignoreChanges: ['connection'] }) })] } : {},
    );
    fleet.balancer?.attach(i, machine.id, provisioning.release);
    previousRelease = provisioning.release;
  });

  const alarms =
    cfg.target === 'aws'
      ? new Alarms(name, {
          stack: pulumi.getStack(),
          region: cfg.region!,
          instanceIds: fleet.machines.map((m) => m.id),
          balancer: fleet.balancer,
          database: database.identifier && {
            identifier: database.identifier,
            allocatedStorageGiB: cfg.allocatedStorageGiB,
            workers: cfg.hosts * (cfg.pm2Instances === 'max' ? vcpusOfInstanceType(cfg.instanceType) : cfg.pm2Instances),
          },
          alertEmail: cfg.alertEmail,
          tags,
        })
      : undefined;

  const addresses = pulumi.all(fleet.machines.map((m) => m.address));
  return {
    environment: cfg.environment,
    /** The first host's address (each host's: hostAddresses). */
    publicIp: first.address,
    hostAddresses: addresses,
    // Behind a balancer of the user's (target ssh), a host answers the balancer alone: without a domain there is no URL to give.
    appUrl: cfg.domainName
      ? pulumi.output(`https://${cfg.domainName}`)
      : fleet.balancer
        ? pulumi.interpolate`http://${fleet.balancer.dnsName}`
        : balanced(cfg)
          ? undefined
          : pulumi.interpolate`http://${first.address}`,
    /** target aws with a load balancer: its own name (the domain's alias points at it). */
    loadBalancerDnsName: fleet.balancer?.dnsName,
    // Verifies the host from the first connection: `pulumi stack output sshKnownHosts > ~/.ssh/cemetery-<stack>.known_hosts` once.
    sshCommand: first.address.apply((host) => sshCommandWords({ user: cfg.sshUser, host, port: cfg.sshPort, knownHosts: knownHostsFile(pulumi.getStack()) }).join(' ')),
    /** Every host's pinned key, a known_hosts line each. */
    sshKnownHosts: pulumi
      .all(fleet.machines.map((m) => pulumi.all([m.address, m.sshHostKey]).apply(([host, key]) => knownHostsLine(host, cfg.sshPort, key))))
      .apply((lines) => lines.join('\n')),
    instanceId: first.id,
    instanceIds: pulumi.all(fleet.machines.map((m) => m.id)),
    databaseEndpoint: pulumi.interpolate`${database.host}:${database.port}`,
    /** RDS: the instance's identifier, what another stack's restoreSourceDatabase names. */
    databaseIdentifier: database.identifier,
    databaseUrl: database.url,
    releaseId,
    /** target aws: the alarms' SNS topic (subscribe more than alertEmail to it). */
    alertTopicArn: alarms?.topicArn,
  };
}

/** One host as provisioning reaches it. */
type Reachable = { id: pulumi.Output<string>; address: pulumi.Output<string>; sshHostKey: pulumi.Input<string>; dataVolume?: Machine['dataVolume'] };

type Fleet = {
  machines: Reachable[];
  vpcId: pulumi.Input<string>;
  privateSubnetIds: pulumi.Input<string>[];
  /** The hosts' security group (the database admits it alone). */
  securityGroupId: pulumi.Input<string>;
  balancer?: Balancer;
};

/** target aws: `hosts` new EC2 hosts, in the stack's own network or the shared staging one; more than one (or loadBalancer) behind an ALB. */
function awsFleet(name: string, cfg: StackConfig, tags: Record<string, string>): Fleet {
  const withBalancer = balanced(cfg);
  const network: NetworkRefs = cfg.network === 'shared' ? sharedNetwork() : new Network(name, { tags, publicZones: withBalancer ? 2 : 1 });
  const balancer = withBalancer
    ? new Balancer(name, { vpcId: network.vpcId, subnetIds: network.publicSubnetIds, domainName: cfg.domainName, hostedZoneId: cfg.hostedZoneId, deletionProtection: cfg.deletionProtection, tags })
    : undefined;
  const backups = onHostBackups(cfg)
    ? new BackupBucket(name, { bucketName: cfg.backupBucket!, repoPath: backupRepoPath(pulumi.getStack()), retentionDays: cfg.backupRetentionDays, protect: cfg.deletionProtection, environment: cfg.environment, tags })
    : undefined;
  const hosts = new Host(name, {
    vpcId: network.vpcId,
    count: cfg.hosts,
    subnetIds: network.publicSubnetIds,
    instanceType: cfg.instanceType,
    rootVolumeSizeGiB: cfg.rootVolumeSizeGiB,
    sshAllowedCidrs: cfg.sshAllowedCidrs!,
    sshPublicKey: cfg.sshPublicKey!,
    publicAddress: cfg.network === 'shared' ? 'launch' : 'elastic',
    https: cfg.domainName !== undefined,
    balancerSecurityGroupId: balancer?.securityGroupId,
    dataVolume: onHostDataVolume(cfg) ? { sizeGiB: cfg.dataVolumeSizeGiB, protect: cfg.deletionProtection } : undefined,
    instanceProfileName: backups?.instanceProfileName,
    tags,
  });
  if (cfg.hostedZoneId) {
    // The name follows the host's address, or the balancer's; a user without a Route 53 zone points the name at publicIp by hand.
    const target = balancer
      ? { aliases: [{ name: balancer.dnsName, zoneId: balancer.zoneId, evaluateTargetHealth: true }] }
      : { ttl: 300, records: [hosts.machines[0].publicIp] };
    new aws.route53.Record(`${name}-dns`, { zoneId: cfg.hostedZoneId, name: cfg.domainName!, type: 'A', ...target });
  }
  return {
    machines: hosts.machines.map((m) => ({ id: m.instanceId, address: m.publicIp, sshHostKey: m.sshHostKey, dataVolume: m.dataVolume })),
    vpcId: network.vpcId,
    privateSubnetIds: network.privateSubnetIds,
    securityGroupId: hosts.securityGroupId,
    balancer,
  };
}

/** target ssh: existing Debian hosts (sshHost, or sshHosts in release order); nothing is created in a cloud. */
function existingHosts(cfg: StackConfig): Fleet {
  const machines = sshTargets(cfg).map(({ host, hostKey }) => ({
    id: pulumi.output(`${host}:${cfg.sshPort}`),
    address: pulumi.output(host),
    // Required for `up` (config.ts); a preview connects to nothing and may run without it.
    sshHostKey: hostKey ?? pulumi.output<string>(pulumi.unknown as unknown as string),
  }));
  return { machines, vpcId: '', privateSubnetIds: [], securityGroupId: '' };
}
