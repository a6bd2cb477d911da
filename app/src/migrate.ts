import path from 'node:path';
import { runner } from 'node-pg-migrate';
import { CONFIG_ERROR_EXIT_CODE, ConfigError, loadConfig, type AppConfig } from './config';
import { databaseClientConfig, explainDatabaseError } from './db';
import { withEnvFile } from './env-file';

/**
 * Applies the SQL migrations shipped beside this file (dist/migrations).
 * node-pg-migrate holds an advisory lock, so two deploys never migrate at once.
 */
async function migrate() {
  let config: AppConfig;
  try {
    config = loadConfig(withEnvFile(process.env));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`cemetery-backend migrate: ${err.message}\n`);
    process.exit(CONFIG_ERROR_EXIT_CODE);
  }
  const direction = process.argv[2] === 'down' ? 'down' : 'up';
  const applied = await runner({
    databaseUrl: databaseClientConfig(config.databaseUrl, config.databaseCa),
    dir: path.join(__dirname, 'migrations'),
    migrationsTable: 'pgmigrations',
    direction,
    count: direction === 'down' ? 1 : Infinity,
    checkOrder: true,
    log: (msg: string) => process.stdout.write(`${msg}\n`),
  });
  process.stdout.write(`migrate ${direction}: ${applied.length ? applied.map((m: { name: string }) => m.name).join(', ') : 'nothing to do'}\n`);
}

migrate().catch((err) => {
  process.stderr.write(`cemetery-backend migrate: failed: ${explainDatabaseError(err)}\n`);
  process.exit(1);
});
