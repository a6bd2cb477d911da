/**
 * The stack's security rules, as pure checks over a resource's type,
 * properties and stack. The CrossGuard pack (policy/index.ts) enforces them at
 * every preview and update in CI (`policyPacks: policy`) and at
 * `pulumi preview --policy-pack policy`; the tests run them on the mocked stack.
 */
import { worldOpenReason } from '../infra/cidr';
import { isProdStack, PROD_MIN_BACKUP_DAYS } from '../infra/config';

/** What a rule knows besides the properties: the stack, which decides prod-ness. */
export type RuleContext = { stack: string };

export type SecurityRule = {
  name: string;
  description: string;
  /** The resource types it checks, or '*' for every resource. */
  resourceType: string | readonly string[];
  /** Returns one message per violation. */
  check: (props: Record<string, any>, context: RuleContext & { type: string }) => string[];
};

export const appliesTo = (rule: SecurityRule, type: string) => rule.resourceType === '*' || rule.resourceType === type || (Array.isArray(rule.resourceType) && rule.resourceType.includes(type));

/** urn:pulumi:<stack>::<project>::<type>::<name> -> <stack> */
export const stackOfUrn = (urn: string) => urn.split('::')[0].replace(/^urn:pulumi:/, '');

type Ingress = { fromPort?: number; toPort?: number; protocol?: string; cidrBlocks?: string[]; ipv6CidrBlocks?: string[] };

/** Every way AWS takes ingress: a group's inline rules, an ingress SecurityGroupRule, a VPC SecurityGroupIngressRule. */
export const INGRESS_TYPES = [
  'aws:ec2/securityGroup:SecurityGroup',
  'aws:ec2/securityGroupRule:SecurityGroupRule',
  'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule',
] as const;

/** The ingress a resource declares, in the inline form, whichever form it uses. */
export function ingressOf(type: string, props: Record<string, any>): Ingress[] {
  if (type === INGRESS_TYPES[0]) return props.ingress ?? [];
  if (type === INGRESS_TYPES[1]) return props.type === 'ingress' ? [props] : [];
  if (type === INGRESS_TYPES[2]) {
    const { fromPort, toPort, ipProtocol: protocol, cidrIpv4, cidrIpv6 } = props;
    return [{ fromPort, toPort, protocol, cidrBlocks: cidrIpv4 ? [cidrIpv4] : [], ipv6CidrBlocks: cidrIpv6 ? [cidrIpv6] : [] }];
  }
  return [];
}

// AWS takes protocols by name or number: "-1"/"all" is every protocol, "6" is tcp.
const isAllProtocols = (rule: Ingress) => ['-1', 'all'].includes(String(rule.protocol));
const isTcp = (rule: Ingress) => ['tcp', '6'].includes(String(rule.protocol));
const coversPort = (rule: Ingress, port: number) => isAllProtocols(rule) || ((rule.fromPort ?? 0) <= port && port <= (rule.toPort ?? 0));
const rangesOf = (rules: Ingress[]) => rules.flatMap((rule) => [...(rule.cidrBlocks ?? []), ...(rule.ipv6CidrBlocks ?? [])]);
/** What, summed over the given rules, opens them to the world (infra/cidr.ts: wider than a /16 or a /48 of public addresses). */
const worldOpen = (rules: Ingress[]) => (rules.length ? worldOpenReason(rangesOf(rules)) : undefined);
// The stack name decides (prod* is prod); a prod tag elsewhere still gets prod's rules.
const isProd = (props: Record<string, any>, { stack }: RuleContext) => isProdStack(stack) || props.tags?.Environment === 'prod';

/** What may be open to the whole internet: the proxy's ports, and SSH (outside prod, see no-public-ssh-in-prod). */
export const WORLD_OPEN_PORTS = [22, 80, 443];
const isWorldOpenPort = (rule: Ingress) => isTcp(rule) && rule.fromPort === rule.toPort && WORLD_OPEN_PORTS.includes(rule.fromPort ?? -1);

/** Every rule admitting the port counts together: two halves of the internet are the internet. */
function openPort(rules: Ingress[], port: number, what: string): string[] {
  const reason = worldOpen(rules.filter((rule) => coversPort(rule, port)));
  return reason ? [`${what} (port ${port}): ${reason}`] : [];
}
/** Ports other than the web and SSH ones, counted together across rules (stricter than per port, and simpler). */
function openOtherPorts(rules: Ingress[]): string[] {
  const others = rules.filter((rule) => !isWorldOpenPort(rule));
  const reason = worldOpen(others);
  const which = others.map((rule) => `${rule.protocol} ${rule.fromPort ?? 'all'}-${rule.toPort ?? 'all'}`).join(', ');
  return reason ? [`ingress ${which}: ${reason}; only ${WORLD_OPEN_PORTS.join(', ')} may be (tcp, one port per rule)`] : [];
}

