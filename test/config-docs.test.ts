/**
 * One home per configuration key: infra/config.ts holds each key's schema,
 * default per environment and description; the README's table is generated
 * from it (npm run config-docs) and the stack files hold only what differs.
 */
import { readFileSync } from 'node:fs';
import { configReference, environmentOfStack, KEY_DOCS, PROJECT } from '../infra/config';
import { README, readmeWithTable } from '../scripts/config-docs';
import { stackFiles } from './support/pulumi-mocks';

test("the README's configuration table is the one infra/config.ts writes (npm run config-docs)", () => {
  const readme = readFileSync(README, 'utf8');
  expect(readmeWithTable(readme)).toBe(readme);
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
