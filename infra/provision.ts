/**
 * Provisioning over SSH: each step is a real shell file in scripts/host/,
 * run with sudo by a remote.Command that a user recognises by name in a
 * preview. The commands are built here, once: `pulumi up` sends them, and the
 * VM test (npm run test:e2e) runs exactly these, taken from the program.
 */
import { remote, types } from '@pulumi/command';
import * as pulumi from '@pulumi/pulumi';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { StackConfig } from './config';
import { DATABASE_NAME, DATABASE_USER } from './database';

const ROOT = path.resolve(__dirname, '..');
export const HOST_SCRIPTS_DIR = path.join(ROOT, 'scripts', 'host');
const APP_DIR = path.join(ROOT, 'app');

/** Where things live on the host: one place for the steps, the tests and the README. */
export const HOST_LAYOUT = {
  appUser: 'cemetery',
  appHome: '/srv/cemetery-backend',
  appName: 'cemetery-backend',
  /** PM2 on the host is the version the repository pins (package.json). */
  pm2Version: (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies.pm2,
  logrotateVersion: '3.0.0',
};

/** Single-quotes a word for a POSIX shell. */
export const shellQuote = (word: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

function hashFiles(files: string[]): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(path.basename(file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 12);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const full = path.join(dir, name);
      return statSync(full).isDirectory() ? listFiles(full) : [full];
    });
}

/** The release: app/dist and the process file; its id is their content hash. */
export function releaseId(): string {
  if (!existsSync(path.join(APP_DIR, 'dist', 'server.js'))) {
    throw new pulumi.RunError('app/dist is missing: run `npm run build` before `pulumi up` (the release ships the bundle)');
  }
  return `r-${hashFiles([...listFiles(path.join(APP_DIR, 'dist')), path.join(APP_DIR, 'ecosystem.config.js')])}`;
}

export type HostStep = {
  /** The resource name, as a preview shows it. */
  name: string;
  script: string;
  args: Record<string, string | number | boolean>;
  /** Secret-bearing steps read their secret from stdin; their logging is off. */
  stdin?: 'databasePassword' | 'appEnvironment';
};

/** The provisioning steps for a stack, in order. */
export function hostSteps(cfg: StackConfig, release: string, uploadDir: string): HostStep[] {
  const { appUser, appHome } = HOST_LAYOUT;
  const steps: HostStep[] = [
    { name: 'wait-for-host', script: 'wait-for-host.sh', args: {} },
    { name: 'system-limits', script: 'system-limits.sh', args: { APP_USER: appUser, NOFILE: cfg.nofileLimit } },
    { name: 'app-user', script: 'app-user.sh', args: { APP_USER: appUser, APP_HOME: appHome } },
    { name: 'nodejs', script: 'nodejs.sh', args: { NODE_VERSION: cfg.nodeVersion, NODE_MIRROR: cfg.nodeDistMirror } },
    { name: 'pm2', script: 'pm2.sh', args: { APP_USER: appUser, APP_HOME: appHome, PM2_VERSION: HOST_LAYOUT.pm2Version } },
    {
      name: 'pm2-logrotate',
      script: 'pm2-logrotate.sh',
      args: {
        APP_USER: appUser,
        LOGROTATE_VERSION: HOST_LAYOUT.logrotateVersion,
        MAX_SIZE: cfg.logrotateMaxSize,
        RETAIN: cfg.logrotateRetain,
        COMPRESS: cfg.logrotateCompress,
        ROTATE_INTERVAL: cfg.logrotateRotateInterval,
      },
    },
  ];
  if (cfg.databaseMode === 'onHost') {
    steps.push({ name: 'postgres', script: 'postgres.sh', args: { DB_NAME: DATABASE_NAME, DB_USER: DATABASE_USER }, stdin: 'databasePassword' });
  }
  steps.push(
    { name: 'release', script: 'release.sh', args: { APP_USER: appUser, APP_HOME: appHome, RELEASE_ID: release, UPLOAD_DIR: uploadDir, APP_PORT: cfg.appPort }, stdin: 'appEnvironment' },
    { name: 'pm2-save', script: 'pm2-save.sh', args: { APP_USER: appUser } },
  );
  return steps;
}

