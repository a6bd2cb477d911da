#!/usr/bin/env node
// npm run bench:cluster: the real release bundle on a real PostgreSQL, loaded
// by autocannon, as (1) one process, (2) a PM2 cluster of N = cores workers,
// (3) Node's cluster module with N workers, in one run. Prints rps, p99 and
// the ratios (2)/(1) and (2)/(3); writes the figures as JSON to .bench/.
//   BENCH_DURATION=5 (seconds per sample)  BENCH_ROUNDS=3  BENCH_CONNECTIONS=32
import autocannon from 'autocannon';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, startEmbeddedPostgres } from './lib/embedded-postgres.mjs';
import { pm2, pm2List } from './lib/pm2.cjs';
import { waitUntil } from './lib/wait.cjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const DIST = path.join(root, 'app', 'dist');
const SERVER = path.join(DIST, 'server.js');
const DURATION = Number(process.env.BENCH_DURATION || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 32);
const WORKERS = os.availableParallelism();
const GRID = { rows: 20, plotsPerRow: 50 }; // 1,000 plots

async function seed(databaseUrl) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query(`INSERT INTO sections (name) VALUES ('Benchmark') RETURNING id`);
  const sectionId = rows[0].id;
  await client.query(
    `INSERT INTO plots (section_id, "row", number, status)
     SELECT $1, r, n, CASE WHEN (r * 7 + n) % 10 = 0 THEN 'reserved' ELSE 'available' END
       FROM generate_series(1, $2::int) r, generate_series(1, $3::int) n`,
    [sectionId, GRID.rows, GRID.plotsPerRow],
  );
  // A third of the plots hold a burial, as an old section would.
  await client.query(
    `WITH chosen AS (SELECT id FROM plots WHERE section_id = $1 AND status = 'available' AND id % 3 = 0)
     INSERT INTO burials (plot_id, deceased_name, birth_date, death_date)
     SELECT id, 'Resident ' || id, date '1900-01-01' + (id % 20000), date '1950-01-01' + (id % 25000) FROM chosen`,
    [sectionId],
  );
  await client.query(`UPDATE plots SET status = 'occupied' WHERE id IN (SELECT plot_id FROM burials)`);
  const { rows: ids } = await client.query('SELECT min(id) AS lo, max(id) AS hi FROM plots WHERE section_id = $1', [sectionId]);
  await client.end();
  return { sectionId, firstPlot: ids[0].lo, lastPlot: ids[0].hi };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux
const processCpuSeconds = async (pid) => {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime + stime
};
const machineBusySeconds = async () => {
  const [, user, nice, system, , , irq, softirq, steal] = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
};

/** Where the CPU went during one measurement, in cores: the app's workers, this load generator, and the rest (PostgreSQL, PM2, kernel). */
async function cpuSplit(pids, during) {
  const [w0, m0, self0] = [await Promise.all(pids.map(processCpuSeconds)), await machineBusySeconds(), process.cpuUsage()];
  const t0 = process.hrtime.bigint();
  const result = await during();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const w1 = await Promise.all(pids.map(processCpuSeconds));
  const self = process.cpuUsage(self0);
  const workers = w1.reduce((a, b) => a + b, 0) - w0.reduce((a, b) => a + b, 0);
  const loadGen = (self.user + self.system) / 1e6;
  const busy = (await machineBusySeconds()) - m0;
  const cores = (x) => Math.round((x / seconds) * 100) / 100;
  return { result, cpuCores: { workers: cores(workers), loadGenerator: cores(loadGen), rest: cores(Math.max(0, busy - workers - loadGen)) } };
}

const rssMiB = async (pid) => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024);
};

