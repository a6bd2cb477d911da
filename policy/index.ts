// CrossGuard pack: `pulumi preview --policy-pack policy` (or `up`). Every rule is mandatory.
import { PolicyPack, type ResourceValidationPolicy, type StackValidationPolicy } from '@pulumi/policy';
import { appliesTo, securityRules, stackOfUrn, stackRules } from './rules';

const resourcePolicies: ResourceValidationPolicy[] = securityRules.map((rule) => ({
  name: rule.name,
  description: rule.description,
  enforcementLevel: 'mandatory',
  validateResource: (args, reportViolation) => {
    if (!appliesTo(rule, args.type)) return;
    for (const message of rule.check(args.props, { stack: stackOfUrn(args.urn), type: args.type })) reportViolation(message);
  },
}));

const stackPolicies: StackValidationPolicy[] = stackRules.map((rule) => ({
  name: rule.name,
  description: rule.description,
  enforcementLevel: 'mandatory',
  validateStack: (args, reportViolation) => {
    const stack = args.resources.length ? stackOfUrn(args.resources[0].urn) : '';
    for (const message of rule.check(args.resources, { stack })) reportViolation(message);
  },
}));

new PolicyPack('cemetery-backend-security', { policies: [...resourcePolicies, ...stackPolicies] });
