// Where the local development database lives; one place for the PM2 app and the start script.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = fileURLToPath(new URL('../../', import.meta.url));

export const LOCAL_DB = {
  name: 'cemetery-backend-postgres',
  stateDir: process.env.LOCAL_PG_DIR || path.join(root, '.data', 'postgres'),
  port: Number(process.env.LOCAL_PG_PORT || 54329),
  database: process.env.LOCAL_PG_DATABASE || 'cemetery',
};

/** The URL of the local database, once its password file exists. */
export function localDatabaseUrl() {
  const file = path.join(LOCAL_DB.stateDir, 'postgres-password');
  if (!existsSync(file)) return undefined;
  const password = readFileSync(file, 'utf8').trim();
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${LOCAL_DB.port}/${LOCAL_DB.database}`;
}
