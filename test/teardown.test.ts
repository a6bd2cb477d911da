/** scripts/teardown.ts: pure parts, and the CLI against a fake `pulumi` on PATH that records its arguments. */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

import path from 'node:path';
import { parseTtl, shortName, staleStacks, type StackSummary } from '../scripts/teardown';
import { ROOT } from './support/db';
import { tempDir } from './support/temp-dir';

const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const RECORDED_STACKS = JSON.parse(readFileSync(path.join(FIXTURES, 'pulumi-stack-ls.json'), 'utf8')) as StackSummary[];
const NOW = new Date('2026-11-27T12:00:00Z');

describe('stale staging stacks', () => {
  test('only staging-* stacks older than the TTL; never dev, prod or staging-shared, not while updating', () => {
    const stale = staleStacks(RECORDED_STACKS, NOW, parseTtl('72h'));
    expect(stale.map((s) => [shortName(s.name), s.reason])).toEqual([
      ['staging-old-manual', 'last updated 1370 h ago'],
      ['staging-pr-41', 'last updated 170 h ago'],
    ]);
  });

  test('a longer TTL keeps more', () => {
    expect(staleStacks(RECORDED_STACKS, NOW, parseTtl('30d')).map((s) => s.name)).toEqual(['staging-old-manual']);
  });

  test.each([
    ['updated an hour ago', '2026-11-27T11:00:00.000Z'],
    ['updated exactly one TTL ago', '2026-11-24T12:00:00.000Z'],
    ['never updated (its age is unknown: it may be a minute old)', undefined],
    ['with a date that does not parse', 'yesterday'],
  ])('a stack %s is never destroyed', (_what, lastUpdate) => {
    expect(staleStacks([{ name: 'staging-pr-50', lastUpdate, updateInProgress: false }], NOW, parseTtl('72h'))).toEqual([]);
  });

  test('the age rule holds for every TTL: nothing younger than it is stale', () => {
    for (const ttl of ['1h', '72h', '7d', '90m']) {
      for (const s of staleStacks(RECORDED_STACKS, NOW, parseTtl(ttl))) expect(NOW.getTime() - Date.parse(s.lastUpdate!)).toBeGreaterThan(parseTtl(ttl));
    }
  });

  test('qualified names count by their last part', () => {
    expect(shortName('cemetery/cemetery-backend/staging-pr-42')).toBe('staging-pr-42');
  });

  test.each(['72', '0h', '3w', 'soon'])('--ttl %s is refused', (ttl) => {
    expect(() => parseTtl(ttl)).toThrow(`--ttl must be a duration such as 90m, 72h or 7d, got "${ttl}"`);
  });
});

