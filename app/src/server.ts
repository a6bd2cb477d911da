import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pingDatabase, type Pool } from './db';
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
  releaseId: string;
  logger: FastifyBaseLogger | false;
  lifecycle?: Lifecycle;
};

export function buildServer({ pool, releaseId, logger, lifecycle = { draining: false } }: ServerOptions): FastifyInstance {
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

  app.get('/readyz', async (req, reply) => {
    if (lifecycle.draining) return reply.status(503).send({ status: 'draining' });
    try {
      await pingDatabase(pool);
      return { status: 'ready' };
    } catch (err) {
      req.log.warn({ err: (err as Error).message }, 'readiness: database unreachable');
      return reply.status(503).send({ status: 'unavailable', reason: 'database unreachable' });
    }
  });

  app.get('/version', async () => ({
    release: releaseId,
    pid: process.pid,
    node: process.version,
    uptimeSeconds: Math.round(process.uptime()),
  }));

  void app.register(sectionRoutes, { pool });
  void app.register(plotRoutes, { pool });
  void app.register(burialRoutes, { pool });
  return app;
}