const postgresOpen = (rules: Ingress[]) => openPort(rules, 5432, 'PostgreSQL');
const sshOpenInProd = (rules: Ingress[]) => openPort(rules, 22, 'SSH in prod');
/** The port checks the per-resource rules make, for the stack rule to make over all resources together. */
const PORT_CHECKS: Array<{ prodOnly: boolean; run: (rules: Ingress[]) => string[] }> = [
  { prodOnly: false, run: postgresOpen },
  { prodOnly: false, run: openOtherPorts },
  { prodOnly: true, run: sshOpenInProd },
];

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
    description: 'No ingress opens PostgreSQL (5432) to the internet.',
    resourceType: INGRESS_TYPES,
    check: (props, { type }) => postgresOpen(ingressOf(type, props)),
  },
  {
    name: 'only-web-and-ssh-from-anywhere',
    description: 'No ingress opens any port but 80, 443 and SSH (22) to the internet: the app port sits behind the proxy.',
    resourceType: INGRESS_TYPES,
    check: (props, { type }) => openOtherPorts(ingressOf(type, props)),
  },
  {
    name: 'no-public-ssh-in-prod',
    description: 'In prod, no ingress opens SSH (22) to the internet.',
    resourceType: INGRESS_TYPES,
    check: (props, context) => (isProd(props, context) ? sshOpenInProd(ingressOf(context.type, props)) : []),
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
    name: 'volumes-carry-the-environment-tag',
    description: "EC2 instances tag their volumes with their own Environment: the deploy roles (infra/bootstrap) refuse another environment's resources by that tag, and an untagged volume (the host key, an on-host database) would be open to all of them.",
    resourceType: 'aws:ec2/instance:Instance',
    check: (vm) =>
      vm.tags?.Environment !== undefined && vm.volumeTags?.Environment === vm.tags.Environment
        ? []
        : [`the volumes must carry the instance's Environment tag (volumeTags.Environment: ${vm.tags?.Environment ?? '<its Environment>'}), got ${vm.volumeTags?.Environment ?? 'none'}`],
  },
  {
    name: 'data-volume-encrypted-and-tagged',
    description: "The register's EBS volume (on-host PostgreSQL) is encrypted and carries its Environment tag, which the deploy roles (infra/bootstrap) go by.",
    resourceType: 'aws:ebs/volume:Volume',
    check: (volume) => [
      ...(volume.encrypted === true ? [] : ['the volume must be encrypted (encrypted: true)']),
      ...(volume.tags?.Environment ? [] : ["the volume must carry its stack's Environment tag"]),
    ],
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
  {
    name: 'prod-balancer-serves-https',
    description: "In prod, the load balancer's port 80 only redirects to HTTPS: no request is answered in plain text.",
    resourceType: 'aws:lb/listener:Listener',
    check: (listener, context) => {
      if (!isProd(listener, context) || listener.protocol !== 'HTTP') return [];
      const actions: Array<{ type?: string; redirect?: { protocol?: string } }> = listener.defaultActions ?? [];
      return actions.every((a) => a.type === 'redirect' && a.redirect?.protocol === 'HTTPS')
        ? []
        : [`the HTTP listener on port ${listener.port} must redirect to HTTPS, got ${actions.map((a) => a.type).join(', ') || 'no action'} (cemetery-backend:domainName, hostedZoneId)`];
    },
  },
];

/** A check over every resource of the stack at once. */
export type StackRule = {
  name: string;
  description: string;
  check: (resources: ReadonlyArray<{ type: string; name: string; props: Record<string, any> }>, context: RuleContext) => string[];
};

/** A stack that runs the app: a host of its own, or provisioning steps on an existing one. */
const runsTheApp = (resources: ReadonlyArray<{ type: string }>) => resources.some((r) => r.type === 'aws:ec2/instance:Instance' || r.type === 'command:remote:Command');

