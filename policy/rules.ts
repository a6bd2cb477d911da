/**
 * The stack's security rules, as pure checks over a resource's type,
 * properties and stack. The CrossGuard pack (policy/index.ts) enforces them at
 * every preview and update in CI (`policyPacks: policy`) and at
 * `pulumi preview --policy-pack policy`; the tests run them on the mocked stack.
 */
import { isProdStack } from '../infra/config';

/** What a rule knows besides the properties: the stack, which decides prod-ness. */
export type RuleContext = { stack: string };

export type SecurityRule = {
  name: string;
  description: string;
  /** A resource type, or '*' for every resource. */
  resourceType: string;
  /** Returns one message per violation. */
  check: (props: Record<string, any>, context: RuleContext) => string[];
};

/** urn:pulumi:<stack>::<project>::<type>::<name> -> <stack> */
export const stackOfUrn = (urn: string) => urn.split('::')[0].replace(/^urn:pulumi:/, '');

type Ingress = { fromPort?: number; toPort?: number; protocol?: string; cidrBlocks?: string[]; ipv6CidrBlocks?: string[] };

const OPEN_WORLD = ['0.0.0.0/0', '::/0'];
const coversPort = (rule: Ingress, port: number) =>
  rule.protocol === '-1' || rule.protocol === 'all' || ((rule.fromPort ?? 0) <= port && port <= (rule.toPort ?? 0));
const fromAnywhere = (rule: Ingress) => [...(rule.cidrBlocks ?? []), ...(rule.ipv6CidrBlocks ?? [])].some((c) => OPEN_WORLD.includes(c));
// The stack name decides (prod* is prod); a prod tag elsewhere still gets prod's rules.
const isProd = (props: Record<string, any>, { stack }: RuleContext) => isProdStack(stack) || props.tags?.Environment === 'prod';

function openPortViolations(props: Record<string, any>, port: number, what: string): string[] {
  return ((props.ingress ?? []) as Ingress[])
    .filter((rule) => coversPort(rule, port) && fromAnywhere(rule))
    .map((rule) => `${what}: ingress ${rule.fromPort}-${rule.toPort} is open to ${[...(rule.cidrBlocks ?? []), ...(rule.ipv6CidrBlocks ?? [])].join(', ')}`);
}

/** What may be open to the whole internet: the proxy's ports, and SSH (outside prod, see no-public-ssh-in-prod). */
export const WORLD_OPEN_PORTS = [22, 80, 443];

export const securityRules: SecurityRule[] = [
  {
    name: 'environment-matches-stack',
    description: 'The Environment tag agrees with the stack name: prod in a prod* stack, never prod elsewhere.',
    resourceType: '*',
    check: (props, { stack }) => {
      const env = props.tags?.Environment;
      if (env === undefined) return [];
      if (isProdStack(stack) && env !== 'prod') return [`stack "${stack}" is prod, but the resource is tagged Environment=${env}`];
      if (!isProdStack(stack) && env === 'prod') return [`only a prod* stack is prod, but the resource in stack "${stack}" is tagged Environment=prod`];
      return [];
    },
  },
  {
    name: 'rds-private-and-encrypted',
    description: 'RDS instances are not publicly accessible and their storage is encrypted.',
    resourceType: 'aws:rds/instance:Instance',
    check: (db) => [
      ...(db.publiclyAccessible === false ? [] : ['the database must not be publicly accessible (publiclyAccessible: false)']),
      ...(db.storageEncrypted === true ? [] : ['the database storage must be encrypted (storageEncrypted: true)']),
    ],
  },
  {
    name: 'no-postgres-from-anywhere',
    description: 'No security group opens PostgreSQL (5432) to the internet.',
    resourceType: 'aws:ec2/securityGroup:SecurityGroup',
    check: (sg) => openPortViolations(sg, 5432, 'PostgreSQL'),
  },
  {
    name: 'only-web-and-ssh-from-anywhere',
    description: 'No security group opens any port but 80, 443 and SSH (22) to the internet: the app port sits behind the proxy.',
    resourceType: 'aws:ec2/securityGroup:SecurityGroup',
    check: (sg) =>
      ((sg.ingress ?? []) as Ingress[])
        .filter(fromAnywhere)
        .filter((rule) => !(rule.protocol === 'tcp' && rule.fromPort === rule.toPort && WORLD_OPEN_PORTS.includes(rule.fromPort ?? -1)))
        .map((rule) => `ingress ${rule.protocol} ${rule.fromPort}-${rule.toPort} is open to the internet; only ${WORLD_OPEN_PORTS.join(', ')} may be (tcp, one port per rule)`),
  },
  {
    name: 'no-public-ssh-in-prod',
    description: 'In prod, no security group opens SSH (22) to the internet.',
    resourceType: 'aws:ec2/securityGroup:SecurityGroup',
    check: (sg, context) => (isProd(sg, context) ? openPortViolations(sg, 22, 'SSH in prod') : []),
  },
  {
    name: 'imdsv2-required',
    description: 'EC2 instances accept only IMDSv2 (session tokens).',
    resourceType: 'aws:ec2/instance:Instance',
    check: (vm) => (vm.metadataOptions?.httpTokens === 'required' ? [] : ['the instance must require IMDSv2 (metadataOptions.httpTokens: required)']),
  },
  {
    name: 'encrypted-root-volume',
    description: "EC2 instances' root volumes are encrypted.",
    resourceType: 'aws:ec2/instance:Instance',
    check: (vm) => (vm.rootBlockDevice?.encrypted === true ? [] : ['the root volume must be encrypted (rootBlockDevice.encrypted: true)']),
  },
  {
    name: 'prod-database-protected',
    description: 'The prod database has deletion protection and keeps a final snapshot.',
    resourceType: 'aws:rds/instance:Instance',
    check: (db, context) =>
      !isProd(db, context)
        ? []
        : [
            ...(db.deletionProtection === true ? [] : ['the prod database must have deletionProtection: true']),
            ...(db.skipFinalSnapshot === true || !db.finalSnapshotIdentifier ? ['the prod database must keep a final snapshot'] : []),
          ],
  },
  {
    name: 'non-prod-database-destroyable',
    description: 'Dev and staging databases can be destroyed by `pulumi destroy` (no deletion protection, no final snapshot).',
    resourceType: 'aws:rds/instance:Instance',
    check: (db, context) =>
      isProd(db, context)
        ? []
        : [
            ...(db.deletionProtection ? ['a non-prod database must not have deletion protection (teardown would fail)'] : []),
            ...(db.skipFinalSnapshot === true ? [] : ['a non-prod database must skip its final snapshot (teardown would leave one behind)']),
          ],
  },
];
