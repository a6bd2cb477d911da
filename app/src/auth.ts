import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Pool } from './db';
import { HttpError } from './errors';
import { isActiveToken } from './tokens';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The token of `Authorization: Bearer <token>`, or undefined. */
const bearerOf = (req: FastifyRequest) => /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '')?.[1];

const unauthorized = (message: string) => new HttpError(401, message, { 'www-authenticate': 'Bearer realm="cemetery-backend"' });

/**
 * Every route registered in `scope` (an encapsulated plugin: the API) needs an
 * active token for writes, and for reads too when `publicReads` is off. The
 * decision belongs to the matched route, never to the URL's spelling: Fastify
 * runs a scope's hooks only for the routes of that scope, and its router
 * matches the percent-decoded path (find-my-way), so `/%61pi/sections` reaches
 * these hooks exactly when it reaches an API handler. A refused token gets one
 * answer, whatever was wrong with it (unknown, revoked, malformed). onRequest:
 * a stranger's body is neither parsed nor validated.
 */
export function requireTokens(scope: FastifyInstance, { pool, publicReads }: { pool: Pool; publicReads: boolean }) {
  scope.addHook('onRequest', async (req) => {
    const read = READS.has(req.method);
    if (publicReads && read) return;
    const token = bearerOf(req);
    if (!token) throw unauthorized(`${read ? 'requests' : 'write requests'} need a token: Authorization: Bearer <token>`);
    if (!(await isActiveToken(pool, token))) throw unauthorized('the bearer token is not accepted');
  });
}
