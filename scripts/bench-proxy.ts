// npm run bench:proxy: what the front door costs. On a fresh local VM (the VM
// tier's machinery: test/e2e/local-stack.ts), after a first `up`, one client
// on the VM (scripts/bench/http-load.cjs, with the VM's Node.js) asks the app
// directly on its loopback port and through Caddy over HTTPS, in alternating
// rounds, so both see the same machine. Prints requests per second each way
// and their ratio (medians), and writes .bench/proxy-<date>.json. A figure,
// not a test: it depends on the machine and on what else runs.
//   BENCH_ROUNDS=3  BENCH_SECONDS=10  BENCH_CONNECTIONS=16
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CADDY_ROOT_CA, LOAD_PATH, rebuildCheckedOut, startLocalStack, writeReport } from '../test/e2e/local-stack';
import { ssh } from '../test/e2e/vm-ssh';
import { ROOT } from '../test/support/db';

const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const SECONDS = Number(process.env.BENCH_SECONDS || 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 16);

type Run = { requests: number; ok: number; failed: number; errors: Record<string, number>; rps: number; seconds: number };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const report: Record<string, unknown> = { date: new Date().toISOString(), rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, path: LOAD_PATH };
  const stack = await startLocalStack({
    report,
    log: (line) => process.stdout.write(`${line}\n`),
    // The load comes from one address (qemu's gateway): its 429s would count as failures.
    overrides: { 'cemetery-backend:rateLimitPerMinute': '1000000' },
  });
  try {
    await stack.up('first');
    const client = readFileSync(path.join(ROOT, 'scripts', 'bench', 'http-load.cjs'), 'utf8');
    const run = async (url: string, extra = '') =>
      JSON.parse(await ssh(stack.target, `sudo /opt/node/bin/node - ${url} --connections ${CONNECTIONS} --seconds ${SECONDS} ${extra}`, client)) as Run;
    const direct: Run[] = [];
    const proxied: Run[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      direct.push(await run(`http://127.0.0.1:${stack.stackConfig.appPort}${LOAD_PATH}`));
      proxied.push(await run(`https://127.0.0.1${LOAD_PATH}`, `--host ${stack.domain} --ca ${CADDY_ROOT_CA}`));
      console.log(`round ${i + 1}: direct ${direct[i].rps} req/s (${direct[i].failed} failed), through the proxy over HTTPS ${proxied[i].rps} req/s (${proxied[i].failed} failed)`);
    }
    const [d, p] = [median(direct.map((r) => r.rps)), median(proxied.map((r) => r.rps))];
    report.direct = direct;
    report.proxied = proxied;
    report.medianRps = { direct: d, proxied: p, proxiedOverDirect: Math.round((p / d) * 100) / 100 };
    console.log(`\nmedian requests/s on the local VM (software emulation): direct ${d}, through the proxy ${p}: ${Math.round((p / d) * 100) / 100}x`);
  } finally {
    await stack.stop();
    rebuildCheckedOut();
    const file = writeReport('proxy', report);
    console.log(`figures in ${path.relative(process.cwd(), file)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
