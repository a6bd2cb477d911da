/**
 * The rate limit's counts in PostgreSQL, so that a client's limit holds
 * across every worker of every host: PM2 hands each connection to the next
 * worker, and a balancer to the next host, so counts kept in a worker's
 * memory let a client through N times the limit. One row per client address
 * (migration rate-limit-hits): one upsert per counted request, atomic on the
 * row, timed by the database's clock (the hosts' clocks need not agree).
 *
 * A store for @fastify/rate-limit 11 (index.js: `new Store(params)`, then
 * `incr(key, cb, timeWindow, max)` answering `{ current, ttl }`, and
 * `child(routeOptions)` for a route's own settings). Its window starts at a
 * client's first request, as the plugin's LocalStore's does.
 *
 * A client over its limit is then refused by each worker from memory until
 * its window ends: a flood costs the shared database one upsert per worker,
 * not one per request.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Pool } from './db';

type IncrResult = { current: number; ttl: number };

/** How often a worker deletes the rows of clients gone quiet (every worker does; the delete is cheap and idempotent). */
const SWEEP_EVERY_MS = 10 * 60 * 1000;
/** Clients over their limit a worker remembers; past this many it forgets them all (each costs an upsert again). */
const MAX_REMEMBERED = 10000;
/** A failing store is logged at most this often per worker: the database being down is reported elsewhere too. */
const WARN_EVERY_MS = 60 * 1000;

const INCR_SQL = `
  INSERT INTO rate_limit_hits AS r (key, window_start, hits) VALUES ($1, now(), 1)
  ON CONFLICT (key) DO UPDATE SET
    window_start = CASE WHEN r.window_start + make_interval(secs => $2 / 1000.0) <= now() THEN now() ELSE r.window_start END,
    hits = CASE WHEN r.window_start + make_interval(secs => $2 / 1000.0) <= now() THEN 1 ELSE r.hits + 1 END
  RETURNING hits, ceil(extract(epoch FROM r.window_start + make_interval(secs => $2 / 1000.0) - now()) * 1000)::bigint AS ttl_ms`;

/** The store class the plugin constructs, bound to the app's pool. */
export function postgresRateLimitStore(pool: Pool, log: FastifyBaseLogger) {
  let lastSweep = Date.now();
  let lastWarning = 0;
  /** Client key -> when its window ends (ms), for clients the database said were over their limit. */
  const refusedUntil = new Map<string, number>();

  return class PostgresRateLimitStore {
    incr(key: string, cb: (err: Error | null, result?: IncrResult) => void, timeWindow: number, max: number) {
      const until = refusedUntil.get(key);
      if (until !== undefined) {
        if (until > Date.now()) return cb(null, { current: max + 1, ttl: until - Date.now() });
        refusedUntil.delete(key);
      }
      pool.query<{ hits: number; ttl_ms: string }>(INCR_SQL, [key, timeWindow]).then(
        ({ rows: [row] }) => {
          const ttl = Math.max(0, Number(row.ttl_ms));
          if (row.hits > max) {
            if (refusedUntil.size >= MAX_REMEMBERED) refusedUntil.clear();
            refusedUntil.set(key, Date.now() + ttl);
          }
          cb(null, { current: row.hits, ttl });
          sweepNowAndThen(timeWindow);
        },
        (err: Error) => {
          if (Date.now() - lastWarning > WARN_EVERY_MS) {
            lastWarning = Date.now();
            log.warn({ err: err.message }, 'rate limit: the shared counts are unreachable, so requests are let through uncounted');
          }
          cb(err);
        },
      );
    }

    /** One table for every route: a route's own max or window still applies, counted in the same row. */
    child() {
      return this;
    }
  };

  function sweepNowAndThen(timeWindow: number) {
    if (Date.now() - lastSweep < SWEEP_EVERY_MS) return;
    lastSweep = Date.now();
    pool.query('DELETE FROM rate_limit_hits WHERE window_start < now() - make_interval(secs => $1 / 1000.0)', [Math.max(timeWindow, SWEEP_EVERY_MS)]).catch(() => {});
  }
}
