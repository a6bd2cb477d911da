/** The GitHub workflows: valid against the workflow schema, and every npm script they call exists. */
import { validateAction, validateWorkflow } from '@action-validator/core';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ROOT } from './support/db';

const WORKFLOWS = path.join(ROOT, '.github', 'workflows');
const files = readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
const scripts = Object.keys(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts);

type Step = { run?: string; uses?: string; with?: Record<string, string | boolean>; env?: Record<string, string>; if?: string };
type Job = {
  if?: string;
  needs?: string | string[];
  'runs-on': string;
  environment?: string;
  steps?: Step[];
  permissions?: Record<string, string>;
  concurrency?: { group: string };
  env?: Record<string, string>;
  strategy?: { matrix: Record<string, string[]> };
};
type Workflow = { on: Record<string, any>; env?: Record<string, string>; permissions?: unknown; concurrency?: { group: string }; jobs: Record<string, Job> };
const load = (file: string) => parse(readFileSync(path.join(WORKFLOWS, file), 'utf8')) as Workflow;
const allRuns = (steps: Step[] = []) => steps.map((s) => s.run ?? '').join('\n');
const ACTION_FILE = path.join(ROOT, '.github', 'actions', 'pulumi-stack', 'action.yml');
const action = parse(readFileSync(ACTION_FILE, 'utf8')) as { inputs: Record<string, { required?: boolean }>; runs: { steps: Step[] } };
const jobsOf = (file: string) => Object.entries(load(file).jobs).map(([name, job]) => ({ file, name, job }));
const allJobs = files.flatMap(jobsOf);

test('the workflows are there', () => {
  expect(files.sort()).toEqual(['pull-request.yml', 'staging-sweep.yml', 'staging.yml', 'up.yml']);
});

describe.each(files)('%s', (file) => {
  const source = readFileSync(path.join(WORKFLOWS, file), 'utf8');
  const workflow = load(file);

  test('is a valid workflow', () => {
    expect(validateWorkflow(source).errors).toEqual([]);
  });

  test('every npm script it runs exists', () => {
    const runs = Object.values(workflow.jobs).map((job) => allRuns(job.steps)).join('\n');
    for (const [, script] of runs.matchAll(/npm run ([\w:-]+)/g)) expect(scripts).toContain(script);
    if (/npm test\b/.test(runs)) expect(scripts).toContain('test');
  });

  test('grants nothing by default; each job asks for what it needs', () => {
    expect(workflow.permissions).toEqual({});
    for (const job of Object.values(workflow.jobs)) {
      expect(Object.keys(job.permissions ?? {}).every((k) => ['contents', 'pull-requests', 'id-token'].includes(k))).toBe(true);
      expect(job.permissions?.contents ?? 'read').toBe('read');
    }
  });

  test('local actions it uses exist', () => {
    for (const job of Object.values(workflow.jobs)) {
      for (const step of job.steps ?? []) {
        if (step.uses?.startsWith('./')) expect(existsSync(path.join(ROOT, step.uses, 'action.yml'))).toBe(true);
      }
    }
  });
});

