// The bootstrap program (infra/bootstrap/Pulumi.yaml): `pulumi up -C infra/bootstrap -s <account>`, once per account.
import { createBootstrap, loadBootstrapConfig } from './bootstrap';

const outputs = createBootstrap(loadBootstrapConfig());

export const stateBackend = outputs.stateBackend;
export const secretsProviders = outputs.secretsProviders;
export const roleArns = outputs.roleArns;
