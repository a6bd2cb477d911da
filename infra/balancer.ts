/**
 * The front door of a fleet (hosts > 1, or loadBalancer true): an Application
 * Load Balancer in two public subnets, HTTPS with an ACM certificate validated
 * through Route 53, port 80 redirected to it, and a target group the hosts
 * join once their release serves. Each host keeps its own Caddy on port 80
 * (maintenance mode, timeouts, the retry of a GET while a worker reloads),
 * reachable from the balancer alone.
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { VPC_CIDR } from './vpc-ranges';

export type BalancerArgs = {
  vpcId: pulumi.Input<string>;
  /** Two public subnets in two zones (AWS requires two for an ALB). */
  subnetIds: pulumi.Input<string>[];
  /** HTTPS for this name, its certificate validated in hostedZoneId; without: plain HTTP on 80. */
  domainName?: string;
  hostedZoneId?: string;
  deletionProtection: boolean;
  tags: Record<string, string>;
};

/**
 * The target group's health check, on each host's Caddy (port 80) and through
 * it the app's /readyz (the app answers, and reaches its database).
 * - A host leaves the rotation after 2 failed checks 10 s apart (at most ~25 s
 *   with the 5 s timeout): a host whose PM2 daemon died, or that reboots.
 * - It returns after 2 passing checks (20 s): a rebooted host serves once PM2
 *   resurrected its workers.
 * - A release does not take the host out: the release tool's gate tries the
 *   new release on a port of its own, then PM2 reloads the workers, one or two
 *   at a time (reloadPace, scripts/release-tool/plan.ts), each old worker going
 *   once its new one is ready (Caddy retries a GET meanwhile), so /readyz
 *   keeps answering 200; the check never sees a deploy. That is also why the
 *   gate's timeout (releaseHealthTimeoutSeconds) needs no room here.
 * - Maintenance mode leaves /readyz to the app: hosts stay in, and every
 *   visitor gets the same 503 page.
 */
export const HEALTH_CHECK = { path: '/readyz', matcher: '200', interval: 10, timeout: 5, healthyThreshold: 2, unhealthyThreshold: 2 } as const;
/** Requests in flight to a host that leaves the group (replaced, or destroyed) get this long to finish. */
export const DEREGISTRATION_DELAY_SECONDS = 30;
/** TLS 1.3 and 1.2 with forward secrecy only (AWS's recommended policy for new listeners). */
export const TLS_POLICY = 'ELBSecurityPolicy-TLS13-1-2-2021-06';

export class Balancer extends pulumi.ComponentResource {
  readonly securityGroupId: pulumi.Output<string>;
  readonly dnsName: pulumi.Output<string>;
  /** Route 53's zone of the balancer's own name, for an alias record. */
  readonly zoneId: pulumi.Output<string>;
  /** CloudWatch's LoadBalancer and TargetGroup dimensions. */
  readonly arnSuffix: pulumi.Output<string>;
  readonly targetGroupArnSuffix: pulumi.Output<string>;
  private readonly targetGroupArn: pulumi.Output<string>;
  private readonly name: string;

