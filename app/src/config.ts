import { z } from 'zod';

/** Exit code for a configuration error; PM2's `stop_exit_codes` lists it so a bad env does not crash-loop. */
export const CONFIG_ERROR_EXIT_CODE = 78;

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
  PORT: integer('PORT', 1, 65535, 3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: (issue) => `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${String(issue.input)}"` }).default('info'),
  DB_POOL_MAX: integer('DB_POOL_MAX', 1, 100, 10),
  // Must end before PM2's kill_timeout so the process exits on its own, not by SIGKILL.
  SHUTDOWN_TIMEOUT_MS: integer('SHUTDOWN_TIMEOUT_MS', 100, 600000, 5000),
});

export type AppConfig = {
  databaseUrl: string;
  port: number;
  host: string;
  logLevel: (typeof LOG_LEVELS)[number];
  dbPoolMax: number;
  shutdownTimeoutMs: number;
};

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv): AppConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  - ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  const c = parsed.data;
  return {
    databaseUrl: c.DATABASE_URL,
    port: c.PORT,
    host: c.HOST,
    logLevel: c.LOG_LEVEL,
    dbPoolMax: c.DB_POOL_MAX,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
  };
}
