/**
 * What PM2's listen_timeout means for a reload (pm2 7.0.4 lib/God/Reload.js
 * hardReload): the old worker is retired when the new one says `ready`, or
 * when listen_timeout passes, ready or not. On a host where a worker boots
 * slower than the timeout (an emulated VM under load took 20–50 s), that is a
 * window with no worker listening. So provisioning sets PM2_LISTEN_TIMEOUT_MS
 * to the release's health timeout. Real PM2, the real app and process file;
 * the workers boot slowly through a preload given as node_args (only the workers run it).
 */
import { pm2Async, pm2List } from '../scripts/lib/pm2.cjs';
import { waitUntil } from '../scripts/lib/wait.cjs';
import { createMigratedDatabase } from './support/db';
import { startLoad } from './support/load';
import { APP_NAME, processFileWithPreload, sleepingPreload, startCluster } from './support/pm2-cluster';
import { tempDir } from './support/temp-dir';

jest.setTimeout(120000);

/** Longer than PM2's kill_timeout (8 s): the old worker is surely gone before a new one can be ready. */
const BOOT_DELAY_MS = 10000;

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let cluster: Awaited<ReturnType<typeof startCluster>>;
let slowProcessFile: string;

beforeAll(async () => {
  db = await createMigratedDatabase('pm2_listen');
  // One worker: the window, if any, is not covered by a second one.
  cluster = await startCluster(db.url, 1);
  // The real process file, its workers started with a preload that sleeps (node_args reach only the workers).
  slowProcessFile = processFileWithPreload(tempDir('slow-boot'), 'slow-boot', sleepingPreload(BOOT_DELAY_MS));
});

afterAll(async () => {
  await cluster?.stop();
  await db?.drop();
});

/** `pm2 startOrReload` of the process file, as the release tool runs it, with workers that take BOOT_DELAY_MS to boot; the load's result. */
async function slowReload(listenTimeoutMs: number) {
  const env = { ...cluster.env, PM2_LISTEN_TIMEOUT_MS: String(listenTimeoutMs) };
  const before = cluster.online().map((p) => p.pid);
  const load = startLoad(cluster.url, ['/version'], { connections: 4, timeoutSeconds: 60 });
  await waitUntil('the load under way', () => load.requests > 0);
  const started = Date.now();
  await pm2Async(['startOrReload', slowProcessFile], { env });
  await waitUntil('the new worker online', () => cluster.online().some((p) => !before.includes(p.pid)), { timeoutMs: 60000 });
  await cluster.ready();
  const result = await load.stop();
  const [worker] = pm2List(cluster.env).filter((p) => p.name === APP_NAME);
  return { result, seconds: (Date.now() - started) / 1000, listenTimeout: (worker.pm2_env as unknown as { listen_timeout: number }).listen_timeout };
}

test('listen_timeout shorter than the boot: PM2 retires the old worker anyway, and connections are refused', async () => {
  const { result, listenTimeout, seconds } = await slowReload(1000);
  console.log(`reload, listen_timeout 1 s, boot ${BOOT_DELAY_MS / 1000} s: failures ${JSON.stringify(result.failures)}`);
  expect(listenTimeout).toBe(1000);
  expect(seconds).toBeGreaterThan(BOOT_DELAY_MS / 1000);
  expect(result.failures.ECONNREFUSED).toBeGreaterThan(0);
});

test('listen_timeout longer than the boot: the old worker serves until the new one is ready, no request fails', async () => {
  const { result, listenTimeout, seconds } = await slowReload(60000);
  console.log(`reload, listen_timeout 60 s, boot ${BOOT_DELAY_MS / 1000} s: ${result.requests} requests, failures ${JSON.stringify(result.failures)}`);
  expect(listenTimeout).toBe(60000);
  expect(seconds).toBeGreaterThan(BOOT_DELAY_MS / 1000);
  expect(result.failures).toEqual({});
  expect(result.ok).toBeGreaterThan(0);
});
