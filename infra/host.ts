import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as tls from '@pulumi/tls';
import { metadataGuardCommand } from './metadata-guard';

/** Debian's own AWS account publishes the official AMIs. */
export const DEBIAN_AMI_OWNER = '136693071363';
export const DEBIAN_AMI_NAME = 'debian-13-amd64-*';

export type HostArgs = {
  vpcId: pulumi.Input<string>;
  /** How many identical instances; the i-th goes to subnetIds[i mod length] (different zones for a fleet). */
  count: number;
  subnetIds: pulumi.Input<string>[];
  instanceType: string;
  rootVolumeSizeGiB: number;
  sshAllowedCidrs: string[];
  sshPublicKey: string;
  /**
   * `elastic`: an Elastic IP that survives a stop/start (dev, prod).
   * `launch`: the public address the instance gets at launch, no Elastic IP
   * (staging: the default quota is 5 Elastic IPs per region).
   */
  publicAddress: 'elastic' | 'launch';
  /** With a domain the proxy serves HTTPS on 443 (and redirects 80 to it); without, plain HTTP on 80. */
  https: boolean;
  /** Behind a load balancer: the web port (80) admits its security group alone, and 443 stays closed (the balancer holds the certificate). */
  balancerSecurityGroupId?: pulumi.Input<string>;
  /** On-host PostgreSQL: an EBS volume per host for the register, which outlives the instance; `protect`: pulumi destroy refuses it. */
  dataVolume?: { sizeGiB: number; protect: boolean };
  /** The instance profile the host's root reads credentials of (on-host backups: infra/backup-bucket.ts). */
  instanceProfileName?: pulumi.Input<string>;
  tags: Record<string, string>;
};

/** The instance's user data: the metadata guard, then the host key Pulumi made. */
export function cloudConfig(hostKey: { privateKeyOpenssh: string; publicKeyOpenssh: string }): string {
  const config = {
    // bootcmd runs first among cloud-init's modules, at every boot, before users and SSH are set up.
    bootcmd: [['sh', '-c', metadataGuardCommand()]],
    // cloud-init's cc_ssh: with ssh_keys it writes these and generates no others
    // (ssh_deletekeys drops the image's). JSON is YAML, and quotes the key safely.
    ssh_deletekeys: true,
    ssh_keys: { ed25519_private: hostKey.privateKeyOpenssh, ed25519_public: hostKey.publicKeyOpenssh.trim() },
  };
  return `#cloud-config\n${JSON.stringify(config, null, 2)}\n`;
}

/** One instance of the fleet: what provisioning connects to. */
export type Machine = {
  instanceId: pulumi.Output<string>;
  publicIp: pulumi.Output<string>;
  /** The host's SSH public key (`ssh-ed25519 AAAA...`): every connection's hostKey. */
  sshHostKey: pulumi.Output<string>;
  /** The register's EBS volume (HostArgs.dataVolume), and its attachment to this instance. */
  dataVolume?: { id: pulumi.Output<string>; attachment: pulumi.Resource };
};

/**
 * Resource names of the i-th host (from 0): the first keeps the names a
 * single-host stack always had, so adding hosts replaces nothing.
 */
export const machineName = (name: string, i: number) => (i === 0 ? name : `${name}-${i + 1}`);

/**
 * The application hosts: Debian 13 on EC2, each with an Elastic IP (or, for
 * staging, its launch address). SSH only from the allowed ranges, the web ports (the
 * proxy's) open, the app port never; IMDSv2 only, encrypted gp3 root; an SSH
 * host key made here and installed at first boot, so every connection,
 * the first included, verifies the host.
 */
export class Host extends pulumi.ComponentResource {
  readonly securityGroupId: pulumi.Output<string>;
  readonly machines: Machine[];

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Host', name, {}, opts);
    const parent = { parent: this };

    const ami = aws.ec2.getAmiOutput(
      {
        owners: [DEBIAN_AMI_OWNER],
        mostRecent: true,
        filters: [
          { name: 'name', values: [DEBIAN_AMI_NAME] },
          { name: 'architecture', values: ['x86_64'] },
          { name: 'virtualization-type', values: ['hvm'] },
        ],
      },
      parent,
    );

    const securityGroup = new aws.ec2.SecurityGroup(
      `${name}-host-sg`,
      {
        vpcId: args.vpcId,
        description: 'cemetery-backend host: SSH from allowed ranges, the web ports',
        // The app listens on loopback behind the proxy: its port is never opened.
        ingress: [
          { description: 'SSH', protocol: 'tcp', fromPort: 22, toPort: 22, cidrBlocks: args.sshAllowedCidrs },
          ...(args.balancerSecurityGroupId
            ? [{ description: 'HTTP from the load balancer alone (the proxy)', protocol: 'tcp', fromPort: 80, toPort: 80, securityGroups: [args.balancerSecurityGroupId] }]
            : [
                { description: args.https ? 'HTTP (redirects to HTTPS; ACME challenges)' : 'HTTP (the proxy)', protocol: 'tcp', fromPort: 80, toPort: 80, cidrBlocks: ['0.0.0.0/0'] },
                ...(args.https ? [{ description: 'HTTPS (the proxy)', protocol: 'tcp', fromPort: 443, toPort: 443, cidrBlocks: ['0.0.0.0/0'] }] : []),
              ]),
        ],
        // apt, the Node.js dist mirror and the npm registry.
        egress: [{ description: 'all outbound', protocol: '-1', fromPort: 0, toPort: 0, cidrBlocks: ['0.0.0.0/0'] }],
        tags: { ...args.tags, Name: `${name}-host-sg` },
      },
      parent,
    );

