import type { FastifyInstance } from 'fastify';
import type { Pool } from './db';

/** What this module uses of tx2 1.0.5 (src/metrics.js; it ships no types). */
type Tx2 = {
  counter(opts: { name: string }): { inc(): void };
  meter(opts: { name: string }): { mark(): void };
  histogram(opts: { name: string; measurement: 'p95'; unit: string }): { update(value: number): void };
  metric(opts: { name: string; value: () => number }): void;
};

/** The metrics each worker shows in `pm2 show <id>` ("Code metrics value") and `pm2 monit`, by name. */
export const METRICS = {
  requests: 'Requests',
  rate: 'Requests/s',
  latency: 'Latency p95',
  serverErrors: '5xx answers',
  dbBusy: 'DB connections busy',
  dbWaiting: 'DB requests waiting',
} as const;

/**
 * Reports METRICS to PM2 the way PM2's own library does: tx2 (a dependency of
 * PM2 7 itself) sends `{ type: 'axm:monitor', data }` over the worker's IPC
 * channel every 990 ms (tx2 1.0.5 src/index.js), and the daemon keeps the
 * latest in the process's `pm2_env.axm_monitor` (pm2 7.0.3 lib/Daemon.js
 * 423-431), which `pm2 show`, `pm2 monit` and `pm2 jlist` read.
 *
 * Only under PM2 (it sets `pm_id`): any other parent with an IPC channel (a
 * test runner's worker pool) would get messages it does not expect. A cluster
 * worker whose channel to PM2 closes exits at once (Node 20
 * lib/internal/cluster/child.js, the 'disconnect' handler), so tx2 never sends
 * on a closed channel (which would throw in the worker).
 */
export function reportToPm2(app: FastifyInstance, pool: Pool): void {
  if (process.env.pm_id === undefined || !process.send) return;
  // Loaded here, not at the top: outside PM2 its timer never starts.
  const tx2: Tx2 = require('tx2');
  const requests = tx2.counter({ name: METRICS.requests });
  const rate = tx2.meter({ name: METRICS.rate });
  const latency = tx2.histogram({ name: METRICS.latency, measurement: 'p95', unit: 'ms' });
  const serverErrors = tx2.counter({ name: METRICS.serverErrors });
  tx2.metric({ name: METRICS.dbBusy, value: () => pool.totalCount - pool.idleCount });
  tx2.metric({ name: METRICS.dbWaiting, value: () => pool.waitingCount });
  app.addHook('onResponse', async (_request, reply) => {
    requests.inc();
    rate.mark();
    latency.update(reply.elapsedTime);
    if (reply.statusCode >= 500) serverErrors.inc();
  });
}
