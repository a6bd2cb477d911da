import type { FastifyInstance } from 'fastify';
import type { Pool } from './db';
import type { Lifecycle } from './server';

export type ShutdownOptions = {
  app: FastifyInstance;
  pool: Pool;
  lifecycle: Lifecycle;
  /** Hard deadline; keep it below PM2's kill_timeout so the exit is ours, not SIGKILL. */
  timeoutMs: number;
  /** How long busy keep-alive clients get to receive one more response, marked `Connection: close`. */
  drainMs?: number;
  exit?: (code: number) => void;
};

const openConnections = (app: FastifyInstance) =>
  new Promise<number>((resolve) => app.server.getConnections((err, count) => resolve(err ? 0 : count)));

/**
 * Exits 0 once pending writes are done. Under PM2's cluster mode a worker's
 * stdout goes to the log files through async streams that an immediate
 * process.exit() would cut, losing the last lines. So let the event loop run
 * dry (the IPC channel to PM2 is the one handle left, so unref it), with a
 * backstop in case something else still holds the loop.
 */
function exitOnceFlushed(exit: (code: number) => void) {
  process.exitCode = 0;
  process.channel?.unref();
  setTimeout(() => exit(0), 1000).unref();
}

/**
 * Graceful stop for SIGINT/SIGTERM and PM2's 'shutdown' message:
 * 1. drain: readiness turns 503 and each response tells its client to reconnect
 *    (in cluster mode the new connection lands on another worker), so no
 *    keep-alive socket is cut while a request is on its way to it;
 * 2. close: stop accepting, close the now idle sockets, finish in-flight requests;
 * 3. close the database pool and exit 0, all before the deadline.
 */
export function installGracefulShutdown(opts: ShutdownOptions): (reason: string) => Promise<void> {
  const { app, pool, lifecycle, timeoutMs, drainMs = Math.min(1000, timeoutMs / 4), exit = process.exit } = opts;
  let started: Promise<void> | undefined;

  const shutdown = (reason: string) => {
    started ??= (async () => {
      app.log.info({ reason }, 'shutting down');
      const deadline = setTimeout(() => {
        app.log.error({ timeoutMs }, 'shutdown deadline reached; closing remaining connections');
        app.server.closeAllConnections();
        exit(1);
      }, timeoutMs);
      deadline.unref();
      lifecycle.draining = true;
      if ((await openConnections(app)) > 0) await new Promise((r) => setTimeout(r, drainMs));
      await app.close();
      await pool.end();
      clearTimeout(deadline);
      app.log.info('shutdown complete');
      exitOnceFlushed(exit);
    })();
    return started;
  };

  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('message', (msg) => {
    if (msg === 'shutdown') void shutdown('pm2 shutdown message');
  });
  return shutdown;
}