/** The host steps that run `script` (scripts/host/<script>), with the arguments their command passes it. */
const hostSteps = (resources: ReadonlyArray<{ type: string; name: string; props: Record<string, any> }>, script: string) =>
  resources
    .filter((r) => r.type === 'command:remote:Command' && new RegExp(`/${script.replace('.', '\\.')}( |$)`).test(String(r.props.create ?? '')))
    .map((r) => ({ name: r.name, args: Object.fromEntries([...String(r.props.create).matchAll(/'?([A-Z][A-Z0-9_]*)=([^' ]*)'?/g)].map((m) => [m[1], m[2]])) }));

export const stackRules: StackRule[] = [
  {
    name: 'prod-register-in-backed-up-database',
    description: `A prod stack that runs the app keeps its data in RDS with at least ${PROD_MIN_BACKUP_DAYS} days of automated backups (point-in-time restore), or in PostgreSQL on the host backed up continuously for as long (backupBucket) on a data volume that outlives the host.`,
    check: (resources, context) => {
      const prod = isProdStack(context.stack) || resources.some((r) => isProd(r.props, context));
      if (!prod || !runsTheApp(resources)) return [];
      const databases = resources.filter((r) => r.type === 'aws:rds/instance:Instance');
      const onHost = hostSteps(resources, 'postgres.sh');
      if (databases.length === 0 && onHost.length > 0) {
        const backups = hostSteps(resources, 'backups.sh');
        const problems = [
          ...(backups.length ? [] : ['prod keeps PostgreSQL on the host without continuous backups: a lost disk, or a mistake made in it, loses the register (cemetery-backend:backupBucket)']),
          ...(hostSteps(resources, 'data-volume.sh').length ? [] : ["prod keeps PostgreSQL on the host's own disk, which dies with the host (cemetery-backend:dataVolumeDevice)"]),
        ];
        return [
          ...problems,
          ...backups
            .filter((b) => !(Number(b.args.RETENTION_DAYS) >= PROD_MIN_BACKUP_DAYS))
            .map((b) => `${b.name}: keeps ${b.args.RETENTION_DAYS ?? 0} days of backups; prod keeps at least ${PROD_MIN_BACKUP_DAYS} (cemetery-backend:backupRetentionDays)`),
        ];
      }
      if (databases.length === 0) return ['prod runs the app without an RDS database: its register would have no backups (cemetery-backend:databaseMode: rds, target: aws)'];
      return databases
        .filter((db) => !((db.props.backupRetentionPeriod ?? 0) >= PROD_MIN_BACKUP_DAYS))
        .map((db) => `${db.name}: keeps ${db.props.backupRetentionPeriod ?? 0} days of automated backups; prod keeps at least ${PROD_MIN_BACKUP_DAYS} (cemetery-backend:backupRetentionDays)`);
    },
  },
  {
    name: 'buckets-private-versioned-encrypted',
    description: "Every S3 bucket of the stack (on-host PostgreSQL's backups) blocks public access all four ways, keeps older versions, and is encrypted with a KMS key by default.",
    check: (resources) => {
      // The bucket's settings are resources of their own, each naming the bucket.
      const settingsOf = (type: string, bucket: string) => resources.filter((r) => r.type === type && r.props.bucket === bucket).map((r) => r.props);
      return resources
        .filter((r) => r.type === 'aws:s3/bucket:Bucket')
        .flatMap((b) => {
          const name = b.props.bucket;
          const blocks = settingsOf('aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock', name);
          const versioning = settingsOf('aws:s3/bucketVersioning:BucketVersioning', name);
          const encryption = settingsOf('aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration', name);
          return [
            ...(blocks.some((p) => p.blockPublicAcls && p.blockPublicPolicy && p.ignorePublicAcls && p.restrictPublicBuckets) ? [] : [`${b.name}: public access must be blocked all four ways (an aws.s3.BucketPublicAccessBlock)`]),
            ...(versioning.some((p) => p.versioningConfiguration?.status === 'Enabled') ? [] : [`${b.name}: must keep older versions (an aws.s3.BucketVersioning, status Enabled)`]),
            ...(encryption.some((p) => (p.rules ?? []).some((r: any) => r.applyServerSideEncryptionByDefault?.sseAlgorithm === 'aws:kms' && r.applyServerSideEncryptionByDefault?.kmsMasterKeyId))
              ? []
              : [`${b.name}: must be encrypted with a KMS key by default (aws.s3.BucketServerSideEncryptionConfiguration, aws:kms)`]),
          ];
        });
    },
  },
  {
    name: 'fleet-shares-one-database',
    description: 'A stack of more than one host keeps its register in one database (RDS, or on target ssh an external one): PostgreSQL on each host would be a register of its own.',
    check: (resources) => {
      const hosts = resources.filter((r) => r.type === 'aws:ec2/instance:Instance');
      const onHost = hostSteps(resources, 'postgres.sh');
      return [
        ...(hosts.length >= 2 && !resources.some((r) => r.type === 'aws:rds/instance:Instance')
          ? [`${hosts.length} hosts (${hosts.map((h) => h.name).join(', ')}) without an RDS database: each would keep a register of its own (cemetery-backend:hosts: 1, or databaseMode: rds)`]
          : []),
        // Existing hosts (target ssh) have no instance: their provisioning says where the register is.
        ...(onHost.length >= 2 ? [`${onHost.length} hosts run PostgreSQL of their own (${onHost.map((h) => h.name).join(', ')}): each would keep a register of its own (cemetery-backend:databaseMode: rds, or external with sshHosts)`] : []),
      ];
    },
  },
  {
    name: 'no-world-open-port-across-resources',
    description: 'Ingress split over several resources (groups, group rules, VPC ingress rules) does not add up to a port open to the internet.',
    check: (resources, context) => {
      const contributing = resources
        .map((r) => ({ ...r, ingress: ingressOf(r.type, r.props) }))
        .filter((r) => r.ingress.length > 0);
      const prod = isProdStack(context.stack) || contributing.some((r) => isProd(r.props, context));
      const names = contributing.map((r) => r.name).join(', ');
      return PORT_CHECKS.filter((c) => prod || !c.prodOnly)
        // What one resource opens alone, the per-resource rules already report on that resource.
        .filter((c) => contributing.every((r) => c.run(r.ingress).length === 0))
        .flatMap((c) => c.run(contributing.flatMap((r) => r.ingress)))
        .map((message) => `${names} together: ${message}`);
    },
  },
];