describe('the teardown CLI', () => {
  function run(args: string[], env: Record<string, string> = {}) {
    const dir = tempDir('teardown');
    const log = path.join(dir, 'calls.jsonl');
    writeFileSync(log, '');
    const result = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'scripts', 'teardown.ts'), ...args], {
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: `${path.join(FIXTURES, 'bin')}:${process.env.PATH}`,
        FAKE_PULUMI_LOG: log,
        FAKE_PULUMI_STACKS: path.join(FIXTURES, 'pulumi-stack-ls.json'),
        ...env,
      },
    });
    const calls = readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
    return { status: result.status, out: result.stdout, err: result.stderr, calls };
  }

  test('previews the destroy and prints it, destroys, then removes an existing stack', () => {
    const r = run(['--stack', 'staging-pr-42']);
    expect(r.status).toBe(0);
    expect(r.calls).toEqual([
      ['stack', 'ls', '--json'],
      ['destroy', '--stack', 'staging-pr-42', '--preview-only', '--non-interactive'],
      ['destroy', '--stack', 'staging-pr-42', '--yes', '--non-interactive'],
      ['stack', 'rm', 'staging-pr-42', '--yes', '--non-interactive'],
    ]);
    expect(r.out).toContain('Previewing destroy (staging-pr-42)');
    expect(r.out.indexOf('- 1 to delete')).toBeLessThan(r.out.indexOf('staging-pr-42: destroying its resources'));
    expect(r.out).toContain('staging-pr-42: gone');
  });

  test('no destroy ever skips its preview', () => {
    for (const args of [['--stack', 'staging-pr-42'], ['--stack', 'prod', '--force'], ['--stale', '--ttl', '72h']]) {
      const destroys = run(args).calls.filter((c) => c[0] === 'destroy');
      expect(destroys.length).toBeGreaterThan(0);
      expect(destroys.flat()).not.toContain('--skip-preview');
    }
  });

  test('--dry-run on one stack previews and destroys nothing', () => {
    const r = run(['--stack', 'staging-pr-42', '--dry-run']);
    expect(r.status).toBe(0);
    expect(r.out).toContain('- 1 to delete');
    expect(r.out).toContain('staging-pr-42: --dry-run, nothing destroyed');
    expect(r.calls.slice(1)).toEqual([['destroy', '--stack', 'staging-pr-42', '--preview-only', '--non-interactive']]);
  });

  test('a failed preview stops before anything is destroyed', () => {
    const r = run(['--stack', 'staging-pr-42'], { FAKE_PULUMI_FAIL: 'preview' });
    expect(r.status).toBe(1);
    expect(r.err).toContain('pulumi destroy --stack staging-pr-42 --preview-only --non-interactive failed');
    expect(r.calls.slice(1)).toEqual([['destroy', '--stack', 'staging-pr-42', '--preview-only', '--non-interactive']]);
  });

  test('a stack that was never created is a success with a message', () => {
    const r = run(['--stack', 'staging-pr-99']);
    expect(r.status).toBe(0);
    expect(r.out).toContain('staging-pr-99: no such stack, nothing to tear down');
    expect(r.calls).toEqual([['stack', 'ls', '--json']]);
  });

  // Prod-ness is the program's rule (a name starting with prod), not a list of names.
  test.each([
    ['dev', 'it is a long-lived stack'],
    ['staging-shared', 'it is a long-lived stack'],
    ['prod', 'it is a prod stack'],
    ['prod-eu', 'it is a prod stack'],
    ['production', 'it is a prod stack'],
    ['cemetery/cemetery-backend/prod-eu', 'it is a prod stack'],
  ])('refuses %s without --force, says why, and runs nothing', (stack, why) => {
    const r = run(['--stack', stack]);
    expect(r.status).toBe(2);
    expect(r.err).toContain(`refusing to tear down "${stack}": ${why}`);
    expect(r.calls).toEqual([]);
  });

  test('the sweep never touches a prod* stack, even one named staging-like', () => {
    const stacks: StackSummary[] = ['prod-eu', 'production', 'staging-shared', 'staging-pr-7'].map((name) => ({ name, lastUpdate: '2020-01-01T00:00:00Z' }));
    expect(staleStacks(stacks, NOW, parseTtl('1h')).map((s) => s.name)).toEqual(['staging-pr-7']);
  });

  test('--force tears down dev', () => {
    const r = run(['--stack', 'dev', '--force']);
    expect(r.status).toBe(0);
    expect(r.calls.slice(1).map((c) => c.slice(0, 4))).toEqual([
      ['destroy', '--stack', 'dev', '--preview-only'],
      ['destroy', '--stack', 'dev', '--yes'],
      ['stack', 'rm', 'dev', '--yes'],
    ]);
  });

  test('a failed destroy fails, names the stack, and keeps the stack', () => {
    const r = run(['--stack', 'staging-pr-41'], { FAKE_PULUMI_FAIL: 'destroy' });
    expect(r.status).toBe(1);
    expect(r.err).toContain('pulumi destroy --stack staging-pr-41 --yes --non-interactive failed');
    expect(r.calls.map((c) => c[0])).toEqual(['stack', 'destroy', 'destroy']);
  });

  test('--stale --dry-run lists and touches nothing', () => {
    const r = run(['--stale', '--ttl', '72h', '--dry-run']);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/staging-pr-41: stale \(last updated \d+ h ago\), would tear down/);
    expect(r.calls).toEqual([['stack', 'ls', '--json']]);
  });

  test('--stale tears down every stale staging stack and nothing else', () => {
    // The CLI measures from the real clock: the fixture's stacks age as time passes, and one may cross the TTL
    // while the CLI runs, so its choice is the stale set of the moment before it or of the moment after.
    const staleAt = (now: Date) => staleStacks(RECORDED_STACKS, now, parseTtl('72h')).map((s) => shortName(s.name));
    const before = staleAt(new Date());
    const r = run(['--stale', '--ttl', '72h']);
    const after = staleAt(new Date());
    expect(r.status).toBe(0);
    const destroyed = r.calls.filter((c) => c[0] === 'destroy' && c.includes('--preview-only')).map((c) => c[2]);
    const expected = JSON.stringify(destroyed) === JSON.stringify(before) ? before : after;
    expect(expected).toEqual(expect.arrayContaining(['staging-old-manual', 'staging-pr-41']));
    expect(r.calls.filter((c) => c[0] === 'destroy' && c.includes('--preview-only')).map((c) => c[2])).toEqual(expected);
    expect(r.calls.filter((c) => c[0] === 'destroy' && c.includes('--yes')).map((c) => c[2])).toEqual(expected);
    expect(r.calls.filter((c) => c[0] === 'stack' && c[1] === 'rm').map((c) => c[2])).toEqual(expected);
    for (const name of ['dev', 'prod', 'staging-shared', 'staging-pr-44', 'alice-sandbox']) expect(expected).not.toContain(name);
  });

  test('--stale with a TTL longer than any stack destroys nothing', () => {
    const r = run(['--stale', '--ttl', '10000d']);
    expect(r.status).toBe(0);
    expect(r.out).toContain('no stale staging stacks');
    expect(r.calls).toEqual([['stack', 'ls', '--json']]);
  });

  test.each([[[]], [['--stale']], [['--stack', 'x', '--stale', '--ttl', '1h']], [['--bogus']]])('bad usage %j exits 2', (args) => {
    const r = run(args);
    expect(r.status).toBe(2);
    expect(r.calls).toEqual([]);
  });
});
