/**
 * What wakes the on-call person (target aws): CloudWatch alarms on the host
 * and, with RDS, the database, all sending to one SNS topic that alertEmail
 * subscribes to. Each alarm's name says what is wrong and its description what
 * to do first; each also says when it clears (okActions).
 */
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import { DEFAULT_DB_POOL_MAX } from '../app/src/config';
import { machineName } from './host';

export type AlarmsArgs = {
  /** The stack, for the commands the descriptions give. */
  stack: string;
  region: string;
  /** Every host, the first first. */
  instanceIds: pulumi.Input<string>[];
  /** With a load balancer: its and its target group's CloudWatch dimensions. */
  balancer?: { arnSuffix: pulumi.Input<string>; targetGroupArnSuffix: pulumi.Input<string> };
  /** RDS only (on-host PostgreSQL reports no CloudWatch metrics): its identifier, storage and the app's workers. */
  database?: { identifier: pulumi.Input<string>; allocatedStorageGiB: number; workers: number };
  /** Subscribed to the topic (AWS mails a confirmation link first); none: the topic has no subscriber yet. */
  alertEmail?: string;
  tags: Record<string, string>;
};

/** CPU use, in percent, that is too high when it lasts 15 minutes. */
export const CPU_ALARM_PERCENT = 90;
/** Share of the RDS storage left that is too little (storage autoscaling grows it up to maxAllocatedStorageGiB first). */
export const FREE_STORAGE_ALARM_SHARE = 0.1;
/** Share of the balancer's requests answered with a 5xx (by a host, or by the balancer for want of one) that pages. */
export const ERROR_RATE_ALARM_PERCENT = 1;
/** The 99th percentile of the hosts' response time, in seconds, that is too slow when it lasts 5 minutes. */
export const LATENCY_ALARM_SECONDS = 2;
/** Share of the connections the app's workers may open (workers × DB_POOL_MAX) that means requests queue for one. */
export const CONNECTIONS_ALARM_SHARE = 0.9;

export class Alarms extends pulumi.ComponentResource {
  readonly topicArn: pulumi.Output<string>;

