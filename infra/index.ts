// The Pulumi program (Pulumi.yaml `main: infra/`): `pulumi up -s dev|prod|...`.
import { createStack, loadStackConfig } from './stack';

const stack = createStack(loadStackConfig());

export const environment = stack.environment;
export const publicIp = stack.publicIp;
export const appUrl = stack.appUrl;
export const sshCommand = stack.sshCommand;
export const instanceId = stack.instanceId;
export const databaseEndpoint = stack.databaseEndpoint;
/** Secret: `pulumi stack output databaseUrl --show-secrets`. */
export const databaseUrl = stack.databaseUrl;
export const releaseId = stack.releaseId;
