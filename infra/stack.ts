import * as pulumi from '@pulumi/pulumi';
import { parseStackConfig, PROJECT, StackConfigError, type StackConfig } from './config';
import { Database } from './database';
import { Host } from './host';
import { Network } from './network';
import { baseTags } from './tags';

/** Reads this stack's config as Pulumi holds it and validates it; a bad value stops the program with one clear message. */
export function loadStackConfig(): StackConfig {
  const all = pulumi.runtime.allConfig();
  const prefix = `${PROJECT}:`;
  const raw = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  try {
    return parseStackConfig(raw, pulumi.getStack(), all['aws:region']);
  } catch (err) {
    // RunError: Pulumi prints the message alone, without a stack trace.
    if (err instanceof StackConfigError) throw new pulumi.RunError(err.message);
    throw err;
  }
}

/** The whole stack for one environment; returns its outputs. */
export function createStack(cfg: StackConfig) {
  const tags = baseTags(cfg.environment);
  const name = `cemetery-${cfg.environment}`;

  const network = new Network(name, { tags });
  const host = new Host(name, {
    vpcId: network.vpcId,
    subnetId: network.publicSubnetId,
    instanceType: cfg.instanceType,
    rootVolumeSizeGiB: cfg.rootVolumeSizeGiB,
    sshAllowedCidrs: cfg.sshAllowedCidrs,
    sshPublicKey: cfg.sshPublicKey,
    appPort: cfg.appPort,
    tags,
  });
  const database = new Database(name, {
    mode: cfg.databaseMode,
    vpcId: network.vpcId,
    privateSubnetIds: network.privateSubnetIds,
    hostSecurityGroupId: host.securityGroupId,
    instanceClass: cfg.rdsInstanceClass,
    engineVersion: cfg.postgresVersion,
    allocatedStorageGiB: cfg.allocatedStorageGiB,
    maxAllocatedStorageGiB: cfg.maxAllocatedStorageGiB,
    backupRetentionDays: cfg.backupRetentionDays,
    multiAz: cfg.multiAz,
    deletionProtection: cfg.deletionProtection,
    keepOnDestroy: cfg.environment === 'prod',
    tags,
  });

  return {
    environment: cfg.environment,
    publicIp: host.publicIp,
    appUrl: pulumi.interpolate`http://${host.publicIp}:${cfg.appPort}`,
    sshCommand: pulumi.interpolate`ssh ${cfg.sshUser}@${host.publicIp}`,
    instanceId: host.instanceId,
    databaseEndpoint: pulumi.interpolate`${database.host}:${database.port}`,
    databaseUrl: database.url,
  };
}