    // The launch key: cloud-init authorizes it at first boot. From then on the
    // deploy key reaches authorized_keys through provisioning, so a rotated
    // sshPublicKey must not replace the key pair (a new key pair name would
    // replace the instance). A deliberately replaced host takes the new key with
    // `pulumi up --replace <key pair urn> --replace <instance urn>`.
    const keyPair = new aws.ec2.KeyPair(`${name}-key`, { publicKey: args.sshPublicKey, tags: args.tags }, { ...parent, ignoreChanges: ['publicKey'] });

    this.machines = Array.from({ length: args.count }, (_, i) => {
      const host = machineName(name, i);
      // Kept in the state as a secret; replaced only with the instance (a new key needs a new first boot).
      const subnetId = args.subnetIds[i % args.subnetIds.length];
      const hostKey = new tls.PrivateKey(`${host}-ssh-host-key`, { algorithm: 'ED25519' }, parent);

      const instance = new aws.ec2.Instance(
        `${host}-vm`,
        {
          ami: ami.id,
          instanceType: args.instanceType,
          subnetId,
          vpcSecurityGroupIds: [securityGroup.id],
          keyName: keyPair.keyName,
          associatePublicIpAddress: args.publicAddress === 'launch' ? true : undefined,
          rootBlockDevice: { volumeType: 'gp3', volumeSize: args.rootVolumeSizeGiB, encrypted: true, deleteOnTermination: true },
          metadataOptions: { httpTokens: 'required', httpEndpoint: 'enabled', httpPutResponseHopLimit: 1 },
          // Associated in place: a profile added or removed later does not replace the instance.
          iamInstanceProfile: args.instanceProfileName,
          userData: pulumi.secret(pulumi.all([hostKey.privateKeyOpenssh, hostKey.publicKeyOpenssh]).apply(([privateKeyOpenssh, publicKeyOpenssh]) => cloudConfig({ privateKeyOpenssh, publicKeyOpenssh }))),
          // cloud-init reads user data at the first boot only: a host key the host never installed would lock every up out.
          userDataReplaceOnChange: true,
          tags: { ...args.tags, Name: `${host}-vm` },
          // The root volume holds the host key and (onHost) the database: tagged, so another
          // environment's role is refused it (infra/bootstrap: the Environment tag rule).
          volumeTags: { ...args.tags, Name: `${host}-root` },
        },
        // A newer Debian AMI must not replace a running host on the next `up`;
        // move to it deliberately with `pulumi up --replace <instance urn>`. Nor
        // may a new launch key (see the key pair above).
        { ...parent, ignoreChanges: ['ami', 'keyName'] },
      );

      const dataVolume = args.dataVolume && this.dataVolume(host, instance, subnetId, args.dataVolume, args.tags);
      const publicIp =
        args.publicAddress === 'elastic'
          ? new aws.ec2.Eip(`${host}-ip`, { domain: 'vpc', instance: instance.id, tags: { ...args.tags, Name: `${host}-ip` } }, parent).publicIp
          : instance.publicIp;
      return { instanceId: instance.id, publicIp, sshHostKey: hostKey.publicKeyOpenssh.apply((key) => key.trim()), dataVolume };
    });

    this.securityGroupId = securityGroup.id;
    this.registerOutputs({ securityGroupId: this.securityGroupId, machines: this.machines });
  }

  /**
   * The register's volume: in the instance's zone (from its subnet, not from the instance, so a new instance changes
   * nothing here), encrypted, gp3. Only its attachment follows the instance: replaced, the old one is detached first
   * (deleteBeforeReplace; the volume attaches to one instance at a time), after the old instance is stopped, so
   * PostgreSQL shuts down cleanly; the new host's data-volume step then mounts it.
   */
  private dataVolume(host: string, instance: aws.ec2.Instance, subnetId: pulumi.Input<string>, volume: { sizeGiB: number; protect: boolean }, tags: Record<string, string>) {
    const parent = { parent: this };
    const data = new aws.ebs.Volume(
      `${host}-data`,
      {
        availabilityZone: aws.ec2.getSubnetOutput({ id: subnetId }, parent).availabilityZone,
        size: volume.sizeGiB,
        type: 'gp3',
        encrypted: true,
        tags: { ...tags, Name: `${host}-data` },
      },
      { ...parent, protect: volume.protect },
    );
    const attachment = new aws.ec2.VolumeAttachment(
      `${host}-data-attachment`,
      { instanceId: instance.id, volumeId: data.id, deviceName: '/dev/sdf', stopInstanceBeforeDetaching: true },
      { ...parent, deleteBeforeReplace: true },
    );
    if (pulumi.runtime.isDryRun()) {
      pulumi.log.info(`${host}: the register is on the EBS volume ${host}-data, which a replaced or destroyed instance leaves as it is: only ${host}-data-attachment follows the instance, and the next host mounts the volume`, this);
    }
    return { id: data.id, attachment };
  }
}