test('the composite action is a valid action and sends the private key through stdin only, and only when given', () => {
  expect(validateAction(readFileSync(ACTION_FILE, 'utf8')).errors).toEqual([]);
  const runs = action.runs.steps.map((s) => s.run ?? '').join('\n');
  expect(runs).toContain(`printf '%s\\n' "$SSH_PRIVATE_KEY" | npx pulumi config set --stack "$STACK" --secret sshPrivateKey`);
  expect(runs).not.toMatch(/--secret sshPrivateKey\s+"?\$/);
  expect(runs).toMatch(/if \[ -n "\$SSH_PRIVATE_KEY" \]; then\n\s*# [^\n]*\n\s*printf/);
  expect(action.inputs['ssh-private-key'].required).toBe(false);
});

test('a self-managed backend gets a secrets provider, or the job stops saying so', () => {
  const runs = action.runs.steps.map((s) => s.run ?? '').join('\n');
  expect(runs).toContain('::error title=No secrets provider::');
  expect(runs).toContain(`npx pulumi stack select --create "$STACK" \${SECRETS_PROVIDER:+--secrets-provider "$SECRETS_PROVIDER"}`);
  expect(runs).toContain(`printf 'secretsprovider: %s\\n' "$SECRETS_PROVIDER" >> "Pulumi.$STACK.yaml"`);
  for (const { job } of allJobs) {
    for (const step of job.steps ?? []) if (step.uses === './.github/actions/pulumi-stack') expect(step.with!['secrets-provider']).toBe('${{ vars.PULUMI_SECRETS_PROVIDER }}');
  }
});

describe('supply chain', () => {
  const sources = [...files.map((f) => path.join(WORKFLOWS, f)), ACTION_FILE];

  test.each(sources.map((f) => path.relative(ROOT, f)))('%s pins every third-party action by commit, with its tag in a comment', (file) => {
    const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n').filter((l) => /^\s*(- )?uses:/.test(l));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const ref = line.replace(/^\s*(- )?uses:\s*/, '');
      if (ref.startsWith('./')) continue;
      expect(ref).toMatch(/^[\w.-]+\/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/);
    }
  });
});

describe('credentials per environment', () => {
  // Everything that opens a cloud account, a stack's state or a host lives in a GitHub
  // environment; a job without one can reach none of it (and the roles trust only
  // repo:<owner>/<repo>:environment:<name>).
  const ENVIRONMENT_ONLY = /secrets\.(?!GITHUB_TOKEN\b)\w+|vars\.(AWS_ROLE_ARN|SSH_PUBLIC_KEY|PULUMI_SECRETS_PROVIDER)\b|id-token/;

  test.each(files)('%s: no secret or role outside a job with an environment, none at workflow level', (file) => {
    const workflow = load(file);
    expect(JSON.stringify(workflow.env ?? {})).not.toMatch(ENVIRONMENT_ONLY);
    for (const { name, job } of jobsOf(file)) {
      if (!job.environment) expect({ job: name, uses: JSON.stringify(job).match(ENVIRONMENT_ONLY)?.[0] }).toEqual({ job: name, uses: undefined });
    }
  });

  test('production is entered only by the prod job of up.yml, dispatched on main', () => {
    const prodJobs = allJobs.filter(({ job }) => job.environment === 'production');
    expect(prodJobs.map(({ file, name }) => `${file}:${name}`)).toEqual(['up.yml:prod']);
    const up = load('up.yml');
    expect(Object.keys(up.on).sort()).toEqual(['push', 'workflow_dispatch']);
    expect(up.on.push).toEqual({ branches: ['main'] });
    expect(up.jobs.prod.if).toBe("github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main'");
    expect(up.jobs.prod.needs).toEqual(['test', 'prod-preflight']);
    expect(up.on.workflow_dispatch.inputs.command).toMatchObject({ type: 'choice', options: ['preview', 'up'], default: 'preview' });
  });

  test('dev is updated only on a push to main, in the dev environment', () => {
    const { dev } = load('up.yml').jobs;
    expect(dev).toMatchObject({ environment: 'dev', if: "github.event_name == 'push' && github.ref == 'refs/heads/main'", concurrency: { group: 'pulumi-dev' } });
  });

  test('pull requests reach only the preview and staging environments; the preview holds no private key and no prod', () => {
    const onPullRequest = files.filter((f) => 'pull_request' in load(f).on || 'pull_request_target' in load(f).on);
    expect(onPullRequest.sort()).toEqual(['pull-request.yml', 'staging.yml']);
    const environments = onPullRequest.flatMap(jobsOf).map(({ job }) => job.environment).filter(Boolean);
    expect([...new Set(environments)].sort()).toEqual(['preview', 'staging']);
    expect(files.some((f) => 'pull_request_target' in load(f).on)).toBe(false);

    const preview = load('pull-request.yml').jobs.preview;
    expect(preview.environment).toBe('preview');
    expect(preview.strategy!.matrix.stack).toEqual(['dev']);
    expect(JSON.stringify(preview)).not.toMatch(/SSH_PRIVATE_KEY|\bprod\b/);
    expect(preview.permissions).toEqual({ contents: 'read', 'pull-requests': 'write', 'id-token': 'write' });
  });

  test('a missing PROD_RUNNER fails fast, before approval, with a message; a wrong branch too', () => {
    const { jobs } = load('up.yml');
    const preflight = jobs['prod-preflight'];
    expect(preflight.environment).toBeUndefined();
    expect(preflight.permissions).toEqual({});
    const run = allRuns(preflight.steps);
    expect(run).toContain('if [ "$COMMAND" = up ] && [ -z "$PROD_RUNNER" ]; then');
    expect(run).toContain('::error title=PROD_RUNNER is not set::');
    expect(run).toContain('if [ "$GITHUB_REF" != refs/heads/main ]; then');
    expect(jobs.prod['runs-on']).toBe("${{ inputs.command == 'up' && vars.PROD_RUNNER || 'ubuntu-24.04' }}");
    // Only an update gets the private key.
    const stackStep = jobs.prod.steps!.find((s) => s.uses === './.github/actions/pulumi-stack')!;
    expect(stackStep.with!['ssh-private-key']).toBe("${{ inputs.command == 'up' && secrets.SSH_PRIVATE_KEY || '' }}");
  });
});

describe("prod's runner", () => {
  // The runner inside prod's sshAllowedCidrs serves only up.yml's prod job. GitHub enforces it
  // (a runner group limited to up.yml on main, docs/delivery.md: The prod runner); this catches the
  // workflow that would ask for it anyway. A pull request can edit this test too: the runner
  // group's workflow restriction is the control, this is the alarm.
  const GITHUB_HOSTED = /^ubuntu-\d{2}\.\d{2}$/;

  test.each(files)('%s: every job but up.yml:prod runs on a GitHub-hosted label, written out', (file) => {
    for (const { name, job } of jobsOf(file)) {
      if (file === 'up.yml' && name === 'prod') continue;
      expect({ job: `${file}:${name}`, runsOn: job['runs-on'] }).toEqual({ job: `${file}:${name}`, runsOn: expect.stringMatching(GITHUB_HOSTED) });
    }
  });

  test('no workflow but up.yml, and no action, names PROD_RUNNER or a self-hosted runner', () => {
    const sources = [...files.map((f) => path.join(WORKFLOWS, f)), ACTION_FILE];
    const naming = sources.filter((f) => /PROD_RUNNER|self-hosted/.test(readFileSync(f, 'utf8'))).map((f) => path.relative(ROOT, f));
    expect(naming).toEqual(['.github/workflows/up.yml']);
  });

  test('in up.yml, only the prod job reaches it: dispatched on main, in production, and an input chooses only whether', () => {
    const up = load('up.yml');
    const jobsNamingIt = Object.entries(up.jobs).filter(([, job]) => /PROD_RUNNER/.test(JSON.stringify(job['runs-on']))).map(([name]) => name);
    expect(jobsNamingIt).toEqual(['prod']);
    expect(up.jobs.prod).toMatchObject({ environment: 'production', if: "github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main'" });
    // The only input in runs-on is a choice between two words: it picks PROD_RUNNER or the hosted runner, never a label.
    expect(up.jobs.prod['runs-on']).toBe("${{ inputs.command == 'up' && vars.PROD_RUNNER || 'ubuntu-24.04' }}");
    expect(up.on.workflow_dispatch.inputs).toEqual({ command: expect.objectContaining({ type: 'choice', options: ['preview', 'up'] }) });
  });

  test('no workflow is reusable or callable by another (workflow_call would carry its runs-on elsewhere)', () => {
    expect(files.filter((f) => 'workflow_call' in load(f).on)).toEqual([]);
  });
});

describe('policies are enforced where changes happen', () => {
  const pulumiSteps = [...allJobs.flatMap(({ file, name, job }) => (job.steps ?? []).map((step) => ({ where: `${file}:${name}`, step }))), ...action.runs.steps.map((step) => ({ where: 'action', step }))];

  test('every preview and update runs with the CrossGuard pack', () => {
    const actions = pulumiSteps.filter(({ step }) => step.uses?.startsWith('pulumi/actions@'));
    expect(actions.map(({ where }) => where).sort()).toEqual(['pull-request.yml:preview', 'staging.yml:deploy', 'up.yml:dev', 'up.yml:prod']);
    for (const { where, step } of actions) {
      expect(['preview', 'up', '${{ inputs.command }}']).toContain(step.with!.command);
      expect({ where, policyPacks: step.with!.policyPacks }).toEqual({ where, policyPacks: 'policy' });
    }
    // And no step runs the CLI's preview or up by itself, around the pack.
    for (const { where, step } of pulumiSteps) expect({ where, run: /pulumi (up|preview|update)\b/.test(step.run ?? '') }).toEqual({ where, run: false });
  });

  test('the pack is a CrossGuard pack at policy/', () => {
    expect(existsSync(path.join(ROOT, 'policy', 'PulumiPolicy.yaml'))).toBe(true);
  });
});

describe('staging: label and close rules', () => {
  const staging = load('staging.yml');

  test('per pull request, in one queue, from the staging template', () => {
    expect(staging.env!.STACK).toBe('staging-pr-${{ github.event.pull_request.number }}');
    expect(staging.concurrency!.group).toBe('pulumi-staging-pr-${{ github.event.pull_request.number }}');
    expect(staging.on.pull_request.types.sort()).toEqual(['closed', 'labeled', 'reopened', 'synchronize', 'unlabeled']);
    expect(staging.jobs.deploy.steps!.find((s) => s.uses === './.github/actions/pulumi-stack')!.with!.template).toBe('Pulumi.staging.yaml');
    expect(allRuns(staging.jobs.teardown.steps)).toContain('npm run teardown -- --stack "$STACK"');
    expect(allRuns(load('staging-sweep.yml').jobs.sweep.steps)).toContain('npm run teardown -- --stale --ttl "$TTL"');
  });

  // The job conditions, evaluated for events as GitHub would send them.
  function evaluate(condition: string, event: { action: string; state: 'open' | 'closed'; labels: string[]; fork?: boolean }): boolean {
    const js = condition
      .replace(/\$\{\{|\}\}/g, '')
      .replace(/github\.event\.pull_request\.state/g, JSON.stringify(event.state))
      .replace(/github\.event\.action/g, JSON.stringify(event.action))
      .replace(/contains\(github\.event\.pull_request\.labels\.\*\.name, '([\w-]+)'\)/g, (_m, label: string) => String(event.labels.includes(label)))
      .replace(/github\.event\.pull_request\.head\.repo\.full_name == github\.repository/g, String(!event.fork))
      .replace(/==/g, '===');
    expect(js).not.toMatch(/github\./);
    return new Function(`return (${js});`)() as boolean;
  }
  const run = (event: Parameters<typeof evaluate>[1]) =>
    Object.entries(staging.jobs)
      .filter(([, job]) => evaluate(job.if!, event))
      .map(([name]) => name);

  test.each([
    ['labelled', { action: 'labeled', state: 'open', labels: ['deploy-staging'] }, ['deploy']],
    ['a push to a labelled pull request', { action: 'synchronize', state: 'open', labels: ['deploy-staging'] }, ['deploy']],
    ['a push without the label', { action: 'synchronize', state: 'open', labels: [] }, []],
    ['reopened with the label', { action: 'reopened', state: 'open', labels: ['deploy-staging'] }, ['deploy']],
    ['the label removed', { action: 'unlabeled', state: 'open', labels: ['other'] }, ['teardown']],
    ['another label removed, deploy-staging kept', { action: 'unlabeled', state: 'open', labels: ['deploy-staging'] }, ['deploy']],
    ['closed', { action: 'closed', state: 'closed', labels: ['deploy-staging'] }, ['teardown']],
    ['labelled after closing (it replaced the queued closed run)', { action: 'labeled', state: 'closed', labels: ['deploy-staging'] }, ['teardown']],
    ['a fork, labelled', { action: 'labeled', state: 'open', labels: ['deploy-staging'], fork: true }, []],
  ] as const)('%s: %j runs %j', (_what, event, expected) => {
    expect(run({ ...event, labels: [...event.labels] })).toEqual(expected);
  });
});
