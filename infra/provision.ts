/**
 * Provisioning over SSH: the copies and host steps built in host-steps.ts,
 * as @pulumi/command resources a user recognises by name in a preview. The
 * VM test (npm run test:e2e) runs exactly these, taken from the program.
 */
import { remote, types } from '@pulumi/command';
import * as pulumi from '@pulumi/pulumi';
import { statSync } from 'node:fs';
import path from 'node:path';
import { shippedMigrations } from '../app/src/release';
import { balancerRanges, type StackConfig } from './config';
import type { Database } from './database';
import { APP_DIST_DIR, appTrustProxy, builtRelease, HOST_LAYOUT, hostSteps, libHash, provisioningLayout, stepCommand, stepNeedsLate, stepScriptHash } from './host-steps';

export type ProvisioningArgs = {
  host: pulumi.Input<string>;
  port: number;
  user: string;
  privateKey: pulumi.Input<string>;
  /** Changes when the machine is replaced, so every step runs again on the new one. */
  machineId: pulumi.Input<string>;
  /** The host's SSH public key: every connection checks it before it authenticates. */
  hostKey: pulumi.Input<string>;
  dialErrorLimit: number;
  cfg: StackConfig;
  databasePassword: pulumi.Input<string>;
  databaseUrl: pulumi.Input<string>;
  /** Which CAs authenticate the database server (the app's DATABASE_TLS_CA). */
  databaseCa: Database['ca'];
  /** What the release step (it applies the migrations) waits for, given the release's newest migration: a snapshot, or nothing. */
  beforeMigrations?: (newestMigration: string | undefined) => pulumi.Resource | undefined;
  /**
   * A fleet's previous host's release step: every copy and step here waits for it, so one host
   * changes at a time, and a release that fails on a host stops the rollout there. It holds for
   * host-level changes too: the SDK registers a resource only once its dependencies' URNs resolve,
   * each after that resource's step is done (@pulumi/pulumi 3.248.0 runtime/resource.js
   * prepareResource, dependsOn.js getAllTransitivelyReferencedResourceURNs), so an unchanged
   * release step is done only after its own host's nodejs or pm2 update.
   */
  after?: pulumi.Resource;
  /** The release every host runs (currentRelease: built once for the whole stack). */
  releaseId: string;
  /** target aws, on-host PostgreSQL: the EBS volume that holds the register, and its attachment to this host. */
  dataVolume?: { id: pulumi.Input<string>; attachment: pulumi.Resource };
};

/** The release built from the sources as they are now, once for every host (a preview shows the id that will deploy). */
export function currentRelease(): string {
  try {
    const release = builtRelease();
    if (release.rebuilt.length) pulumi.log.info(`built ${release.rebuilt.join(' and ')} from the sources: they changed since the last build`);
    return release.id;
  } catch (err) {
    throw new pulumi.RunError((err as Error).message);
  }
}

export class Provisioning extends pulumi.ComponentResource {
  readonly releaseId: string;
  /** The step that switches the host to the release: done, the host serves it. */
  readonly release: remote.Command;

