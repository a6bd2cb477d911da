import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Pool } from './db';
import { HttpError } from './errors';
import { isActiveToken } from './tokens';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The token of `Authorization: Bearer <token>`, or undefined. */
const bearerOf = (req: FastifyRequest) => /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '')?.[1];

const unauthorized = (message: string) => new HttpError(401, message, { 'www-authenticate': 'Bearer realm="cemetery-backend"' });

/**
 * Writes to /api need an active token; reads too when `publicReads` is off.
 * The probes (/healthz, /readyz, /version) stay open. A refused token gets one
 * answer, whatever was wrong with it (unknown, revoked, malformed).
 */
export function requireTokens(app: FastifyInstance, { pool, publicReads }: { pool: Pool; publicReads: boolean }) {
  app.addHook('preHandler', async (req) => {
    if (!req.url.startsWith('/api/')) return;
    if (publicReads && READS.has(req.method)) return;
    const token = bearerOf(req);
    const what = READS.has(req.method) ? 'requests' : 'write requests';
    if (!token) throw unauthorized(`${what} need a token: Authorization: Bearer <token>`);
    if (!(await isActiveToken(pool, token))) throw unauthorized('the bearer token is not accepted');
  });
}
