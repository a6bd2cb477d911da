import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';

/** Debian's own AWS account publishes the official AMIs. */
export const DEBIAN_AMI_OWNER = '136693071363';
export const DEBIAN_AMI_NAME = 'debian-13-amd64-*';

export type HostArgs = {
  vpcId: pulumi.Input<string>;
  subnetId: pulumi.Input<string>;
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
  appPort: number;
  tags: Record<string, string>;
};

/**
 * The application host: Debian 13 on EC2 with an Elastic IP (or, for staging,
 * its launch address). SSH only from the allowed ranges, the app port open,
 * IMDSv2 only, encrypted gp3 root.
 */
export class Host extends pulumi.ComponentResource {
  readonly securityGroupId: pulumi.Output<string>;
  readonly instanceId: pulumi.Output<string>;
  readonly publicIp: pulumi.Output<string>;

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
        description: 'cemetery-backend host: SSH from allowed ranges, the app port',
        ingress: [
          { description: 'SSH', protocol: 'tcp', fromPort: 22, toPort: 22, cidrBlocks: args.sshAllowedCidrs },
          { description: 'app (PM2 cluster)', protocol: 'tcp', fromPort: args.appPort, toPort: args.appPort, cidrBlocks: ['0.0.0.0/0'] },
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

    const instance = new aws.ec2.Instance(
      `${name}-vm`,
      {
        ami: ami.id,
        instanceType: args.instanceType,
        subnetId: args.subnetId,
        vpcSecurityGroupIds: [securityGroup.id],
        keyName: keyPair.keyName,
        associatePublicIpAddress: args.publicAddress === 'launch' ? true : undefined,
        rootBlockDevice: { volumeType: 'gp3', volumeSize: args.rootVolumeSizeGiB, encrypted: true, deleteOnTermination: true },
        metadataOptions: { httpTokens: 'required', httpEndpoint: 'enabled', httpPutResponseHopLimit: 1 },
        tags: { ...args.tags, Name: `${name}-vm` },
      },
      // A newer Debian AMI must not replace a running host on the next `up`;
      // move to it deliberately with `pulumi up --replace <instance urn>`. Nor
      // may a new launch key (see the key pair above).
      { ...parent, ignoreChanges: ['ami', 'keyName'] },
    );

    const publicIp =
      args.publicAddress === 'elastic'
        ? new aws.ec2.Eip(`${name}-ip`, { domain: 'vpc', instance: instance.id, tags: { ...args.tags, Name: `${name}-ip` } }, parent).publicIp
        : instance.publicIp;

    this.securityGroupId = securityGroup.id;
    this.instanceId = instance.id;
    this.publicIp = publicIp;
    this.registerOutputs({ securityGroupId: this.securityGroupId, instanceId: this.instanceId, publicIp: this.publicIp });
  }
}
