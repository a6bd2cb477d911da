/**
 * The rate limit's shared counts (app/src/rate-limit-store.ts) in a real
 * PostgreSQL: exact under a burst, a window that starts again, and a store
 * that cannot be reached letting requests through to the answer they would
 * have got anyway. Across PM2 workers and hosts: test/pm2-cluster.test.ts.
 */
import pino from 'pino';
import { createPool, type Pool } from '../app/src/db';
import { postgresRateLimitStore } from '../app/src/rate-limit-store';
import { buildServer } from '../app/src/server';
import { createMigratedDatabase } from './support/db';
import { freePort } from '../scripts/lib/ports.cjs';

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let pool: Pool;

beforeAll(async () => {
  db = await createMigratedDatabase('rate_limit');
  pool = createPool(db.url, 10, pino({ level: 'silent' }), { connectTimeoutMs: 60000 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const fromClient = (app: ReturnType<typeof buildServer>, client: string) =>
  app.inject({ method: 'GET', url: '/api/sections?limit=1', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': client } });

test('a burst of 60 requests at once from one address, limit 20: exactly 20 served, the rest 429', async () => {
  const app = buildServer({ pool, release: { id: 'x', build: 'x' }, logger: false, limits: { rateLimitPerMinute: 20 } });
  const statuses = (await Promise.all(Array.from({ length: 60 }, () => fromClient(app, '198.51.100.20')))).map((r) => r.statusCode);
  expect(statuses.filter((s) => s === 200)).toHaveLength(20);
  expect(statuses.filter((s) => s === 429)).toHaveLength(40);
  await app.close();
});

test('a client over its limit is refused from memory until its window ends: a flood costs the database one upsert per worker', async () => {
  const app = buildServer({ pool, release: { id: 'x', build: 'x' }, logger: false, limits: { rateLimitPerMinute: 20 } });
  const statuses = [];
  for (let i = 0; i < 60; i++) statuses.push((await fromClient(app, '198.51.100.40')).statusCode);
  expect(statuses).toEqual([...Array(20).fill(200), ...Array(40).fill(429)]);
  const { rows } = await pool.query('SELECT hits FROM rate_limit_hits WHERE key = $1', ['198.51.100.40']);
  expect(rows).toEqual([{ hits: 21 }]);
  await app.close();
});

test('the probes and /version are never counted, from any address: a balancer\'s health checks come from its own addresses', async () => {
  const app = buildServer({ pool, release: { id: 'x', build: 'x' }, logger: false, limits: { rateLimitPerMinute: 1 } });
  for (const probe of ['/healthz', '/readyz', '/version']) {
    for (let i = 0; i < 3; i++) expect((await app.inject({ method: 'GET', url: probe, remoteAddress: '198.51.100.50' })).statusCode).toBe(200);
  }
  expect((await app.inject({ method: 'GET', url: '/api/sections?limit=1', remoteAddress: '198.51.100.50' })).statusCode).toBe(200);
  expect((await app.inject({ method: 'GET', url: '/api/sections?limit=1', remoteAddress: '198.51.100.50' })).statusCode).toBe(429);
  await app.close();
});

test("a client's window starts at its first request and starts again once it has passed", async () => {
  const Store = postgresRateLimitStore(pool, pino({ level: 'silent' }));
  const store = new Store();
  const MINUTE = 60000;
  const incr = (key: string) =>
    new Promise<{ current: number; ttl: number }>((resolve, reject) => store.incr(key, (err, res) => (err ? reject(err) : resolve(res!)), MINUTE, 100));
  const first = await incr('window-test');
  expect(first.current).toBe(1);
  expect(first.ttl).toBeGreaterThan(0);
  expect(first.ttl).toBeLessThanOrEqual(MINUTE);
  expect((await incr('window-test')).current).toBe(2);
  expect((await incr('another-client')).current).toBe(1);
  // The window as the database's clock has it, moved a minute and a second back: it has passed.
  await pool.query("UPDATE rate_limit_hits SET window_start = window_start - interval '61 seconds' WHERE key = 'window-test'");
  const again = await incr('window-test');
  expect(again.current).toBe(1);
  expect(again.ttl).toBeGreaterThan(MINUTE - 5000);
  expect((await incr('another-client')).current).toBe(2);
});

test('counts that cannot be reached let the request through, to the answer the database gives it, and say so once in the log', async () => {
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
  // Nothing listens on this port: the counts and the data are both unreachable.
  const deadUrl = new URL(db.url);
  deadUrl.port = String(await freePort());
  const deadPool = createPool(deadUrl.toString(), 2, logger, { connectTimeoutMs: 1000 });
  const app = buildServer({ pool: deadPool, release: { id: 'x', build: 'x' }, logger, limits: { rateLimitPerMinute: 1 } });
  for (let i = 0; i < 3; i++) expect((await fromClient(app, '198.51.100.30')).statusCode).toBe(503);
  expect(lines.filter((l) => l.includes('rate limit: the shared counts are unreachable'))).toHaveLength(1);
  expect((await app.inject({ method: 'GET', url: '/healthz', remoteAddress: '198.51.100.30' })).statusCode).toBe(200);
  await app.close();
  await deadPool.end();
});