  constructor(name: string, args: ProvisioningArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Provisioning', name, {}, opts);
    const parent = { parent: this };
    const { cfg } = args;

    const connection: types.input.remote.ConnectionArgs = {
      host: args.host,
      port: args.port,
      user: args.user,
      privateKey: pulumi.secret(args.privateKey),
      // @pulumi/command 1.2.1 then accepts this key alone, before any authentication
      // (remote/connection.go SSHConfig: ssh.FixedHostKey); a mismatch fails the dial.
      hostKey: args.hostKey,
      dialErrorLimit: args.dialErrorLimit,
      perDialTimeout: 10,
    };

    this.releaseId = args.releaseId;
    const layout = provisioningLayout(args.user, this.releaseId);
    const beforeMigrations = args.beforeMigrations?.(shippedMigrations(path.join(APP_DIST_DIR, 'migrations')).at(-1));
    const previousHost = args.after ? [args.after] : [];

    // Each copy after the one before: the scripts first, the process file last.
    const copies: Record<string, remote.CopyToRemote> = {};
    let previous: pulumi.Resource | undefined;
    for (const copy of layout.copies) {
      const source = statSync(copy.source).isDirectory() ? new pulumi.asset.FileArchive(copy.source) : new pulumi.asset.FileAsset(copy.source);
      previous = copies[copy.name] = new remote.CopyToRemote(
        `${name}-${copy.name}`,
        { connection, source, remotePath: copy.remotePath, triggers: [args.machineId] },
        { ...parent, dependsOn: [...(previous ? [previous] : []), ...previousHost] },
      );
    }

    // The app listens on loopback: the proxy (the proxy step) is the only way in.
    const balancer = balancerRanges(cfg);
    const appEnvironment = pulumi.secret(
      pulumi.interpolate`NODE_ENV=production
HOST=127.0.0.1
PORT=${cfg.appPort}
DATABASE_URL=${args.databaseUrl}
DATABASE_TLS_CA=${args.databaseCa}
LOG_DIR=${HOST_LAYOUT.appHome}/logs
PM2_INSTANCES=${cfg.pm2Instances}
PM2_MAX_MEMORY_RESTART=${cfg.maxMemoryRestart}
PM2_LISTEN_TIMEOUT_MS=${cfg.releaseHealthTimeoutSeconds * 1000}
DB_CONNECT_TIMEOUT_MS=${cfg.databaseConnectTimeoutSeconds * 1000}
PUBLIC_READS=${cfg.publicReads}
${balancer ? `TRUST_PROXY=${appTrustProxy(balancer)}\n` : ''}${cfg.rateLimitPerMinute === undefined ? '' : `RATE_LIMIT_PER_MINUTE=${cfg.rateLimitPerMinute}\n`}`,
    );
    // The backups step: the app role's password (set again after a restore), then the S3 key pair.
    const backupCredentials = pulumi.interpolate`${args.databasePassword}\n${cfg.backupS3AccessKeyId ?? ''}\n${cfg.backupS3SecretAccessKey ?? ''}\n`;
    const stdinFor = { databasePassword: pulumi.interpolate`${args.databasePassword}\n`, appEnvironment, backupCredentials };
    const lib = libHash();

    const commands: Record<string, remote.Command> = {};
    previous = copies['host-scripts'];
    for (const step of hostSteps(cfg, this.releaseId, layout, pulumi.getStack())) {
      const after: pulumi.Resource[] = step.after
        ? step.after.map((n) => {
            if (!commands[n]) throw new Error(`host step ${step.name} follows ${n}, which is not an earlier step`);
            return commands[n];
          })
        : [previous];
      // The data volume's step names the device by the volume's id, and waits for its attachment.
      const needsVolume = stepNeedsLate(step);
      const volume = needsVolume ? args.dataVolume : undefined;
      if (needsVolume && !volume) throw new Error(`host step ${step.name} needs the host's data volume, and it has none`);
      previous = commands[step.name] = new remote.Command(
        `${name}-${step.name}`,
        {
          connection,
          create: volume ? pulumi.output(volume.id).apply((id) => stepCommand(layout, step, { dataVolumeId: id })) : stepCommand(layout, step),
          stdin: step.stdin ? pulumi.secret(stdinFor[step.stdin]) : undefined,
          // What the step does: its script, the shared library, and the machine.
          triggers: [stepScriptHash(step), lib, args.machineId],
          // The provider streams shown output line by line; the engine masks only config secrets in it.
          logging: step.stdin && !step.printsNoSecret ? 'none' : 'stdoutAndStderr',
        },
        // A step that reads the release upload (the release, which applies its migrations) also waits for its copies,
        // and for what comes before migrations.
        { ...parent, dependsOn: [...(step.reads ? [...after, ...Object.values(copies), ...(beforeMigrations ? [beforeMigrations] : [])] : after), ...(volume ? [volume.attachment] : []), ...previousHost] },
      );
    }
    if (!commands.release) throw new Error('the host steps have no release step');
    this.release = commands.release;
    this.registerOutputs({ releaseId: this.releaseId });
  }
}
