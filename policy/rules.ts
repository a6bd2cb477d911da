/**
 * The stack's security rules, as pure checks over a resource's type and
 * properties. The CrossGuard pack (policy/index.ts) enforces them at
 * `pulumi preview --policy-pack policy`; the tests run them on the mocked stack.
 */
export type SecurityRule = {
  name: string;
  description: string;
  resourceType: string;
  /** Returns one message per violation. */
  check: (props: Record<string, any>) => string[];
};

type Ingress = { fromPort?: number; toPort?: number; protocol?: string; cidrBlocks?: string[]; ipv6CidrBlocks?: string[] };

const OPEN_WORLD = ['0.0.0.0/0', '::/0'];
const coversPort = (rule: Ingress, port: number) =>
  rule.protocol === '-1' || rule.protocol === 'all' || ((rule.fromPort ?? 0) <= port && port <= (rule.toPort ?? 0));
const fromAnywhere = (rule: Ingress) => [...(rule.cidrBlocks ?? []), ...(rule.ipv6CidrBlocks ?? [])].some((c) => OPEN_WORLD.includes(c));
const isProd = (props: Record<string, any>) => props.tags?.Environment === 'prod';

function openPortViolations(props: Record<string, any>, port: number, what: string): string[] {
  return ((props.ingress ?? []) as Ingress[])
    .filter((rule) => coversPort(rule, port) && fromAnywhere(rule))
    .map((rule) => `${what}: ingress ${rule.fromPort}-${rule.toPort} is open to ${[...(rule.cidrBlocks ?? []), ...(rule.ipv6CidrBlocks ?? [])].join(', ')}`);
}

export const securityRules: SecurityRule[] = [
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
    name: 'no-public-ssh-in-prod',
    description: 'In prod, no security group opens SSH (22) to the internet.',
    resourceType: 'aws:ec2/securityGroup:SecurityGroup',
    check: (sg) => (isProd(sg) ? openPortViolations(sg, 22, 'SSH in prod') : []),
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
    check: (db) =>
      !isProd(db)
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
    check: (db) =>
      isProd(db)
        ? []
        : [
            ...(db.deletionProtection ? ['a non-prod database must not have deletion protection (teardown would fail)'] : []),
            ...(db.skipFinalSnapshot === true ? [] : ['a non-prod database must skip its final snapshot (teardown would leave one behind)']),
          ],
  },
];
