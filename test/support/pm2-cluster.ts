import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pm2, pm2List, type Pm2Process } from '../../scripts/lib/pm2.cjs';
import { freePort } from '../../scripts/lib/ports.cjs';
import { ROOT } from './db';
import { getFresh } from './http';
import { waitUntil } from '../../scripts/lib/wait.cjs';

export const APP_NAME = 'cemetery-backend';
export const ECOSYSTEM = path.join(ROOT, 'app', 'ecosystem.config.js');

/**
 * A real PM2 daemon of its own (PM2_HOME in a temp dir) running the real
 * ecosystem file, on a free port: tests never touch a developer's PM2.
 */
export async function startCluster(databaseUrl: string, instances = 2, extraEnv: NodeJS.ProcessEnv = {}) {
  const home = await mkdtemp(path.join(tmpdir(), 'cemetery-pm2-'));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PM2_HOME: home,
    PM2_INSTANCES: String(instances),
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    LOG_DIR: path.join(home, 'logs'),
    LOG_LEVEL: 'info',
    RELEASE_ID: 'pm2-test',
    // As provisioning sets them, sized for a busy machine: a worker's boot and a new pool's first connections
    // may take seconds; a reload must wait for the new worker, not time out and retire the old one anyway.
    PM2_LISTEN_TIMEOUT_MS: '60000',
    DB_CONNECT_TIMEOUT_MS: '30000',
    ...extraEnv,
  };
  delete env.NODE_ENV; // jest sets NODE_ENV=test; the ecosystem file decides on its own
  const url = `http://127.0.0.1:${port}`;
  pm2(['start', ECOSYSTEM], { env });

  const workers = () => pm2List(env).filter((p) => p.name === APP_NAME);
  const online = () => workers().filter((p) => p.pm2_env.status === 'online');
  const cluster = {
    env,
    url,
    home,
    logDir: env.LOG_DIR!,
    workers,
    online,
    /** Waits for `count` online workers, all answering readiness. */
    async ready(count = instances): Promise<Pm2Process[]> {
      return waitUntil(`${count} online workers and /readyz 200`, async () => {
        const up = online();
        if (up.length !== count) return undefined;
        return (await getFresh(`${url}/readyz`)).status === 200 ? up : undefined;
      });
    },
    async stop() {
      pm2(['kill'], { env, allowFailure: true });
      await rm(home, { recursive: true, force: true });
    },
  };
  // A cluster that never became ready is stopped here: the caller has no handle to stop it with.
  await cluster.ready().catch(async (err) => {
    await cluster.stop();
    throw err;
  });
  return cluster;
}

/** Preload source that holds a worker's start for `ms` (a slow boot) without a busy loop. */
export const sleepingPreload = (ms: number) => `Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${ms});\n`;

/**
 * The real process file, with `preloadSource` required first by its workers (node_args reach only them, not
 * PM2): in `dir`, as `<name>.config.js`.
 */
export function processFileWithPreload(dir: string, name: string, preloadSource: string) {
  const preload = path.join(dir, `${name}.js`);
  writeFileSync(preload, preloadSource);
  const processFile = path.join(dir, `${name}.config.js`);
  writeFileSync(processFile, `const file = require(${JSON.stringify(ECOSYSTEM)});\nfile.apps[0].node_args = ['--require', ${JSON.stringify(preload)}];\nmodule.exports = file;\n`);
  return processFile;
}
