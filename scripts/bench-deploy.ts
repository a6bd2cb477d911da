// npm run bench:deploy: how long a code-only `pulumi up` takes to put new code
// in every worker, and what the traffic meanwhile sees. On a fresh local VM
// (the VM tier's machinery: test/e2e/local-stack.ts), after a first `up`, each
// round builds a release with changed sources and runs the `up` under load
// through the proxy (HTTPS, the forwarded port 443). Prints the figures and writes .bench/deploy-<date>.json.
//   BENCH_DEPLOYS=3 (rounds)  BENCH_CONNECTIONS=8
import path from 'node:path';
import { buildRelease, ran, rebuildCheckedOut, seconds, startLocalStack, writeReport, type LocalStack } from '../test/e2e/local-stack';

const DEPLOYS = Number(process.env.BENCH_DEPLOYS || 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 8);

type Round = {
  release: string;
  /** From the start of `up` to its end: the release tool returns once every worker runs the new code (it checks each one). */
  upSeconds: number;
  /** From the start of `up` to the first answer from the new code, seen through the load. */
  firstNewAnswerSeconds: number | null;
  steps: Array<{ name: string; seconds: number }>;
  requests: number;
  failed: number;
  failures: Record<string, number>;
  everyWorkerOnNewCode: boolean;
};

async function round(stack: LocalStack, n: number): Promise<Round> {
  const before = (await stack.live())!;
  const release = buildRelease({ mark: `bench ${n} ${Date.now()}` });
  const load = await stack.load(() => [before, release.id], CONNECTIONS);
  await new Promise((r) => setTimeout(r, 1000));
  const started = Date.now();
  // Watches /version alongside the load for the first worker that answers with the new build.
  let firstNew: number | null = null;
  let watching = true;
  const watcher = (async () => {
    while (watching && firstNew === null) {
      const v = await stack
        .web('/version')
        .then((r) => JSON.parse(r.body) as { build: string })
        .catch(() => undefined);
      if (v?.build === release.build) firstNew = seconds(started);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const steps = await stack.up(`bench deploy ${n}`);
  const upSeconds = seconds(started);
  watching = false;
  await watcher;
  const result = await load.stop();
  const serving = await stack.workersServing();
  return {
    release: release.id,
    upSeconds,
    firstNewAnswerSeconds: firstNew,
    steps: steps.map((s) => ({ name: ran([s])[0], seconds: Math.round(s.seconds * 10) / 10 })),
    requests: result.requests,
    failed: result.failed,
    failures: result.failures,
    everyWorkerOnNewCode: serving.every((w) => w.build === release.build && w.id === release.id),
  };
}

async function main() {
  const report: Record<string, unknown> = { date: new Date().toISOString(), deploys: DEPLOYS, connections: CONNECTIONS };
  const stack = await startLocalStack({
    report,
    log: (line) => process.stdout.write(`${line}\n`),
    // The load comes from one address (qemu's gateway): its 429s would count as failures.
    overrides: { 'cemetery-backend:rateLimitPerMinute': '1000000' },
  });
  try {
    await stack.up('first');
    const rounds: Round[] = [];
    for (let n = 1; n <= DEPLOYS; n++) rounds.push(await round(stack, n));
    report.rounds = rounds;
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)];
    console.log('\ncode-only deploys on the local VM (software emulation, 2 vCPU):');
    for (const r of rounds) {
      console.log(
        `  ${r.release}: up ${r.upSeconds} s (first answer from the new code after ${r.firstNewAnswerSeconds ?? '-'} s), ` +
          `${r.requests} requests, ${r.failed} failed, every worker on the new code: ${r.everyWorkerOnNewCode}; ` +
          r.steps.map((s) => `${s.name} ${s.seconds} s`).join(', '),
      );
    }
    console.log(`  median up: ${median(rounds.map((r) => r.upSeconds))} s; failed requests in all: ${rounds.reduce((a, r) => a + r.failed, 0)} of ${rounds.reduce((a, r) => a + r.requests, 0)}`);
  } finally {
    await stack.stop();
    rebuildCheckedOut();
    const file = writeReport('deploy', report);
    console.log(`figures in ${path.relative(process.cwd(), file)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
