/**
 * How PM2 paces a reload, which the release tool's "reloading …" line states (reloadPace): one worker at a
 * time for up to two workers, two at a time from three on (pm2 7.0.4 lib/API.js _operate). Real PM2, the real
 * app and process file; each new worker notes when it started, then takes BOOT_DELAY_MS to boot, so the
 * workers that started before the first one could be ready are the ones PM2 reloads at once.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pm2, pm2Async } from '../scripts/lib/pm2.cjs';
import { reloadPace } from '../scripts/release-tool/plan';
import { createMigratedDatabase } from './support/db';
import { APP_NAME, processFileWithPreload, sleepingPreload, startCluster } from './support/pm2-cluster';
import { tempDir } from './support/temp-dir';

jest.setTimeout(120000);

const BOOT_DELAY_MS = 4000;

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let cluster: Awaited<ReturnType<typeof startCluster>>;
let dir: string;

beforeAll(async () => {
  db = await createMigratedDatabase('pm2_pace');
  cluster = await startCluster(db.url, 4);
  dir = tempDir('reload-pace');
});

afterAll(async () => {
  await cluster?.stop();
  await db?.drop();
});

/** Reloads the cluster with workers that note their start; how many started before the first could be ready. */
async function reloadedAtOnce(label: string, instances: number) {
  const starts = path.join(dir, `${label}.starts`);
  writeFileSync(starts, '');
  const processFile = processFileWithPreload(
    dir,
    label,
    `require('fs').appendFileSync(${JSON.stringify(starts)}, Date.now() + '\\n');\n${sleepingPreload(BOOT_DELAY_MS)}`,
  );
  await pm2Async(['startOrReload', processFile], { env: { ...cluster.env, PM2_INSTANCES: String(instances) } });
  const times = readFileSync(starts, 'utf8').trim().split('\n').map(Number);
  return { reloaded: times.length, atOnce: times.filter((t) => t < times[0] + BOOT_DELAY_MS).length };
}

test('four workers are reloaded two at a time, two workers one at a time, as the release tool says', async () => {
  const four = await reloadedAtOnce('four', 4);
  expect(four).toEqual({ reloaded: 4, atOnce: 2 });
  expect(reloadPace(4)).toBe('two workers at a time');

  pm2(['scale', APP_NAME, '2'], { env: cluster.env });
  await cluster.ready(2);
  const two = await reloadedAtOnce('two', 2);
  expect(two).toEqual({ reloaded: 2, atOnce: 1 });
  expect(reloadPace(2)).toBe('one worker at a time');
});
