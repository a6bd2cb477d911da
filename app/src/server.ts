import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pendingMigrations, pingDatabase, type Pool } from './db';
import type { ReleaseInfo } from './release';
import { errorHandler, schemaErrorFormatter } from './errors';
import { burialRoutes } from './routes/burials';
import { plotRoutes } from './routes/plots';
import { sectionRoutes } from './routes/sections';

export type Lifecycle = {
  /** Set once shutdown begins: /readyz turns 503 and every response closes its connection. */
  draining: boolean;
};

export type ServerOptions = {
  pool: Pool;
  release: ReleaseInfo;
  /** /readyz answers 200 only once these migrations are applied (the release's own, dist/migrations). */
  requiredMigrations?: string[];
  logger: FastifyBaseLogger | false;
  lifecycle?: Lifecycle;
};

export function buildServer({ pool, release, requiredMigrations = [], logger, lifecycle = { draining: false } }: ServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger || undefined,
    logger: logger ? undefined : false,
    // Shutdown drains keep-alive connections itself (see shutdown.ts); Fastify's
    // 503-while-closing would turn a zero-downtime reload into failed requests.
    return503OnClosing: false,
    forceCloseConnections: false,
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
    schemaErrorFormatter,
    bodyLimit: 64 * 1024,
  });

  app.setErrorHandler(errorHandler);

  app.addHook('onRequest', async (_req, reply) => {
    if (lifecycle.draining) reply.header('connection', 'close');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  // Migrations are applied before a release switches and never un-applied while it serves: check until they are there once.
  let migrationsApplied = requiredMigrations.length === 0;
  app.get('/readyz', async (req, reply) => {
    if (lifecycle.draining) return reply.status(503).send({ status: 'draining' });
    try {
      await pingDatabase(pool);
    } catch (err) {
      req.log.warn({ err: (err as Error).message }, 'readiness: database unreachable');
      return reply.status(503).send({ status: 'unavailable', reason: 'database unreachable' });
    }
    if (!migrationsApplied) {
      const pending = await pendingMigrations(pool, requiredMigrations);
      if (pending.length) return reply.status(503).send({ status: 'unavailable', reason: `migrations not applied: ${pending.join(', ')}` });
      migrationsApplied = true;
    }
    return { status: 'ready' };
  });

  app.get('/version', async () => ({
    release: release.id,
    build: release.build,
    pid: process.pid,
    node: process.version,
    uptimeSeconds: Math.round(process.uptime()),
  }));

  void app.register(sectionRoutes, { pool });
  void app.register(plotRoutes, { pool });
  void app.register(burialRoutes, { pool });
  return app;
}
