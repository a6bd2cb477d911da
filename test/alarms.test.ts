/** The alarms (infra/alarms.ts) of every stack file, under mocks: what each watches, when it fires and whom it tells. */
import { CONNECTIONS_ALARM_SHARE, CPU_ALARM_PERCENT, ERROR_RATE_ALARM_PERCENT, FREE_STORAGE_ALARM_SHARE, LATENCY_ALARM_SECONDS } from '../infra/alarms';
import { parseProjectConfig, PROJECT } from '../infra/config';
import { DEFAULT_DB_POOL_MAX } from '../app/src/config';
import { MOCK_ACCOUNT_ID, runProgram, stackFiles, withUserSecrets, type RecordedResource } from './support/pulumi-mocks';

const STACKS = stackFiles();
const runs: Record<string, Awaited<ReturnType<typeof runProgram>>> = {};
beforeAll(async () => {
  for (const [stack, config] of Object.entries(STACKS)) runs[stack] = await runProgram(stack, withUserSecrets(config));
});

const ofType = (stack: string, type: string) => runs[stack].resources.filter((r: RecordedResource) => r.type === type);
const alarms = (stack: string) => Object.fromEntries(ofType(stack, 'aws:cloudwatch/metricAlarm:MetricAlarm').map((r) => [r.name.replace(/^cemetery-\w+-/, ''), r.inputs]));
const topicArn = (env: string) => `arn:aws:sns:eu-central-1:${MOCK_ACCOUNT_ID}:cemetery-${env}-alerts`;

test.each([
  ['dev', ['host-hardware', 'host-unresponsive', 'host-cpu', 'db-storage', 'db-cpu', 'db-connections']],
  // Two hosts behind the load balancer: each host's, and the balancer's.
  [
    'prod',
    ['host-hardware', 'host-unresponsive', 'host-cpu', 'host-2-hardware', 'host-2-unresponsive', 'host-2-cpu', 'lb-unhealthy-host', 'lb-5xx', 'lb-latency', 'db-storage', 'db-cpu', 'db-connections'],
  ],
  // On-host PostgreSQL reports nothing to CloudWatch: the host's alarms only.
  ['staging', ['host-hardware', 'host-unresponsive', 'host-cpu']],
  // No EC2 host, no RDS: nothing to watch.
  ['local', []],
  ['staging-shared', []],
])('%s: alarms %j, each telling the topic when it fires and when it clears', (stack, expected) => {
  const env = parseProjectConfig(withUserSecrets(STACKS[stack]), stack).environment;
  // Registered as their inputs resolve: compared as sets.
  expect(Object.keys(alarms(stack)).sort()).toEqual([...expected].sort());
  expect(ofType(stack, 'aws:sns/topic:Topic')).toHaveLength(expected.length ? 1 : 0);
  for (const [id, a] of Object.entries(alarms(stack))) {
    expect(a.name).toBe(`cemetery-${env}-${id}`);
    expect(a.alarmActions[a.alarmActions.length - 1]).toBe(topicArn(env));
    expect(a.okActions).toEqual([topicArn(env)]);
    expect(a.tags).toMatchObject({ Environment: env });
    // What to do first, with the stack's own command.
    expect(a.alarmDescription).toMatch(new RegExp(`npm run cemetery -- -s ${stack} (status|rollback)|pulumi up`));
  }
});

test('the host: hardware failure recovers the instance, an unresponsive system reboots it, CPU only tells', () => {
  const a = alarms('dev');
  const host = { namespace: 'AWS/EC2', dimensions: { InstanceId: 'cemetery-dev-vm-id' } };
  expect(a['host-hardware']).toMatchObject({ ...host, metricName: 'StatusCheckFailed_System', statistic: 'Maximum', period: 60, evaluationPeriods: 2, threshold: 1, comparisonOperator: 'GreaterThanOrEqualToThreshold' });
  expect(a['host-hardware'].alarmActions).toEqual(['arn:aws:automate:eu-central-1:ec2:recover', topicArn('dev')]);
  expect(a['host-unresponsive']).toMatchObject({ ...host, metricName: 'StatusCheckFailed_Instance', evaluationPeriods: 3 });
  expect(a['host-unresponsive'].alarmActions).toEqual(['arn:aws:automate:eu-central-1:ec2:reboot', topicArn('dev')]);
  expect(a['host-cpu']).toMatchObject({ ...host, metricName: 'CPUUtilization', statistic: 'Average', period: 300, evaluationPeriods: 3, threshold: CPU_ALARM_PERCENT });
  expect(a['host-cpu'].alarmActions).toEqual([topicArn('dev')]);
});

