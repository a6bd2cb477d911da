import { randomUUID } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifySchema } from 'fastify';
import { requireTokens } from './auth';
import { DEFAULT_LIMITS, type Limits } from './config';
import { pendingMigrations, sharedPing, type Pool } from './db';
import type { ReleaseInfo } from './release';
import { errorHandler, schemaErrorFormatter } from './errors';
import { postgresRateLimitStore } from './rate-limit-store';
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
  /** Who may write and the abuse limits (config.ts DEFAULT_LIMITS for what is not given). */
  limits?: Partial<Limits>;
};

/**
 * Fastify's Ajv. validateSchema: the route schemas are checked against JSON Schema's meta-schema by a
 * test (test/route-schemas.test.ts), not at every start: compiling the meta-schema was 2 s of a
 * worker's 14 s boot on the emulated VM (cpu profile), and a reload boots every worker.
 */
export const VALIDATOR_OPTIONS = { removeAdditional: false, allErrors: false, validateSchema: false };

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

export type RouteInfo = { method: string; url: string; schema?: FastifySchema };
const ROUTES = new WeakMap<FastifyInstance, RouteInfo[]>();
/** Every route the server registered (each method on its own): what the tests attack, taken from the server itself. */
export const registeredRoutes = (app: FastifyInstance): RouteInfo[] => ROUTES.get(app) ?? [];

export function buildServer({ pool, release, requiredMigrations = [], logger, lifecycle = { draining: false }, limits: given = {} }: ServerOptions): FastifyInstance {
  const limits: Limits = { ...DEFAULT_LIMITS, ...given };
  const app = Fastify({
    // The client's address is the one the host's proxy appends to X-Forwarded-For (proxy-addr reads it from the right).
    trustProxy: limits.trustProxy.split(',').map((a) => a.trim()),
    // A request (headers and body) that takes longer is cut off: it would hold a connection and a worker's memory.
    requestTimeout: limits.requestTimeoutMs,
    // A request's id, unique across workers and restarts (Fastify's default counts from 1 in each worker):
    // its log lines carry it as reqId, and the answer as X-Request-Id, so a user's report finds them.
    genReqId: () => randomUUID(),
    loggerInstance: logger || undefined,
    logger: logger ? undefined : false,
    // Shutdown drains keep-alive connections itself (see shutdown.ts); Fastify's
    // 503-while-closing would turn a zero-downtime reload into failed requests.
    return503OnClosing: false,
    forceCloseConnections: false,
    ajv: { customOptions: VALIDATOR_OPTIONS },
    schemaErrorFormatter,
    bodyLimit: 64 * 1024,
  });

  const routes: RouteInfo[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, schema: route.schema });
  });

  app.server.headersTimeout = limits.headersTimeoutMs;
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.setErrorHandler(errorHandler);

  // Counted in the database, across workers and hosts (rate-limit-store.ts; docs/backend.md, Abuse limits).
  // When the counts cannot be reached the request goes on uncounted: it needs the database anyway, and the
  // probes must not fail with it. Requests from this host itself (health checks, the release gate, an
  // operator's curl) are not counted.
  void app.register(rateLimit, {
    max: limits.rateLimitPerMinute,
    timeWindow: 60000,
    store: postgresRateLimitStore(pool, app.log),
    skipOnError: true,
    allowList: (req) => LOOPBACK.has(req.ip),
    errorResponseBuilder: (_req, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `over ${context.max} requests per minute from this address; retry in ${Math.ceil(context.ttl / 1000)} s`,
    }),
  });
  app.addHook('onRequest', async (_req, reply) => {
    if (lifecycle.draining) reply.header('connection', 'close');
  });

  // The probes and /version are never rate-limited, from any address: a balancer's health checks come from its own.
  const uncounted = { config: { rateLimit: false as const } };
  app.get('/healthz', uncounted, async () => ({ status: 'ok' }));

  // Migrations are applied before a release switches and never un-applied while it serves: check until they are there once.
  let migrationsApplied = requiredMigrations.length === 0;
  const ping = sharedPing(pool);
  app.get('/readyz', uncounted, async (req, reply) => {
    if (lifecycle.draining) return reply.status(503).send({ status: 'draining' });
    try {
      await ping();
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

  app.get('/version', uncounted, async () => ({
    release: release.id,
    build: release.build,
    pid: process.pid,
    node: process.version,
    uptimeSeconds: Math.round(process.uptime()),
  }));

  // The API: one encapsulated scope whose every route checks tokens (auth.ts). The probes above stay open.
  void app.register(async (api) => {
    requireTokens(api, { pool, publicReads: limits.publicReads });
    await api.register(sectionRoutes, { pool, limits });
    await api.register(plotRoutes, { pool, limits });
    await api.register(burialRoutes, { pool, limits });
  });
  return app;
}
