import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';

export type NetworkArgs = { tags: Record<string, string> };

const VPC_CIDR = '10.40.0.0/16';

/**
 * A VPC with a public subnet for the host and private subnets in two
 * availability zones for the database (RDS needs two). No NAT gateway: the
 * database needs no way out, and the host has a public address.
 */
export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly publicSubnetId: pulumi.Output<string>;
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

    const publicSubnet = new aws.ec2.Subnet(
      `${name}-public-a`,
      { vpcId: vpc.id, cidrBlock: '10.40.0.0/24', availabilityZone: zone(0), mapPublicIpOnLaunch: false, tags: tag('public-a') },
      parent,
    );
    const publicRoutes = new aws.ec2.RouteTable(
      `${name}-public`,
      { vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: gateway.id }], tags: tag('public') },
      parent,
    );
    new aws.ec2.RouteTableAssociation(`${name}-public-a`, { subnetId: publicSubnet.id, routeTableId: publicRoutes.id }, parent);

    const privateSubnets = [0, 1].map(
      (i) =>
        new aws.ec2.Subnet(
          `${name}-private-${'ab'[i]}`,
          { vpcId: vpc.id, cidrBlock: `10.40.${10 + i}.0/24`, availabilityZone: zone(i), tags: tag(`private-${'ab'[i]}`) },
          parent,
        ),
    );

    this.vpcId = vpc.id;
    this.publicSubnetId = publicSubnet.id;
    this.privateSubnetIds = privateSubnets.map((s) => s.id);
    this.registerOutputs({ vpcId: this.vpcId, publicSubnetId: this.publicSubnetId, privateSubnetIds: this.privateSubnetIds });
  }
}