test.each([
  // dev: t3.medium, 2 workers, 20 GiB; prod: two c7i.xlarge hosts, 4 workers each, 100 GiB.
  ['dev', 2, 20],
  ['prod', 8, 100],
])("%s: the database's storage, CPU and connections, with thresholds from the stack (%i workers, %i GiB)", (stack, workers, storageGiB) => {
  const a = alarms(stack);
  const db = { namespace: 'AWS/RDS', dimensions: { DBInstanceIdentifier: expect.stringMatching(/^cemetery-\w+-pg-1a2b3c4$/) } };
  expect(a['db-storage']).toMatchObject({ ...db, metricName: 'FreeStorageSpace', statistic: 'Minimum', comparisonOperator: 'LessThanThreshold', threshold: storageGiB * FREE_STORAGE_ALARM_SHARE * 1024 ** 3 });
  expect(a['db-cpu']).toMatchObject({ ...db, metricName: 'CPUUtilization', threshold: CPU_ALARM_PERCENT });
  const connections = Math.ceil(workers * DEFAULT_DB_POOL_MAX * CONNECTIONS_ALARM_SHARE);
  expect(a['db-connections']).toMatchObject({ ...db, metricName: 'DatabaseConnections', statistic: 'Maximum', threshold: connections });
  expect(a['db-connections'].alarmDescription).toContain(`${workers} workers × ${DEFAULT_DB_POOL_MAX}`);
});

test("prod's second host has alarms of its own, named for it; the first keeps a single host's names", () => {
  const a = alarms('prod');
  expect(a['host-hardware'].dimensions).toEqual({ InstanceId: 'cemetery-prod-vm-id' });
  expect(a['host-2-hardware'].dimensions).toEqual({ InstanceId: 'cemetery-prod-2-vm-id' });
  expect(a['host-2-hardware'].alarmActions).toEqual(['arn:aws:automate:eu-central-1:ec2:recover', topicArn('prod')]);
  expect(a['host-2-cpu'].alarmDescription).toMatch(/^Host 2's \(cemetery-prod-2-vm\) CPU averaged/);
});

test('the load balancer: a host out of rotation for 3 minutes, 5xx per request (the hosts\' and its own), and the slowest 1% of requests', () => {
  const a = alarms('prod');
  const dimensions = { LoadBalancer: 'app/cemetery-prod-alb/50dc6c495c0c9188', TargetGroup: 'targetgroup/cemetery-prod-web/943f017f100becff' };
  expect(a['lb-unhealthy-host']).toMatchObject({ namespace: 'AWS/ApplicationELB', dimensions, metricName: 'UnHealthyHostCount', statistic: 'Maximum', period: 60, evaluationPeriods: 3, threshold: 1 });
  expect(a['lb-5xx']).toMatchObject({ evaluationPeriods: 5, datapointsToAlarm: 3, threshold: ERROR_RATE_ALARM_PERCENT, treatMissingData: 'notBreaching' });
  const queries = a['lb-5xx'].metricQueries as Array<{ id: string; expression?: string; metric?: { metricName: string; dimensions: object; stat: string } }>;
  expect(queries.map((q) => [q.id, q.metric?.metricName ?? q.expression, q.metric?.dimensions])).toEqual([
    ['hosts', 'HTTPCode_Target_5XX_Count', dimensions],
    // The balancer's own 502/503 (no host answered) belong to no target group.
    ['balancer', 'HTTPCode_ELB_5XX_Count', { LoadBalancer: dimensions.LoadBalancer }],
    ['requests', 'RequestCount', dimensions],
    ['rate', 'IF(requests > 0, 100 * (FILL(hosts, 0) + FILL(balancer, 0)) / requests, 0)', undefined],
  ]);
  expect(a['lb-latency']).toMatchObject({ namespace: 'AWS/ApplicationELB', dimensions, metricName: 'TargetResponseTime', extendedStatistic: 'p99', threshold: LATENCY_ALARM_SECONDS });
  expect(alarms('dev')['lb-5xx']).toBeUndefined();
});

test("prod mails the on-call address from its stack file; dev, with none set, has the topic and no subscriber", () => {
  expect(ofType('prod', 'aws:sns/topicSubscription:TopicSubscription').map((r) => r.inputs)).toEqual([{ topic: topicArn('prod'), protocol: 'email', endpoint: 'oncall@example.org' }]);
  expect(ofType('dev', 'aws:sns/topicSubscription:TopicSubscription')).toEqual([]);
});

test('alertEmail: required in prod, refused where nothing is watched, checked as an address', () => {
  const prod = withUserSecrets(STACKS.prod);
  const withoutEmail = Object.fromEntries(Object.entries(prod).filter(([k]) => k !== `${PROJECT}:alertEmail`));
  expect(() => parseProjectConfig(withoutEmail, 'prod')).toThrow(`${PROJECT}:alertEmail = undefined: prod's alarms must reach someone: expected the on-call address, pulumi config set alertEmail oncall@example.org`);
  expect(() => parseProjectConfig({ ...withUserSecrets(STACKS.local), [`${PROJECT}:alertEmail`]: 'ops@example.org' }, 'local')).toThrow(
    `${PROJECT}:alertEmail = "ops@example.org": the alarms watch the EC2 host and RDS of target aws: remove it`,
  );
  expect(() => parseProjectConfig({ ...withUserSecrets(STACKS.dev), [`${PROJECT}:alertEmail`]: 'oncall' }, 'dev')).toThrow(`${PROJECT}:alertEmail = "oncall": expected an email address (the alarms write to it)`);
});
