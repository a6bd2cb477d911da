#!/usr/bin/env node
// The local PostgreSQL behind `npm run pm2:start` when DATABASE_URL is not set:
// runs under PM2 as `cemetery-backend-postgres`, keeps its data in .data/postgres
// (git-ignored), and stops the server when PM2 stops this process.
import { LOCAL_DB } from './lib/local-db.mjs';
import { startEmbeddedPostgres } from './lib/embedded-postgres.mjs';

const db = await startEmbeddedPostgres({
  stateDir: LOCAL_DB.stateDir,
  port: LOCAL_DB.port,
  log: (line) => process.stdout.write(String(line)),
});
await db.ensureDatabase(LOCAL_DB.database);
console.log(`local PostgreSQL ready on 127.0.0.1:${LOCAL_DB.port}, database ${LOCAL_DB.database}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await db.stop();
    process.exit(0);
  });
}
// Keep the event loop alive while the server runs.
setInterval(() => {}, 1 << 30);