  constructor(name: string, args: BalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Balancer', name, {}, opts);
    const parent = { parent: this };
    this.name = name;
    const https = args.domainName !== undefined;

    const securityGroup = new aws.ec2.SecurityGroup(
      `${name}-alb-sg`,
      {
        vpcId: args.vpcId,
        description: 'cemetery-backend load balancer: the web ports from anywhere, to the hosts',
        ingress: [
          { description: https ? 'HTTP (redirects to HTTPS)' : 'HTTP', protocol: 'tcp', fromPort: 80, toPort: 80, cidrBlocks: ['0.0.0.0/0'] },
          ...(https ? [{ description: 'HTTPS', protocol: 'tcp', fromPort: 443, toPort: 443, cidrBlocks: ['0.0.0.0/0'] }] : []),
        ],
        // To the hosts' proxies (their group admits this one alone) and their health checks.
        egress: [{ description: 'the hosts\' proxies', protocol: 'tcp', fromPort: 80, toPort: 80, cidrBlocks: [VPC_CIDR] }],
        tags: { ...args.tags, Name: `${name}-alb-sg` },
      },
      parent,
    );

    const balancer = new aws.lb.LoadBalancer(
      `${name}-alb`,
      {
        loadBalancerType: 'application',
        internal: false,
        subnets: args.subnetIds,
        securityGroups: [securityGroup.id],
        // A request with a header that is not valid HTTP is not passed on (request smuggling).
        dropInvalidHeaderFields: true,
        enableDeletionProtection: args.deletionProtection,
        tags: { ...args.tags, Name: `${name}-alb` },
      },
      parent,
    );

    const targets = new aws.lb.TargetGroup(
      `${name}-web`,
      {
        vpcId: args.vpcId,
        targetType: 'instance',
        protocol: 'HTTP',
        port: 80,
        deregistrationDelay: DEREGISTRATION_DELAY_SECONDS,
        healthCheck: { enabled: true, protocol: 'HTTP', port: 'traffic-port', ...HEALTH_CHECK },
        tags: args.tags,
      },
      parent,
    );
    const forward = [{ type: 'forward', targetGroupArn: targets.arn }];

    if (https) {
      const certificate = new aws.acm.Certificate(`${name}-cert`, { domainName: args.domainName!, validationMethod: 'DNS', tags: args.tags }, parent);
      // One name, one validation record: ACM's CNAME proves the zone is ours, and stays for renewals.
      const option = certificate.domainValidationOptions[0];
      const record = new aws.route53.Record(
        `${name}-cert-validation`,
        { zoneId: args.hostedZoneId!, name: option.resourceRecordName, type: option.resourceRecordType, records: [option.resourceRecordValue], ttl: 300, allowOverwrite: true },
        parent,
      );
      const validated = new aws.acm.CertificateValidation(`${name}-cert`, { certificateArn: certificate.arn, validationRecordFqdns: [record.fqdn] }, parent);
      new aws.lb.Listener(
        `${name}-https`,
        { loadBalancerArn: balancer.arn, protocol: 'HTTPS', port: 443, sslPolicy: TLS_POLICY, certificateArn: validated.certificateArn, defaultActions: forward, tags: args.tags },
        parent,
      );
      new aws.lb.Listener(
        `${name}-http`,
        {
          loadBalancerArn: balancer.arn,
          protocol: 'HTTP',
          port: 80,
          defaultActions: [{ type: 'redirect', redirect: { protocol: 'HTTPS', port: '443', statusCode: 'HTTP_301' } }],
          tags: args.tags,
        },
        parent,
      );
    } else {
      new aws.lb.Listener(`${name}-http`, { loadBalancerArn: balancer.arn, protocol: 'HTTP', port: 80, defaultActions: forward, tags: args.tags }, parent);
    }

    this.securityGroupId = securityGroup.id;
    this.dnsName = balancer.dnsName;
    this.zoneId = balancer.zoneId;
    this.arnSuffix = balancer.arnSuffix;
    this.targetGroupArn = targets.arn;
    this.targetGroupArnSuffix = targets.arnSuffix;
    this.registerOutputs({ dnsName: this.dnsName });
  }

  /**
   * The i-th host (from 0) joins the target group once `serving` (its release
   * step) succeeded: a new host takes no request before its release answers.
   */
  attach(i: number, instanceId: pulumi.Input<string>, serving: pulumi.Resource): aws.lb.TargetGroupAttachment {
    return new aws.lb.TargetGroupAttachment(`${this.name}-target-${i + 1}`, { targetGroupArn: this.targetGroupArn, targetId: instanceId, port: 80 }, { parent: this, dependsOn: [serving] });
  }
}
