/**
 * The load client's one retry (test/support/load.ts): a request that crossed
 * the close of a kept-alive connection is sent again, once; any other reset is
 * a failure. Against a real server that closes connections as a reloading
 * proxy does, and as a crashing one does.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { waitUntil } from '../scripts/lib/wait.cjs';
import { startLoad } from './support/load';

type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse, nthOnConnection: number) => void;

/** A server that answers 200 unless `behaviour` says otherwise; returns its URL and a stopper. */
async function server(behaviour: Behaviour) {
  const counts = new WeakMap<Socket, number>();
  const srv = http.createServer((req, res) => {
    const n = (counts.get(req.socket) ?? 0) + 1;
    counts.set(req.socket, n);
    behaviour(req, res, n);
  });
  srv.keepAliveTimeout = 60000;
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    stop: () => new Promise<void>((resolve) => { srv.closeAllConnections(); srv.close(() => resolve()); }),
  };
}

const ok: Behaviour = (_req, res) => res.end('ok');

async function loadAgainst(behaviour: Behaviour, requests: number) {
  const srv = await server(behaviour);
  try {
    // One connection: every request after a fresh connection's first goes out on a reused one.
    const load = startLoad(srv.url, ['/'], { connections: 1 });
    await waitUntil(`${requests} requests`, () => load.requests >= requests, { timeoutMs: 30000, intervalMs: 20 });
    return await load.stop();
  } finally {
    await srv.stop();
  }
}

test('a request that crosses the close of a kept-alive connection is sent again once, on a new connection, and counted as resent', async () => {
  // Each connection's second request finds it closed, as Caddy's reload closes idle connections.
  const result = await loadAgainst((req, res, n) => (n === 2 ? req.socket.destroy() : ok(req, res, n)), 6);
  expect(result.failures).toEqual({});
  expect(result.failed).toBe(0);
  expect(result.ok).toBe(result.requests);
  expect(result.resent.ECONNRESET).toBeGreaterThanOrEqual(2);
  expect(Object.keys(result.resent)).toEqual(['ECONNRESET']);
});

test('a reset on a new connection is a failure, not resent', async () => {
  const result = await loadAgainst((req) => req.socket.destroy(), 3);
  expect(result.ok).toBe(0);
  expect(result.failures).toEqual({ ECONNRESET: result.requests });
  expect(result.resent).toEqual({});
});

test('a connection closed once its answer has begun is a failure, not resent', async () => {
  const result = await loadAgainst((req, res, n) => {
    if (n === 1) return ok(req, res, n);
    res.writeHead(200, { 'content-length': '10' });
    res.write('half');
    setTimeout(() => req.socket.destroy(), 50);
  }, 4);
  expect(result.failed).toBeGreaterThanOrEqual(1);
  expect(Object.keys(result.failures)).toEqual(['ECONNRESET']);
  expect(result.resent).toEqual({});
});

test('the retry goes out on a new connection, never on another kept-alive one (which a reload may be closing too)', async () => {
  // Each connection's second request finds it closed. With two connections pausing between requests, the other one
  // is usually idle in the pool when a request is reset: a retry sent on it would be that connection's second
  // request, and be reset too.
  // The very first answer comes 50 ms late, so the two connections take turns instead of going in step.
  let first = true;
  const srv = await server((req, res, n) => {
    if (first) return ((first = false), setTimeout(() => ok(req, res, n), 50));
    return n === 2 ? req.socket.destroy() : ok(req, res, n);
  });
  try {
    const load = startLoad(srv.url, ['/'], { connections: 2, pauseMs: 100 });
    await waitUntil('40 requests', () => load.requests >= 40, { timeoutMs: 30000, intervalMs: 20 });
    const result = await load.stop();
    expect(result.failures).toEqual({});
    expect(result.resent.ECONNRESET ?? 0).toBeGreaterThanOrEqual(8);
  } finally {
    await srv.stop();
  }
});
