/** The GitHub workflows: valid against the workflow schema, and every npm script they call exists. */
import { validateAction, validateWorkflow } from '@action-validator/core';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ROOT } from './support/db';

const WORKFLOWS = path.join(ROOT, '.github', 'workflows');
const files = readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
const scripts = Object.keys(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts);

type Step = { run?: string; uses?: string; with?: Record<string, string> };
type Workflow = { permissions?: unknown; jobs: Record<string, { steps?: Step[]; permissions?: Record<string, string>; concurrency?: unknown }> };
const load = (file: string) => parse(readFileSync(path.join(WORKFLOWS, file), 'utf8')) as Workflow;
const allRuns = (steps: Step[] = []) => steps.map((s) => s.run ?? '').join('\n');

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

test('the composite action is a valid action and sends the private key through stdin only', () => {
  const file = path.join(ROOT, '.github', 'actions', 'pulumi-stack', 'action.yml');
  const source = readFileSync(file, 'utf8');
  expect(validateAction(source).errors).toEqual([]);
  const runs = (parse(source) as { runs: { steps: Step[] } }).runs.steps.map((s) => s.run ?? '').join('\n');
  expect(runs).toContain(`printf '%s\\n' "$SSH_PRIVATE_KEY" | npx pulumi config set --stack "$STACK" --secret sshPrivateKey`);
  expect(runs).not.toMatch(/--secret sshPrivateKey\s+"?\$/);
});

describe('delivery rules', () => {
  test('pull requests: tests, then a preview diff of dev and prod as a comment', () => {
    const preview = load('pull-request.yml').jobs.preview as { needs: string; strategy: { matrix: { stack: string[] } }; steps: Step[]; permissions: object };
    expect(preview.needs).toBe('test');
    expect(preview.strategy.matrix.stack).toEqual(['dev', 'prod']);
    expect(preview.permissions).toEqual({ contents: 'read', 'pull-requests': 'write', 'id-token': 'write' });
    const action = preview.steps.find((s) => s.uses === 'pulumi/actions@v7')!;
    expect(action.with).toMatchObject({ command: 'preview', diff: true, refresh: true, 'comment-on-pr': true });
    // A fork has no secrets: the preview says so and skips instead of failing.
    expect(allRuns(preview.steps)).toContain('::notice title=Preview of ${{ matrix.stack }} skipped::');
  });

  test('prod is updated only by dispatch, behind the production environment; dev on push', () => {
    const { jobs } = load('up.yml') as unknown as { jobs: Record<string, { if: string; environment: string; concurrency: { group: string } }> };
    expect(jobs.prod).toMatchObject({ environment: 'production', concurrency: { group: 'pulumi-prod' } });
    expect(jobs.prod.if).toContain("github.event_name == 'workflow_dispatch'");
    expect(jobs.dev.if).toBe("github.event_name == 'push'");
    expect(jobs.dev.concurrency.group).toBe('pulumi-dev');
  });

  test('staging: per pull request, label-gated, torn down on close with the teardown tool', () => {
    const staging = load('staging.yml') as unknown as { env: Record<string, string>; concurrency: { group: string }; jobs: Record<string, { if: string; steps: Step[] }> };
    expect(staging.env.STACK).toBe('staging-pr-${{ github.event.pull_request.number }}');
    expect(staging.concurrency.group).toBe('pulumi-staging-pr-${{ github.event.pull_request.number }}');
    expect(staging.jobs.deploy.if).toContain("contains(github.event.pull_request.labels.*.name, 'deploy-staging')");
    expect(staging.jobs.deploy.steps.find((s) => s.uses === './.github/actions/pulumi-stack')!.with!.template).toBe('Pulumi.staging.yaml');
    expect(allRuns(staging.jobs.teardown.steps)).toContain('npm run teardown -- --stack "$STACK"');
    expect(allRuns(load('staging-sweep.yml').jobs.sweep.steps)).toContain('npm run teardown -- --stale --ttl "$TTL"');
  });
});