  constructor(name: string, args: AlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('cemetery:infra:Alarms', name, {}, opts);
    const parent = { parent: this };
    const topic = new aws.sns.Topic(`${name}-alerts`, { tags: args.tags }, parent);
    if (args.alertEmail) new aws.sns.TopicSubscription(`${name}-alerts-email`, { topic: topic.arn, protocol: 'email', endpoint: args.alertEmail }, parent);
    const status = `npm run cemetery -- -s ${args.stack} status`;
    const alarm = (id: string, a: Omit<aws.cloudwatch.MetricAlarmArgs, 'alarmActions' | 'okActions' | 'tags'> & { alsoDo?: string }) => {
      const { alsoDo, ...rest } = a;
      return new aws.cloudwatch.MetricAlarm(
        `${name}-${id}`,
        { ...rest, name: `${name}-${id}`, alarmActions: [...(alsoDo ? [alsoDo] : []), topic.arn], okActions: [topic.arn], tags: args.tags },
        parent,
      );
    };
    const automate = (action: 'recover' | 'reboot') => `arn:aws:automate:${args.region}:ec2:${action}`;
    /** Host and database alike: CPU too high for 15 minutes. */
    const busyCpu = { metricName: 'CPUUtilization', statistic: 'Average', period: 300, evaluationPeriods: 3, threshold: CPU_ALARM_PERCENT, comparisonOperator: 'GreaterThanOrEqualToThreshold' };
    args.instanceIds.forEach((instanceId, i) => {
      // The first host's alarms keep a single host's names.
      const which = machineName('host', i);
      const single = args.instanceIds.length === 1;
      const whose = single ? 'the host' : `host ${i + 1} (${machineName(name, i)}-vm)`;
      const Whose = single ? "The host's" : `Host ${i + 1}'s (${machineName(name, i)}-vm)`;
      const host = { namespace: 'AWS/EC2', dimensions: { InstanceId: instanceId } };

      alarm(`${which}-hardware`, {
        ...host,
        metricName: 'StatusCheckFailed_System',
        statistic: 'Maximum',
        period: 60,
        evaluationPeriods: 2,
        threshold: 1,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        alsoDo: automate('recover'),
        alarmDescription:
          `The AWS hardware or network under ${whose} failed its check for 2 minutes. EC2 recovers the instance onto other hardware (same instance, address and volumes); ` +
          `its workers come back with PM2 at boot. Then: ${status}. If it fires again, stop and start the instance (new hardware) or replace it with pulumi up --replace.`,
      });
      alarm(`${which}-unresponsive`, {
        ...host,
        metricName: 'StatusCheckFailed_Instance',
        statistic: 'Maximum',
        period: 60,
        evaluationPeriods: 3,
        threshold: 1,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        alsoDo: automate('reboot'),
        alarmDescription:
          `${Whose} own system stopped answering EC2's check for 3 minutes (kernel, memory, disk full, network config). EC2 reboots it. ` +
          `Then: ${status}; the EC2 console's system log shows why. If it fires again: npm run cemetery -- -s ${args.stack} logs --err, and free disk or memory.`,
      });
      alarm(`${which}-cpu`, {
        ...host,
        ...busyCpu,
        alarmDescription:
          `${Whose} CPU averaged ${CPU_ALARM_PERCENT}% or more for 15 minutes: requests slow down and the rate limit may not be enough. ` +
          `Check: ${status} (each worker's requests/s and p95). Then a bigger instanceType, or find the client (the logs name each request's address).`,
      });
    });

    if (args.balancer) {
      const dimensions = { LoadBalancer: args.balancer.arnSuffix, TargetGroup: args.balancer.targetGroupArnSuffix };
      const balancer = { namespace: 'AWS/ApplicationELB', dimensions };
      const hostsOutput = `pulumi stack output -s ${args.stack} hostAddresses`;
      alarm('lb-unhealthy-host', {
        ...balancer,
        metricName: 'UnHealthyHostCount',
        statistic: 'Maximum',
        period: 60,
        evaluationPeriods: 3,
        threshold: 1,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        alarmDescription:
          "A host has failed the load balancer's health check (/readyz through its Caddy) for 3 minutes: the others carry its share. " +
          `Find it in the target group's console page (its instance id; ${hostsOutput} lists the addresses), then on it: ${status}, and logs --err. ` +
          'A host that will not come back: pulumi up --replace its instance (the others serve meanwhile).',
      });
      // Errors per request, not a count: a busy hour must not page for what a quiet one would not.
      const count = (id: string, metricName: string, of: Record<string, pulumi.Input<string>> = dimensions) => ({ id, metric: { namespace: balancer.namespace, metricName, dimensions: of, stat: 'Sum', period: 60 } });
      alarm('lb-5xx', {
        metricQueries: [
          count('hosts', 'HTTPCode_Target_5XX_Count'),
          // The balancer's own answers have no target group.
          count('balancer', 'HTTPCode_ELB_5XX_Count', { LoadBalancer: args.balancer.arnSuffix }),
          count('requests', 'RequestCount'),
          { id: 'rate', expression: 'IF(requests > 0, 100 * (FILL(hosts, 0) + FILL(balancer, 0)) / requests, 0)', label: 'percent of requests answered 5xx', returnData: true },
        ],
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        threshold: ERROR_RATE_ALARM_PERCENT,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        treatMissingData: 'notBreaching',
        alarmDescription:
          `${ERROR_RATE_ALARM_PERCENT}% or more of the requests got a 5xx in 3 of the last 5 minutes (from the app, or 502/503 from the load balancer when no host answered). ` +
          `Check: ${status} (errors per worker), logs --err; a release that just went out: npm run cemetery -- -s ${args.stack} rollback. ` +
          'Maintenance mode answers 503 too: this fires while it is on.',
      });
      alarm('lb-latency', {
        ...balancer,
        metricName: 'TargetResponseTime',
        extendedStatistic: 'p99',
        period: 60,
        evaluationPeriods: 5,
        threshold: LATENCY_ALARM_SECONDS,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        treatMissingData: 'notBreaching',
        alarmDescription:
          `The slowest 1% of requests took ${LATENCY_ALARM_SECONDS} s or more for 5 minutes. Check: ${status} (p95, DB requests waiting per worker); ` +
          'the database alarms (CPU, connections); then slow queries, or more hosts or a bigger instanceType.',
      });
    }

    if (args.database) {
      const db = { namespace: 'AWS/RDS', dimensions: { DBInstanceIdentifier: args.database.identifier } };
      const ceiling = args.database.workers * DEFAULT_DB_POOL_MAX;
      const nearCeiling = Math.ceil(ceiling * CONNECTIONS_ALARM_SHARE);
      alarm('db-storage', {
        ...db,
        metricName: 'FreeStorageSpace',
        statistic: 'Minimum',
        period: 300,
        evaluationPeriods: 1,
        threshold: Math.round(args.database.allocatedStorageGiB * FREE_STORAGE_ALARM_SHARE * 1024 ** 3),
        comparisonOperator: 'LessThanThreshold',
        alarmDescription:
          `The database has less than ${FREE_STORAGE_ALARM_SHARE * 100}% of its first ${args.database.allocatedStorageGiB} GiB free. Storage autoscaling grows it up to maxAllocatedStorageGiB; ` +
          'if this stays, it is at that ceiling: raise maxAllocatedStorageGiB and pulumi up before writes fail.',
      });
      alarm('db-cpu', {
        ...db,
        ...busyCpu,
        alarmDescription:
          `The database's CPU averaged ${CPU_ALARM_PERCENT}% or more for 15 minutes: queries slow down and may hit the statement timeout (503s). ` +
          `Check: ${status} (p95 and DB requests waiting per worker); look for the slow queries (Performance Insights, or pg_stat_statements), then a bigger rdsInstanceClass and pulumi up.`,
      });
      alarm('db-connections', {
        ...db,
        metricName: 'DatabaseConnections',
        statistic: 'Maximum',
        period: 60,
        evaluationPeriods: 5,
        threshold: nearCeiling,
        comparisonOperator: 'GreaterThanOrEqualToThreshold',
        alarmDescription:
          `The database held ${nearCeiling} connections or more for 5 minutes, near all the app may open (${args.database.workers} workers × ${DEFAULT_DB_POOL_MAX}): ` +
          `requests queue for a connection and answer 503 after databaseConnectTimeoutSeconds. Check: ${status} (DB requests waiting per worker); ` +
          'then slow queries, or a client other than the app.',
      });
    }
    this.topicArn = topic.arn;
    this.registerOutputs({ topicArn: this.topicArn });
  }
}
