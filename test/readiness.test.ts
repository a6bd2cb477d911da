/**
 * /readyz under a flood, against a real PostgreSQL: it is never rate limited
 * (a balancer's health checks come from its own few addresses, and through the
 * load balancer anyone can send it), so the database must see one query a
 * second at most, not one per request; and while the database is away, one
 * connection attempt a second. Bounds by elapsed time, never by speed.
 */
import net from 'node:net';
import pino from 'pino';
import { createPool, sharedPing, type Pool } from '../app/src/db';
import { buildServer } from '../app/src/server';
import { createMigratedDatabase } from './support/db';

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let pool: Pool;

beforeAll(async () => {
  db = await createMigratedDatabase('readiness');
  pool = createPool(db.url, 10, pino({ level: 'silent' }), { connectTimeoutMs: 60000 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** The pool as the server sees it, counting the readiness pings that reach the database. */
function counting(real: Pool) {
  const counter = { pings: 0 };
  const pool = new Proxy(real, {
    get(target, key) {
      if (key === 'query') {
        return (...args: Parameters<Pool['query']>) => {
          if (args[0] === 'SELECT 1') counter.pings++;
          return (target.query as (...a: unknown[]) => unknown)(...args);
        };
      }
      const value = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { pool, counter };
}

const flood = (app: ReturnType<typeof buildServer>, n: number) =>
  Promise.all(Array.from({ length: n }, (_, i) => app.inject({ method: 'GET', url: '/readyz', remoteAddress: `198.51.100.${i % 250}` })));

/** Runs `fn`; the most database calls it may cause at one per second, whatever the machine's speed. */
async function timed<T>(fn: () => Promise<T>): Promise<{ result: T; allowed: number }> {
  const started = Date.now();
  const result = await fn();
  return { result, allowed: Math.ceil((Date.now() - started) / 1000) + 1 };
}

test('a flood of /readyz: every request answered 200, at most one query a second between them (not one each)', async () => {
  const { pool: seen, counter } = counting(pool);
  const app = buildServer({ pool: seen, release: { id: 'x', build: 'x' }, logger: false });
  const { result: answers, allowed } = await timed(() => flood(app, 500));
  expect(answers.map((a) => a.statusCode)).toEqual(Array(500).fill(200));
  expect(counter.pings).toBeGreaterThanOrEqual(1);
  expect(counter.pings).toBeLessThanOrEqual(allowed);
  await app.close();
});

test('with the database away: every request answered 503 naming it, at most one connection attempt a second between them', async () => {
  // A port that accepts and closes at once: each connection attempt the pool makes is counted.
  let attempts = 0;
  const away = net.createServer((socket) => {
    attempts++;
    socket.destroy();
  });
  await new Promise<void>((r) => away.listen(0, '127.0.0.1', r));
  const { port } = away.address() as net.AddressInfo;
  const unreachable = createPool(`postgres://cemetery:x@127.0.0.1:${port}/cemetery`, 10, pino({ level: 'silent' }), { connectTimeoutMs: 5000 });
  const app = buildServer({ pool: unreachable, release: { id: 'x', build: 'x' }, logger: false });
  const { result: answers, allowed } = await timed(() => flood(app, 200));
  expect(answers.map((a) => a.statusCode)).toEqual(Array(200).fill(503));
  expect(answers[0].json()).toEqual({ status: 'unavailable', reason: 'database unreachable' });
  expect(attempts).toBeGreaterThanOrEqual(1);
  expect(attempts).toBeLessThanOrEqual(allowed);
  await app.close();
  await unreachable.end();
  away.close();
});

describe('sharedPing: the outcome of one query, for a second', () => {
  afterEach(() => jest.useRealTimers());

  test('callers while it runs share it; within the second after, its outcome; after that, a new query; a failure is reused the same way, then recovery shows', async () => {
    jest.useFakeTimers({ now: new Date('2026-11-29T00:00:00Z'), doNotFake: ['nextTick', 'setImmediate'] });
    let up = true;
    let queries = 0;
    const fake = { query: async () => (queries++, up ? { rows: [] } : Promise.reject(new Error('connect ECONNREFUSED'))) } as unknown as Pool;
    const ping = sharedPing(fake, 1000);
    await Promise.all([ping(), ping(), ping()]);
    expect(queries).toBe(1);
    jest.setSystemTime(Date.now() + 999);
    await ping();
    expect(queries).toBe(1);
    jest.setSystemTime(Date.now() + 2);
    await ping();
    expect(queries).toBe(2);
    up = false;
    jest.setSystemTime(Date.now() + 1001);
    await expect(ping()).rejects.toThrow('ECONNREFUSED');
    await expect(ping()).rejects.toThrow('ECONNREFUSED');
    expect(queries).toBe(3);
    up = true;
    jest.setSystemTime(Date.now() + 1001);
    await ping();
    expect(queries).toBe(4);
  });
});
