/**
 * The real app bundle under a real PM2 in cluster mode with 2 instances:
 * balancing, zero-downtime reload under load, recovery from kill -9, and a
 * SIGINT shutdown that leaves no database connection behind.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pm2, pm2Async } from '../scripts/lib/pm2.cjs';
import { waitUntil } from '../scripts/lib/wait.cjs';
import { adminQuery, createMigratedDatabase, DIST } from './support/db';
import { getFresh } from './support/http';
import { startLoad } from './support/load';
import { APP_NAME, startCluster } from './support/pm2-cluster';
import { METRICS } from '../app/src/metrics';

jest.setTimeout(120000);

/** Low enough to reach quickly; the other tests' requests come from loopback, which is not counted. */
const RATE_LIMIT = 5;

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let cluster: Awaited<ReturnType<typeof startCluster>>;
let listPath: string;
let token: string;

const pidsOf = (procs: { pid: number }[]) => procs.map((p) => p.pid).sort();

async function distinctServingPids(requests: number): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < requests; i++) {
    const res = await getFresh(`${cluster.url}/version`);
    expect(res.status).toBe(200);
    pids.add(JSON.parse(res.body).pid);
  }
  return pids;
}

beforeAll(async () => {
  db = await createMigratedDatabase('pm2');
  cluster = await startCluster(db.url, 2, { RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT) });
  // A write token, made the way an operator makes one (the release's admin command).
  token = execFileSync(process.execPath, [path.join(DIST, 'admin.js'), 'token', 'create', '--name', 'pm2-test'], { env: { ...process.env, DATABASE_URL: db.url }, stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .trim();
  const created = await fetch(`${cluster.url}/api/sections`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ name: 'Load', grid: { rows: 10, plotsPerRow: 10 } }),
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: number };
  listPath = `/api/plots?sectionId=${id}&limit=20`;
});

afterAll(async () => {
  await cluster?.stop();
  await db?.drop();
});

test("out.log is JSON lines: each with one timestamp (pino's, ISO 8601, no PM2 prefix) and its worker; a request's lines carry its id, which the answer names; no token", async () => {
  const res = await fetch(`${cluster.url}/version`);
  const id = res.headers.get('x-request-id')!;
  expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const file = path.join(cluster.logDir, 'out.log');
  // Both of the request's lines: PM2 writes each to the file when it gets it, "request completed" after the answer left.
  await waitUntil('the request\'s two lines in out.log', async () => (await readFile(file, 'utf8')).split(id).length - 1 >= 2, { timeoutMs: 10000 });
  const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  const records = lines.map((line) => {
    expect(line.startsWith('{')).toBe(true);
    return JSON.parse(line) as Record<string, unknown>;
  });
  for (const r of records) {
    expect(r).toMatchObject({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), pid: expect.any(Number), msg: expect.any(String) });
  }
  expect(records.filter((r) => r.reqId === id).map((r) => r.msg)).toEqual(['incoming request', 'request completed']);
  expect(lines.join('\n')).not.toContain(token);
});

test('one client address gets RATE_LIMIT_PER_MINUTE requests across both workers, and across a second host on the same database: the count is shared, not one per worker', async () => {
  // As Caddy sends them: from loopback, the client's address last in X-Forwarded-For; each on a new connection,
  // which PM2 hands to the next worker. With counts in each worker's memory this client got twice the limit.
  const asClient = { 'x-forwarded-for': '203.0.113.77' };
  const counted = `${cluster.url}/api/sections?limit=1`;
  const answers = [];
  for (let i = 0; i < RATE_LIMIT * 2 + 2; i++) answers.push(await getFresh(counted, asClient));
  expect(answers.map((a) => a.status)).toEqual([...Array(RATE_LIMIT).fill(200), ...Array(RATE_LIMIT + 2).fill(429)]);
  expect(answers[RATE_LIMIT].headers['retry-after']).toMatch(/^\d+$/);
  // Both workers answered within the count: the workers that logged the served requests' ids.
  const ids = answers.slice(0, RATE_LIMIT).map((a) => String(a.headers['x-request-id']));
  const file = path.join(cluster.logDir, 'out.log');
  const servedBy = await waitUntil('the served requests in out.log', async () => {
    const records = (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { reqId?: string; pid: number });
    const pids = new Map(records.filter((r) => r.reqId && ids.includes(r.reqId)).map((r) => [r.reqId, r.pid]));
    return pids.size === ids.length ? new Set(pids.values()) : undefined;
  }, { timeoutMs: 10000 });
  expect(servedBy.size).toBe(2);
  // Another address is not affected.
  expect((await getFresh(counted, { 'x-forwarded-for': '203.0.113.78' })).status).toBe(200);

  // A second host: its own PM2 and workers, the same database.
  const second = await startCluster(db.url, 1, { RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT) });
  try {
    await second.ready(1);
    expect((await getFresh(`${second.url}/api/sections?limit=1`, asClient)).status).toBe(429);
    expect((await getFresh(`${second.url}/api/sections?limit=1`, { 'x-forwarded-for': '203.0.113.79' })).status).toBe(200);
  } finally {
    await second.stop();
  }
});

test('both workers serve requests', async () => {
  const online = cluster.online();
  expect(online).toHaveLength(2);
  expect(online.every((p) => p.pm2_env.exec_mode === 'cluster_mode')).toBe(true);
  expect([...(await distinctServingPids(20))].sort()).toEqual(pidsOf(online));
});

