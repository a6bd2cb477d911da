// npm run bench:fleet-upgrade: a host-level change, a Node.js upgrade, rolled across a fleet of two hosts behind a
// balancer under load, and what the traffic sees (issue 20, item 3: on one host the same upgrade through the proxy
// answered 4 of about 7,000 requests with 502). On the VM tier's machinery (test/e2e/fleet-stack.ts): two VMs booted
// from a provisioned host's root disk (BENCH_ROOT_FROM; without it, one VM is provisioned from Debian's image first
// and its disk kept), the fleet's first up, then the up that changes nodeVersion, under load through HAProxy, whose
// view of each host is polled every second. Prints the figures and writes .bench/fleet-upgrade-<date>.json.
//   BENCH_ROOT_FROM=<a root disk kept by scripts/local-vm.sh snapshot>  BENCH_NODE_TO=24.22.3
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseProjectConfig } from '../infra/config';
import { startFleet } from '../test/e2e/fleet-stack';
import { ran, rebuildCheckedOut, seconds, startLocalStack, writeReport } from '../test/e2e/local-stack';

const NODE_TO = process.env.BENCH_NODE_TO || '24.22.3';
const log = (line: string) => process.stdout.write(`${line}\n`);

/** A provisioned host's root disk: BENCH_ROOT_FROM, or one VM provisioned now (its first up) and its disk kept in `dir`. */
async function provisionedRoot(report: Record<string, unknown>, dir: string): Promise<string> {
  if (process.env.BENCH_ROOT_FROM) return process.env.BENCH_ROOT_FROM;
  const file = path.join(dir, 'provisioned-root.qcow2');
  const single = await startLocalStack({ report: (report.provisioning = {}) as Record<string, unknown>, log });
  try {
    await single.up('first');
    await single.keepRootDisk(file);
  } finally {
    await single.stop();
  }
  return file;
}

async function main() {
  const report: Record<string, unknown> = { date: new Date().toISOString(), nodeTo: NODE_TO };
  rebuildCheckedOut();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cemetery-bench-disk-'));
  const fleet = await startFleet({ hosts: 2, rootFrom: await provisionedRoot(report, dir), report, log, overrides: { 'cemetery-backend:rateLimitPerMinute': '1000000' } });
  try {
    await fleet.up('first');
    await fleet.everyHostUp();
    const { balancer } = fleet;
    const release = (await fleet.lives())[0]!;
    const nodeFrom = parseProjectConfig(fleet.config, 'local').nodeVersion;
    fleet.config['cemetery-backend:nodeVersion'] = NODE_TO;
    fleet.config['cemetery-backend:nodeTarballSha256'] = fleet.mirror.serve(NODE_TO);

    // Whenever the balancer's view of a host changes, and when.
    const started = Date.now();
    const view = balancer.watch({ since: started, intervalMs: 1000 });
    const load = fleet.load(() => [release]);
    await new Promise((r) => setTimeout(r, 2000));
    const steps = await fleet.up(`Node.js ${nodeFrom} -> ${NODE_TO}`);
    const upSeconds = seconds(started);
    await new Promise((r) => setTimeout(r, 2000));
    const result = await load.stop();
    await view.stop();
    const transitions = view.lines();
    const versions = await Promise.all(fleet.hosts.map((h) => h.root('/opt/node/bin/node --version')));
    Object.assign(report, {
      nodeFrom,
      upSeconds,
      steps: steps.map((s) => ({ name: ran([s])[0], seconds: Math.round(s.seconds * 10) / 10 })),
      requests: result.requests,
      failed: result.failed,
      failures: result.failures,
      firstFailures: result.firstFailures.slice(0, 20),
      balancer: transitions,
      retries: await balancer.retries(),
      nodeOnHosts: versions.map((v) => v.trim()),
    });
    console.log(`\nNode.js ${nodeFrom} -> ${NODE_TO} on a fleet of 2 behind HAProxy (software emulation, 2 vCPU each):`);
    console.log(`  up ${upSeconds} s: ${steps.map((s) => `${ran([s])[0]} ${Math.round(s.seconds)} s`).join(', ')}`);
    console.log(`  ${result.requests} requests, ${result.failed} failed ${JSON.stringify(result.failures)}`);
    console.log(`  the balancer: ${transitions.join('; ') || 'every host UP throughout'}; retries ${JSON.stringify(report.retries)}`);
    console.log(`  Node.js on the hosts: ${versions.map((v) => v.trim()).join(', ')}`);
  } finally {
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
    const file = writeReport('fleet-upgrade', report);
    console.log(`figures in ${path.relative(process.cwd(), file)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
