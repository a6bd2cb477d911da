import * as pulumi from '@pulumi/pulumi';
import { PROJECT } from './config';

/** Tags on every AWS resource, so a stack's resources can be found and billed together. */
export const baseTags = (environment: string): Record<string, string> => ({
  Project: PROJECT,
  Environment: environment,
  Stack: pulumi.getStack(),
  ManagedBy: 'pulumi',
});