test("each worker's own metrics reach PM2 (requests, their rate and p95 latency, 5xx answers, the database pool), as pm2 show and pm2 monit read them, and move under load", async () => {
  type Monitor = Record<string, { value: unknown; unit?: string }>;
  const monitors = () => cluster.online().map((p) => ({ id: p.pm_id, monitor: (p.pm2_env.axm_monitor ?? {}) as Monitor }));
  const served = () => monitors().reduce((sum, w) => sum + Number(w.monitor[METRICS.requests]?.value ?? 0), 0);
  // tx2 sends every 990 ms: wait for every metric of both workers.
  await waitUntil('both workers to report every metric', () => {
    const all = monitors();
    return all.length === 2 && all.every((w) => Object.values(METRICS).every((name) => name in w.monitor));
  });
  const before = served();

  const load = startLoad(cluster.url, [listPath], { connections: 4 });
  await waitUntil('a rate above 0 from both workers under load', () => monitors().every((w) => Number(w.monitor[METRICS.rate].value) > 0), { timeoutMs: 30000 });
  const result = await load.stop();
  expect(result.failures).toEqual({});
  // Each answer is counted by the worker that gave it (more may come: the readiness checks of this file).
  await waitUntil(`the request counters to grow by the load's ${result.requests} requests`, () => served() - before >= result.requests, { timeoutMs: 10000 });
  for (const { monitor } of monitors()) {
    expect(monitor[METRICS.latency]).toMatchObject({ value: expect.any(Number), unit: 'ms' });
    expect(monitor[METRICS.latency].value as number).toBeGreaterThan(0);
    expect(monitor[METRICS.serverErrors].value).toBe(0);
    expect(monitor[METRICS.dbBusy].value).toEqual(expect.any(Number));
    expect(monitor[METRICS.dbWaiting].value).toEqual(expect.any(Number));
  }

  // pm2 show lists them under "Code metrics value", each with its value.
  const shown = pm2(['show', String(monitors()[0].id)], { env: cluster.env });
  expect(shown).toContain('Code metrics value');
  for (const name of Object.values(METRICS)) expect(shown).toMatch(new RegExp(`│ ${name.replace(/[/]/g, '\\$&')}\\s+│ \\S`));
});

test('pm2 reload under load: no failed or non-2xx request, every worker replaced', async () => {
  const before = pidsOf(cluster.online());
  const load = startLoad(cluster.url, [listPath], { connections: 10 });
  await waitUntil('the load under way', () => load.requests > 0);
  const sentBefore = load.requests;
  await pm2Async(['reload', APP_NAME], { env: cluster.env });
  const answeredDuringReload = load.requests - sentBefore;
  const result = await load.stop();
  const after = await cluster.ready();

  console.log(`reload under load: ${result.requests} requests (${answeredDuringReload} while PM2 reloaded), failures ${JSON.stringify(result.failures)}`);
  expect(result.failures).toEqual({});
  expect(answeredDuringReload).toBeGreaterThan(0);
  expect(pidsOf(after).filter((pid) => before.includes(pid))).toEqual([]);
  expect(after.every((p) => p.pm2_env.restart_time === 1)).toBe(true);
});

test('a worker killed with kill -9 is restarted and service continues', async () => {
  const [victim, survivor] = cluster.online();
  process.kill(victim.pid, 'SIGKILL');
  // Once PM2 has seen the death (the cluster master stops handing it connections),
  // the survivor carries the traffic while the replacement boots.
  await waitUntil('PM2 to notice the killed worker', () => !cluster.online().some((p) => p.pid === victim.pid));
  const during = await Promise.all(Array.from({ length: 10 }, () => getFresh(`${cluster.url}/readyz`)));
  expect(during.map((r) => r.status)).toEqual(Array(10).fill(200));

  const after = await waitUntil('the killed worker to be replaced', () => {
    const up = cluster.online();
    return up.length === 2 && !up.some((p) => p.pid === victim.pid) ? up : undefined;
  });
  expect(after.map((p) => p.pid)).toContain(survivor.pid);
  expect(after.find((p) => p.pm_id === victim.pm_id)!.pm2_env.restart_time).toBe(victim.pm2_env.restart_time + 1);
  await cluster.ready();
  expect((await distinctServingPids(20)).size).toBe(2);
});

test('SIGINT (pm2 stop) shuts workers down gracefully and leaves no database connection open', async () => {
  // Warm both workers' pools.
  await Promise.all(Array.from({ length: 20 }, () => getFresh(`${cluster.url}${listPath}`)));
  const connections = async () =>
    Number((await adminQuery('SELECT count(*) FROM pg_stat_activity WHERE datname = $1', [db.name])).rows[0].count);
  expect(await connections()).toBeGreaterThan(0);
  const workers = cluster.online();

  pm2(['stop', APP_NAME], { env: cluster.env });

  expect(cluster.workers().map((p) => p.pm2_env.status)).toEqual(['stopped', 'stopped']);
  await waitUntil('database connections to close', async () => (await connections()) === 0, { timeoutMs: 30000 });
  // Each worker finished its own shutdown (not killed at kill_timeout). PM2 may report the exit before it has
  // written the worker's last line to the file.
  const completed = (out: string) => workers.every(({ pid }) => new RegExp(`"pid":${pid},.*"msg":"shutdown complete"`).test(out));
  await waitUntil('each worker\'s "shutdown complete" in out.log', async () => completed(await readFile(path.join(cluster.logDir, 'out.log'), 'utf8')), { timeoutMs: 10000 });
});
