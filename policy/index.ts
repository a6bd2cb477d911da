// CrossGuard pack: `pulumi preview --policy-pack policy` (or `up`). Every rule is mandatory.
import { PolicyPack, type ResourceValidationPolicy } from '@pulumi/policy';
import { securityRules } from './rules';

const policies: ResourceValidationPolicy[] = securityRules.map((rule) => ({
  name: rule.name,
  description: rule.description,
  enforcementLevel: 'mandatory',
  validateResource: (args, reportViolation) => {
    if (args.type !== rule.resourceType) return;
    for (const message of rule.check(args.props)) reportViolation(message);
  },
}));

new PolicyPack('cemetery-backend-security', { policies });