/** The three ways of running the same bundle; each returns its worker pids and a stop(). */
const DEPLOYMENTS = {
  single: async (env) => {
    const child = spawn(process.execPath, [SERVER], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    await new Promise((resolve, reject) => {
      child.once('message', (m) => m === 'ready' && resolve());
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    return { pids: [child.pid], stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
  },
  pm2: async (env) => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'cemetery-bench-pm2-'));
    const pm2Env = { ...env, PM2_HOME: home, PM2_INSTANCES: String(WORKERS), LOG_DIR: path.join(home, 'logs') };
    pm2(['start', path.join(root, 'app', 'ecosystem.config.js')], { env: pm2Env });
    const workers = await waitUntil('PM2 workers online', () => {
      const up = pm2List(pm2Env).filter((p) => p.name === 'cemetery-backend' && p.pm2_env.status === 'online');
      return up.length === WORKERS ? up : undefined;
    });
    return {
      pids: workers.map((p) => p.pid),
      stop: async () => {
        pm2(['kill'], { env: pm2Env, allowFailure: true });
        await rm(home, { recursive: true, force: true });
      },
    };
  },
  nodeCluster: async (env) => {
    const child = spawn(process.execPath, [path.join(root, 'scripts', 'bench', 'node-cluster.cjs'), SERVER], {
      env: { ...env, WORKERS: String(WORKERS) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pids = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const m = /ready ([\d ]+)/.exec(out);
        if (m) resolve(m[1].trim().split(' ').map(Number));
      });
      child.once('exit', (code) => reject(new Error(`node cluster exited with ${code}`)));
    });
    return { pids, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
  },
};

function load(url, requests, duration) {
  // As a browser would: the map goes out gzipped.
  return autocannon({ url, connections: CONNECTIONS, duration, requests, headers: { 'accept-encoding': 'gzip, deflate, br' } });
}

/** The endpoints under test: every map differs (each request highlights another plot). */
function endpointsFor({ sectionId, firstPlot, lastPlot }) {
  // Paths prepared up front (autocannon then sends prebuilt buffers), so the
  // load generator takes less of the shared CPU.
  const spread = (count, pathFor) => Array.from({ length: count }, (_, i) => ({ path: pathFor(i) }));
  const plotCount = lastPlot - firstPlot + 1;
  return {
    map: spread(101, (i) => `/api/sections/${sectionId}/map.svg?highlight=${firstPlot + ((i * 37) % plotCount)}`),
    list: spread(31, (i) => `/api/plots?sectionId=${sectionId}&status=occupied&limit=20&offset=${i * 10}`),
    healthz: [{ path: '/healthz' }],
  };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Measures every deployment on every endpoint in interleaved rounds
 * (single, pm2, node cluster, single, ...), so that a slow minute of a noisy
 * machine hits all three alike; each figure is the median round.
 */
async function measureAll(deployments, target) {
  const results = {};
  for (const [endpoint, requests] of Object.entries(endpointsFor(target))) {
    const samples = Object.fromEntries(Object.keys(deployments).map((name) => [name, []]));
    for (const d of Object.values(deployments)) await load(d.url, requests, 2); // warm-up: JIT, pools, caches
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, d] of Object.entries(deployments)) {
        const { result: r, cpuCores } = await cpuSplit(d.pids, () => load(d.url, requests, DURATION));
        samples[name].push({ rps: Math.round(r.requests.average), p99Ms: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx, total: r.requests.total, cpuCores });
      }
    }
    for (const [name, list] of Object.entries(samples)) {
      const mid = median(list.map((x) => x.rps));
      const chosen = list.find((x) => x.rps === mid);
      (results[name] ??= {})[endpoint] = { ...chosen, roundsRps: list.map((x) => x.rps), errors: list.reduce((a, x) => a + x.errors, 0), non2xx: list.reduce((a, x) => a + x.non2xx, 0) };
    }
  }
  return results;
}

async function main() {
  if (spawnSync(process.execPath, [path.join(root, 'scripts', 'build-app.mjs')], { stdio: 'inherit' }).status !== 0) throw new Error('build failed');
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'cemetery-bench-pg-'));
  const db = await startEmbeddedPostgres({ stateDir, port: await freePort(), persistent: false });
  try {
    const databaseUrl = await db.ensureDatabase('bench');
    const env = { ...process.env, DATABASE_URL: databaseUrl, HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'production' };
    if (spawnSync(process.execPath, [path.join(DIST, 'migrate.js')], { env, stdio: 'ignore' }).status !== 0) throw new Error('migrate failed');
    const target = await seed(databaseUrl);

    const report = { date: new Date().toISOString(), cpus: os.cpus().length, workers: WORKERS, node: process.version, durationS: DURATION, rounds: ROUNDS, connections: CONNECTIONS, runs: {} };
    // All three run side by side (idle ones cost nothing) and take turns under load.
    const deployments = {};
    try {
      for (const [name, start] of Object.entries(DEPLOYMENTS)) {
        const port = await freePort();
        deployments[name] = { ...(await start({ ...env, PORT: String(port) })), url: `http://127.0.0.1:${port}` };
      }
      const results = await measureAll(deployments, target);
      for (const [name, d] of Object.entries(deployments)) {
        const rss = await Promise.all(d.pids.map(rssMiB));
        report.runs[name] = { workers: d.pids.length, rssMiBPerWorker: rss, ...results[name] };
        console.log(`\n== ${name} (${d.pids.length} process${d.pids.length > 1 ? 'es' : ''})`);
        for (const [endpoint, r] of Object.entries(results[name])) {
          const cpu = r.cpuCores;
          console.log(
            `${endpoint.padEnd(8)} ${String(r.rps).padStart(7)} rps (rounds ${r.roundsRps.join(', ')})  p99 ${String(r.p99Ms).padStart(4)} ms  errors ${r.errors}  non-2xx ${r.non2xx}` +
              `   CPU cores: app ${cpu.workers}, autocannon ${cpu.loadGenerator}, rest ${cpu.rest}`,
          );
        }
        console.log(`RSS per worker: ${rss.map((m) => `${m} MiB`).join(', ')}`);
      }
    } finally {
      for (const d of Object.values(deployments)) await d.stop();
    }

    const ratio = (a, b) => Math.round((a / b) * 100) / 100;
    report.ratios = {};
    console.log(`\n== ratios (N = ${WORKERS})`);
    for (const endpoint of ['map', 'list', 'healthz']) {
      const { single, pm2: pm2Run, nodeCluster } = report.runs;
      report.ratios[endpoint] = {
        pm2VsSingle: ratio(pm2Run[endpoint].rps, single[endpoint].rps),
        pm2VsNodeCluster: ratio(pm2Run[endpoint].rps, nodeCluster[endpoint].rps),
      };
      console.log(`${endpoint.padEnd(8)} PM2/single ${report.ratios[endpoint].pm2VsSingle}   PM2/node-cluster ${report.ratios[endpoint].pm2VsNodeCluster}`);
    }
    await mkdir(path.join(root, '.bench'), { recursive: true });
    const file = path.join(root, '.bench', `cluster-${report.date.replace(/[:.]/g, '-')}.json`);
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nresults: ${path.relative(root, file)}`);
  } finally {
    await db.stop();
  }
}

main().catch((err) => {
  console.error(`bench:cluster: ${err.message}`);
  process.exit(1);
});
