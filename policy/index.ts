// CrossGuard pack: `pulumi preview --policy-pack policy` (or `up`). Every rule is mandatory.
import { PolicyPack, type ResourceValidationPolicy } from '@pulumi/policy';
import { securityRules, stackOfUrn } from './rules';

const policies: ResourceValidationPolicy[] = securityRules.map((rule) => ({
  name: rule.name,
  description: rule.description,
  enforcementLevel: 'mandatory',
  validateResource: (args, reportViolation) => {
    if (rule.resourceType !== '*' && args.type !== rule.resourceType) return;
    for (const message of rule.check(args.props, { stack: stackOfUrn(args.urn) })) reportViolation(message);
  },
}));

new PolicyPack('cemetery-backend-security', { policies });
