// The Pulumi program (Pulumi.yaml `main: infra/`): `pulumi up -s dev|prod|...`.
import { createStack, loadStackConfig, type StackOutputs } from './stack';

const stack: StackOutputs = createStack(loadStackConfig());

export const environment = stack.environment;
/** The first host's address (each host's: hostAddresses). */
export const publicIp = stack.publicIp;
/** Every host's address, the first first (npm run cemetery -- --host <n> picks one). */
export const hostAddresses = stack.hostAddresses;
export const appUrl = stack.appUrl;
export const sshCommand = stack.sshCommand;
/** The host's pinned key as a known_hosts line, for the file sshCommand reads. */
export const sshKnownHosts = stack.sshKnownHosts;
export const instanceId = stack.instanceId;
export const instanceIds = stack.instanceIds;
/** hosts > 1 (or loadBalancer): the load balancer's own name, which domainName is an alias of. */
export const loadBalancerDnsName = stack.loadBalancerDnsName;
export const databaseEndpoint = stack.databaseEndpoint;
/** RDS only: another stack restores from it with restoreSourceDatabase (README: Restoring the database). */
export const databaseIdentifier = stack.databaseIdentifier;
/** Secret: `pulumi stack output databaseUrl --show-secrets`. */
export const databaseUrl = stack.databaseUrl;
export const releaseId = stack.releaseId;
/** target aws: the topic the alarms send to (alertEmail subscribes to it). */
export const alertTopicArn = stack.alertTopicArn;
/** staging-shared only: the network every staging stack finds by its tag. */
export const vpcId = stack.vpcId;
export const publicSubnetId = stack.publicSubnetId;
export const privateSubnetIds = stack.privateSubnetIds;
