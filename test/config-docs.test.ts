/**
 * One home per configuration key: infra/config.ts holds each key's schema,
 * default per environment and description; the README's table is generated
 * from it (npm run config-docs), and so is Pulumi.yaml's `config:` block; the
 * stack files hold only what differs.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { configReference, environmentOfStack, KEY_DOCS, parseProjectConfig, PROJECT } from '../infra/config';
import { declaredConfig, PULUMI_YAML, pulumiYamlWithConfig, README, readmeWithTable } from '../scripts/config-docs';
import { stackFiles, withUserSecrets } from './support/pulumi-mocks';

test("the README's configuration table is the one infra/config.ts writes (npm run config-docs)", () => {
  const readme = readFileSync(README, 'utf8');
  expect(readmeWithTable(readme)).toBe(readme);
});

test("Pulumi.yaml's config block is the one infra/config.ts writes (npm run config-docs)", () => {
  const text = readFileSync(PULUMI_YAML, 'utf8');
  expect(pulumiYamlWithConfig(text)).toBe(text);
  expect((parse(text) as { config: unknown }).config).toEqual(declaredConfig());
});

test('Pulumi.yaml declares only keys with one default in every environment, each with that default, its type and its description', () => {
  const declared = declaredConfig();
  const byKey = Object.fromEntries(configReference().map((r) => [`${PROJECT}:${r.key}`, r]));
  expect(Object.keys(declared).length).toBeGreaterThan(10);
  for (const [key, d] of Object.entries(declared)) {
    const r = byKey[key];
    // A declared key without a default is required in every stack, and a declared default reaches every stack.
    expect({ key, defaults: new Set(Object.values(r.defaults)).size, value: String(d.default) }).toEqual({ key, defaults: 1, value: r.defaults.dev });
    expect(d.type).toBe(typeof d.default === 'number' ? 'integer' : typeof d.default === 'boolean' ? 'boolean' : 'string');
    expect(d.description).toBe(r.about);
  }
  // Per-environment keys are not declared: their defaults live in the program.
  for (const key of ['instanceType', 'databaseMode', 'backupRetentionDays', 'multiAz']) expect(declared[`${PROJECT}:${key}`]).toBeUndefined();
});

test.each(Object.entries(stackFiles()))("Pulumi.%s.yaml: the declared defaults that Pulumi adds to the stack's config change nothing the program does", (stack, config) => {
  const stackConfig = withUserSecrets(config); // and what a user sets by hand (the deploy key)
  const withDeclared = { ...Object.fromEntries(Object.entries(declaredConfig()).map(([k, d]) => [k, String(d.default)])), ...stackConfig };
  expect(parseProjectConfig(withDeclared, stack, { preview: true })).toEqual(parseProjectConfig(stackConfig, stack, { preview: true }));
});

test('every key of the schema says what it takes, and nothing else is described', () => {
  const keys = configReference().map((r) => r.key.replace(/^aws:/, ''));
  expect(Object.keys(KEY_DOCS).sort()).toEqual([...keys].sort());
  for (const key of keys) expect({ key, about: KEY_DOCS[key as keyof typeof KEY_DOCS].length > 10 }).toEqual({ key, about: true });
});

test.each(Object.entries(stackFiles()))('Pulumi.%s.yaml sets no key to its environment\'s default', (stack, config) => {
  const env = environmentOfStack(stack);
  const defaults = Object.fromEntries(configReference().map((r) => [r.key, r.defaults[env]]));
  const repeated = Object.entries(config)
    .filter(([key]) => key.startsWith(`${PROJECT}:`))
    .map(([key, value]) => [key.slice(PROJECT.length + 1), value])
    .filter(([key, value]) => defaults[key] !== undefined && defaults[key] === value)
    .map(([key, value]) => `${key}: ${value}`);
  expect(repeated).toEqual([]);
});
