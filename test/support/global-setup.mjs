import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startEmbeddedPostgres } from '../../scripts/lib/embedded-postgres.mjs';
import { enableTestTls } from './database-tls.mjs';

export default async function globalSetup() {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'cemetery-test-pg-'));
  const db = await startEmbeddedPostgres({ stateDir, port: await freePort(), persistent: false });
  globalThis.__testPostgres = db;
  globalThis.__testPostgresDir = stateDir;
  // Workers start after this and inherit it.
  process.env.TEST_PG_ADMIN_URL = db.urlFor('postgres');
  const tlsDir = path.join(stateDir, 'tls');
  await mkdir(tlsDir);
  const tls = await enableTestTls({ dir: tlsDir, adminUrl: process.env.TEST_PG_ADMIN_URL, dataDir: path.join(stateDir, 'data') });
  process.env.TEST_PG_TLS_CA = tls.ca;
  process.env.TEST_PG_TLS_WRONG_CA = tls.wrongCa;
}
