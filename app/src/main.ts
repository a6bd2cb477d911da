import pino from 'pino';
import { CONFIG_ERROR_EXIT_CODE, ConfigError, loadConfig } from './config';
import path from 'node:path';
import { createPool, warmPool, watchUntilReachable } from './db';
import { withEnvFile } from './env-file';
import { reportToPm2 } from './metrics';
import { releaseOf, shippedMigrations } from './release';
import { buildServer, type Lifecycle } from './server';
import { installGracefulShutdown } from './shutdown';

async function main() {
  let config;
  try {
    config = loadConfig(withEnvFile(process.env));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`cemetery-backend: ${err.message}\n`);
    process.exit(CONFIG_ERROR_EXIT_CODE);
  }

  // The bundle is dist/server.js: its directory is the release's dist.
  const release = releaseOf(__dirname);
  // JSON lines with one timestamp, pino's (ISO 8601): PM2 adds none (the process file sets no log_date_format).
  const logger = pino({ level: config.logLevel, base: { pid: process.pid, release: release.id }, timestamp: pino.stdTimeFunctions.isoTime });
  const pool = createPool(config.databaseUrl, config.dbPoolMax, logger, { ca: config.databaseCa, statementTimeoutMs: config.limits.statementTimeoutMs, connectTimeoutMs: config.dbConnectTimeoutMs });
  const lifecycle: Lifecycle = { draining: false };
  const app = buildServer({ pool, release, requiredMigrations: shippedMigrations(path.join(__dirname, 'migrations')), logger, lifecycle, limits: config.limits });

  const watcher = watchUntilReachable(pool, logger);
  app.addHook('onClose', async () => watcher.stop());
  installGracefulShutdown({ app, pool, lifecycle, timeoutMs: config.shutdownTimeoutMs });
  reportToPm2(app, pool);

  // In cluster mode a worker gets connections as soon as it listens (ready only tells PM2 when to retire the old one): warm first.
  await warmPool(pool, Math.min(config.dbPoolMax, 4), Math.max(5000, config.dbConnectTimeoutMs));
  await app.listen({ port: config.port, host: config.host });
  // PM2 (wait_ready) retires the old worker of a reload only after this.
  if (process.send) process.send('ready');
}

main().catch((err) => {
  process.stderr.write(`cemetery-backend: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
