/** The stack's own VPC and its public subnets (infra/network.ts), apart so that host steps can name them without the AWS SDK. */
export const VPC_CIDR = '10.40.0.0/16';

/** The public subnets' ranges, one per zone, in order: the hosts' addresses, and a load balancer's nodes'. */
export const PUBLIC_SUBNET_CIDRS = ['10.40.0.0/24', '10.40.1.0/24'] as const;