/** The command line of a step: `sudo bash <dir>/<script> KEY=VALUE ...`; never a secret. */
export const stepCommand = (scriptsDir: string, step: HostStep) =>
  ['sudo', 'bash', `${scriptsDir}/${step.script}`, ...Object.entries(step.args).map(([k, v]) => shellQuote(`${k}=${v}`))].join(' ');

export type ProvisioningArgs = {
  host: pulumi.Input<string>;
  port: number;
  user: string;
  privateKey: pulumi.Input<string>;
  /** Changes when the machine is replaced, so every step runs again on the new one. */
  machineId: pulumi.Input<string>;
  cfg: StackConfig;
  databasePassword: pulumi.Input<string>;
  databaseUrl: pulumi.Input<string>;
};

export class Provisioning extends pulumi.ComponentResource {
  readonly releaseId: string;

  constructor(name: string, args: ProvisioningArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Provisioning', name, {}, opts);
    const parent = { parent: this };
    const { cfg } = args;

    const connection: types.input.remote.ConnectionArgs = {
      host: args.host,
      port: args.port,
      user: args.user,
      privateKey: pulumi.secret(args.privateKey),
      // A new VM takes minutes to boot and start sshd: keep dialling.
      dialErrorLimit: 60,
      perDialTimeout: 10,
    };
    const remoteBase = `${args.user === 'root' ? '/root' : `/home/${args.user}`}/.cemetery-provision`;

    // Scripts go to a path named by their content hash: a fresh directory whenever they change.
    const scriptFiles = listFiles(HOST_SCRIPTS_DIR);
    const scriptsHash = hashFiles(scriptFiles);
    const scriptsDir = `${remoteBase}/scripts-${scriptsHash}`;
    const copyScripts = new remote.CopyToRemote(
      `${name}-host-scripts`,
      { connection, source: new pulumi.asset.FileArchive(HOST_SCRIPTS_DIR), remotePath: scriptsDir, triggers: [args.machineId] },
      parent,
    );

    this.releaseId = releaseId();
    const uploadDir = `${remoteBase}/${this.releaseId}`;
    const copyDist = new remote.CopyToRemote(
      `${name}-release-bundle`,
      { connection, source: new pulumi.asset.FileArchive(path.join(APP_DIR, 'dist')), remotePath: `${uploadDir}/dist`, triggers: [args.machineId] },
      { ...parent, dependsOn: [copyScripts] },
    );
    const copyProcessFile = new remote.CopyToRemote(
      `${name}-release-process-file`,
      { connection, source: new pulumi.asset.FileAsset(path.join(APP_DIR, 'ecosystem.config.js')), remotePath: `${uploadDir}/ecosystem.config.js`, triggers: [args.machineId] },
      { ...parent, dependsOn: [copyDist] },
    );

    const appEnvironment = pulumi.secret(
      pulumi.interpolate`NODE_ENV=production
HOST=0.0.0.0
PORT=${cfg.appPort}
DATABASE_URL=${args.databaseUrl}
RELEASE_ID=${this.releaseId}
LOG_DIR=${HOST_LAYOUT.appHome}/logs
PM2_INSTANCES=${cfg.pm2Instances}
PM2_MAX_MEMORY_RESTART=${cfg.maxMemoryRestart}
`,
    );
    const stdinFor = { databasePassword: pulumi.interpolate`${args.databasePassword}\n`, appEnvironment };
    const libHash = hashFiles([path.join(HOST_SCRIPTS_DIR, 'lib.sh')]);

    let previous: pulumi.Resource = copyScripts;
    for (const step of hostSteps(cfg, this.releaseId, uploadDir)) {
      const scriptHash = hashFiles([path.join(HOST_SCRIPTS_DIR, step.script)]);
      previous = new remote.Command(
        `${name}-${step.name}`,
        {
          connection,
          create: stepCommand(scriptsDir, step),
          stdin: step.stdin ? pulumi.secret(stdinFor[step.stdin]) : undefined,
          // What the step does: its script, the shared library, and the machine.
          triggers: [scriptHash, libHash, args.machineId],
          logging: step.stdin ? 'none' : 'stdoutAndStderr',
        },
        { ...parent, dependsOn: step.name === 'release' ? [previous, copyProcessFile] : [previous] },
      );
    }
    this.registerOutputs({ releaseId: this.releaseId });
  }
}
