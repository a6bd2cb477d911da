/** The release bundle (app/dist) started as a plain process: configuration errors and a database that is not there yet. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../scripts/lib/ports.cjs';
import { waitUntil } from '../scripts/lib/wait.cjs';
import { adminQuery, DIST } from './support/db';
import { getFresh } from './support/http';
import { tempDir } from './support/temp-dir';

// Waits are generous (a busy machine is slow), never a measure of speed.
jest.setTimeout(180000);

const SERVER = path.join(DIST, 'server.js');
const envFile = (text: string) => {
  const file = path.join(tempDir('startup'), 'app.env');
  writeFileSync(file, text, { mode: 0o600 });
  return file;
};
const cleanEnv = () => {
  const env = { ...process.env };
  for (const key of ['DATABASE_URL', 'PORT', 'LOG_LEVEL', 'DB_POOL_MAX', 'DB_CONNECT_TIMEOUT_MS', 'SHUTDOWN_TIMEOUT_MS', 'CEMETERY_ENV_FILE']) delete env[key];
  return env;
};

describe('configuration errors exit 78 with a message naming the variable', () => {
  test.each([
    [{}, 'DATABASE_URL is required'],
    [{ DATABASE_URL: 'mysql://u:secret-pw@h/db' }, 'DATABASE_URL must be a postgres:// URL'],
    [{ DATABASE_URL: 'postgres://u:p@h/db', PORT: '70000' }, 'PORT must be an integer from 1 to 65535, got "70000"'],
    [{ DATABASE_URL: 'postgres://u:p@h/db', LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
    [{ DATABASE_URL: 'postgres://u:p@h/db', DB_CONNECT_TIMEOUT_MS: '3s' }, 'DB_CONNECT_TIMEOUT_MS must be an integer from 100 to 60000, got "3s"'],
    [{ CEMETERY_ENV_FILE: '/nonexistent/app.env' }, 'CEMETERY_ENV_FILE /nonexistent/app.env cannot be read (ENOENT)'],
    // The file is read by the app itself: its bad value is reported like the environment's.
    [{ CEMETERY_ENV_FILE: envFile('DATABASE_URL=postgres://u:p@h/db\nLOG_LEVEL=loud\n') }, 'LOG_LEVEL must be one of'],
  ])('%j', (vars, message) => {
    const result = spawnSync(process.execPath, [SERVER], { env: { ...cleanEnv(), ...vars }, encoding: 'utf8' });
    expect(result.status).toBe(78);
    expect(result.stderr).toContain(message);
    expect(result.stderr).not.toContain('secret-pw');
  });
});

describe('a database that is not reachable at start', () => {
  let server: ChildProcess | undefined;
  const dbName = `late_${process.pid}`;
  afterAll(async () => {
    server?.kill('SIGKILL');
    await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  test('keeps the process up with /readyz 503, then serves once the database appears and is migrated', async () => {
    const port = await freePort();
    const url = new URL(process.env.TEST_PG_ADMIN_URL!);
    url.pathname = `/${dbName}`;
    server = spawn(process.execPath, [SERVER], {
      env: { ...cleanEnv(), DATABASE_URL: url.toString(), PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    server.stdout!.on('data', (d) => (output += d));
    const base = `http://127.0.0.1:${port}`;

    await waitUntil('/healthz', async () => (await getFresh(`${base}/healthz`)).status === 200, { timeoutMs: 45000 });
    for (let i = 0; i < 3; i++) {
      expect((await getFresh(`${base}/readyz`)).status).toBe(503);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(server.exitCode).toBeNull();
    expect(output).toContain('database unreachable, retrying');

    await adminQuery(`CREATE DATABASE ${dbName}`);
    // Reachable is not ready: the release's migrations must be applied first.
    const unmigrated = await waitUntil('/readyz to see the database', async () => {
      const res = await fetch(`${base}/readyz`, { headers: { connection: 'close' } });
      const body = (await res.json()) as { reason?: string };
      return body.reason?.startsWith('migrations not applied') ? body : undefined;
    }, { timeoutMs: 45000 });
    expect(unmigrated.reason).toContain('cemetery-schema');
    const migrated = spawnSync(process.execPath, [path.join(DIST, 'migrate.js')], { env: { ...cleanEnv(), DATABASE_URL: url.toString() }, encoding: 'utf8' });
    expect(migrated.status).toBe(0);
    await waitUntil('/readyz 200', async () => (await getFresh(`${base}/readyz`)).status === 200, { timeoutMs: 45000 });

    const exited = new Promise<number | null>((resolve) => server!.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

test('with no HOST the app listens on loopback only: reachable on 127.0.0.1, refused on this machine\'s other addresses', async () => {
  const port = await freePort();
  const server = spawn(process.execPath, [SERVER], {
    env: { ...cleanEnv(), DATABASE_URL: 'postgres://nobody:x@127.0.0.1:1/none', PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  try {
    await waitUntil('/healthz on loopback', async () => (await getFresh(`http://127.0.0.1:${port}/healthz`)).status === 200, { timeoutMs: 45000 });
    const others = Object.values(os.networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    expect(others.length).toBeGreaterThan(0);
    for (const address of others) await expect(getFresh(`http://${address}:${port}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
  } finally {
    server.kill('SIGKILL');
  }
});
