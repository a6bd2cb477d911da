import { rm } from 'node:fs/promises';

export default async function globalTeardown() {
  await globalThis.__testPostgres?.stop();
  // The run's PostgreSQL leaves nothing behind: its data, its TLS files.
  if (globalThis.__testPostgresDir) await rm(globalThis.__testPostgresDir, { recursive: true, force: true });
}
