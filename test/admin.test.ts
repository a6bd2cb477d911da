/** The release's admin command (dist/admin.js), run as an operator runs it: a child process reading the env file. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createPool, type Pool } from '../app/src/db';
import { isActiveToken } from '../app/src/tokens';
import { createMigratedDatabase, DIST } from './support/db';

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let pool: Pool;
let envFile: string;

beforeAll(async () => {
  db = await createMigratedDatabase('admin');
  pool = createPool(db.url, 2, pino({ level: 'silent' }));
  // As on a host: DATABASE_URL only in the 0600 env file, never in the command's environment or arguments.
  envFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'cemetery-admin-')), 'app.env');
  writeFileSync(envFile, `DATABASE_URL=${db.url}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

const admin = (...args: string[]) => {
  const { DATABASE_URL: _drop, ...env } = process.env;
  const r = spawnSync(process.execPath, [path.join(DIST, 'admin.js'), ...args], { env: { ...env, CEMETERY_ENV_FILE: envFile }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};

test('token create prints the token once, on stdout; list shows names, never a token or hash; revoke ends it', async () => {
  const created = admin('token', 'create', '--name', 'office');
  expect(created.status).toBe(0);
  expect(created.stdout).toMatch(/^cmt_[A-Za-z0-9_-]{43}\n$/);
  expect(created.stderr).toMatch(/^created token \d+ "office"; it is shown once, here:\n$/);
  const token = created.stdout.trim();
  expect(await isActiveToken(pool, token)).toBe(true);

  const list = admin('token', 'list');
  expect(list.status).toBe(0);
  expect(list.stdout).toMatch(/^\d+\toffice\tcreated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\tactive\n$/);
  expect(list.stdout).not.toContain(token.slice(4, 20));

  expect(admin('token', 'create', '--name', 'office')).toMatchObject({ status: 1, stderr: expect.stringContaining('an active token named "office" exists: revoke it first') });
  expect(admin('token', 'revoke', '--name', 'office')).toMatchObject({ status: 0, stdout: expect.stringMatching(/^revoked token \d+ "office"\n$/) });
  expect(await isActiveToken(pool, token)).toBe(false);
  expect(admin('token', 'list').stdout).toMatch(/\toffice\tcreated \S+\trevoked \S+\n$/);
  expect(admin('token', 'revoke', '--name', 'office')).toMatchObject({ status: 1, stderr: expect.stringContaining('no active token named "office"') });
});

test.each([
  [[], 'no command given'],
  [['token', 'create'], 'token create needs --name <name>'],
  [['token', 'create', '--name'], '--name needs a value'],
  [['token', 'revoke'], 'token revoke needs --name <name> or --id <id>'],
  [['token', 'revoke', '--id', 'x'], '--id must be a token id (token list), got "x"'],
  [['token', 'list', '--all'], 'unexpected argument: --all'],
  [['user', 'add'], 'unknown command: user add'],
])('%j: usage error, exit 2', (args, message) => {
  const r = admin(...args);
  expect(r.status).toBe(2);
  expect(r.stderr).toContain(`cemetery-backend admin: ${message}\nusage: admin token create --name <name>`);
});

test('a bad token name is refused, naming the rule', () => {
  expect(admin('token', 'create', '--name', 'the office')).toMatchObject({ status: 1, stderr: expect.stringContaining('a token name is 1-64 letters, digits') });
});
