import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { PUBLIC_SUBNET_CIDRS, VPC_CIDR } from './vpc-ranges';

export type NetworkArgs = {
  tags: Record<string, string>;
  /** 2: a second public subnet, in another zone, for a load balancer (AWS requires two) and the hosts behind it. */
  publicZones?: 1 | 2;
};

/**
 * The tag that marks the long-lived shared staging network (stack
 * staging-shared, `network: provideShared`); staging stacks find it by this tag.
 */
export const SHARED_NETWORK_TAG = { key: 'SharedNetwork', value: 'cemetery-backend-staging' } as const;

/** What a host and a database need of a network. */
export type NetworkRefs = {
  vpcId: pulumi.Output<string>;
  /** The first public subnet: a single host's. */
  publicSubnetId: pulumi.Output<string>;
  /** Every public subnet, one per zone, the first first. */
  publicSubnetIds: pulumi.Output<string>[];
  privateSubnetIds: pulumi.Output<string>[];
};

/**
 * A VPC with a public subnet for the host (two, in two availability zones,
 * for a load balancer and its hosts) and private subnets in two zones for the
 * database (RDS needs two). No NAT gateway: the database needs no way out, and
 * the hosts have public addresses.
 */
export class Network extends pulumi.ComponentResource implements NetworkRefs {
  readonly vpcId: pulumi.Output<string>;
  readonly publicSubnetId: pulumi.Output<string>;
  readonly publicSubnetIds: pulumi.Output<string>[];
  readonly privateSubnetIds: pulumi.Output<string>[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Network', name, {}, opts);
    const parent = { parent: this };
    const tag = (suffix: string) => ({ ...args.tags, Name: `${name}-${suffix}` });

    const zones = aws.getAvailabilityZonesOutput({ state: 'available' }, parent).names;
    const zone = (i: number) => zones.apply((names) => {
      if (names.length < 2) throw new Error(`the region has ${names.length} availability zone(s); RDS needs two`);
      return names[i];
    });

    const vpc = new aws.ec2.Vpc(`${name}-vpc`, { cidrBlock: VPC_CIDR, enableDnsHostnames: true, enableDnsSupport: true, tags: tag('vpc') }, parent);
    const gateway = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: tag('igw') }, parent);

    const publicRoutes = new aws.ec2.RouteTable(
      `${name}-public`,
      { vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: gateway.id }], tags: tag('public') },
      parent,
    );
    const publicSubnets = PUBLIC_SUBNET_CIDRS.slice(0, args.publicZones ?? 1).map((cidrBlock, i) => {
      const suffix = `public-${'ab'[i]}`;
      const subnet = new aws.ec2.Subnet(
        `${name}-${suffix}`,
        { vpcId: vpc.id, cidrBlock, availabilityZone: zone(i), mapPublicIpOnLaunch: false, tags: { ...tag(suffix), Tier: 'public' } },
        parent,
      );
      new aws.ec2.RouteTableAssociation(`${name}-${suffix}`, { subnetId: subnet.id, routeTableId: publicRoutes.id }, parent);
      return subnet;
    });

    const privateSubnets = [0, 1].map(
      (i) =>
        new aws.ec2.Subnet(
          `${name}-private-${'ab'[i]}`,
          { vpcId: vpc.id, cidrBlock: `10.40.${10 + i}.0/24`, availabilityZone: zone(i), tags: { ...tag(`private-${'ab'[i]}`), Tier: 'private' } },
          parent,
        ),
    );

    this.vpcId = vpc.id;
    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.publicSubnetId = this.publicSubnetIds[0];
    this.privateSubnetIds = privateSubnets.map((s) => s.id);
    this.registerOutputs({ vpcId: this.vpcId, publicSubnetId: this.publicSubnetId, publicSubnetIds: this.publicSubnetIds, privateSubnetIds: this.privateSubnetIds });
  }
}

/**
 * The shared staging network, looked up by its tag: a staging stack creates no
 * VPC, internet gateway or subnet of its own. Fails with what to do when the
 * network does not exist yet.
 */
export function sharedNetwork(opts?: pulumi.InvokeOptions): NetworkRefs {
  const vpcId = sharedVpcId(opts);
  const subnets = (tier: 'public' | 'private', count: number) =>
    aws.ec2
      .getSubnetsOutput({ filters: [{ name: 'vpc-id', values: [vpcId] }, { name: 'tag:Tier', values: [tier] }] }, opts)
      .ids.apply((ids) => {
        if (ids.length < count) throw new pulumi.RunError(`the shared staging network has ${ids.length} ${tier} subnet(s), expected ${count}: run \`pulumi up -s staging-shared\``);
        return [...ids].sort();
      });
  const publicIds = subnets('public', 1);
  const privateIds = subnets('private', 2);
  const publicSubnetId = publicIds.apply((ids) => ids[0]);
  return { vpcId, publicSubnetId, publicSubnetIds: [publicSubnetId], privateSubnetIds: [0, 1].map((i) => privateIds.apply((ids) => ids[i])) };
}

/** The one VPC tagged as the shared staging network. */
function sharedVpcId(opts?: pulumi.InvokeOptions): pulumi.Output<string> {
  return aws.ec2.getVpcsOutput({ tags: { [SHARED_NETWORK_TAG.key]: SHARED_NETWORK_TAG.value } }, opts).ids.apply(theSharedVpc);
}

/** Of the VPCs the tag lookup found, the one; none or several stop the program with what to do. */
export function theSharedVpc(ids: string[]): string {
  if (ids.length !== 1) {
    throw new pulumi.RunError(
      `found ${ids.length} VPCs tagged ${SHARED_NETWORK_TAG.key}=${SHARED_NETWORK_TAG.value}, expected one: create the shared staging network once with \`pulumi up -s staging-shared\` (docs/delivery.md: Staging stacks)`,
    );
  }
  return ids[0];
}
