/**
 * Two hosts behind a balancer, on this machine: each host a real PM2 daemon of its own running the real app (cluster
 * mode), one database, and Debian's HAProxy with the target group's health check in front (test/support/haproxy.ts).
 * What a fleet's users see when one host's PM2 dies under load.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { waitUntil } from '../scripts/lib/wait.cjs';
import { createMigratedDatabase } from './support/db';
import { getFresh } from './support/http';
import { startLoad } from './support/load';
import { startCluster } from './support/pm2-cluster';
import { findHaproxy, startHaproxy } from './support/haproxy';

const HAPROXY = findHaproxy();
if (!HAPROXY && process.env.CI) throw new Error('haproxy is required in CI (.ci/run installs Debian\'s package)');
if (!HAPROXY) console.warn('haproxy not found ($HAPROXY, PATH): the balancer test is skipped (apt-get install haproxy)');
const withHaproxy = HAPROXY ? describe : describe.skip;

jest.setTimeout(180000);

withHaproxy('two hosts behind HAProxy with the target group\'s health check', () => {
  let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
  let hosts: Array<Awaited<ReturnType<typeof startCluster>>> = [];
  let balancer: Awaited<ReturnType<typeof startHaproxy>>;

  beforeAll(async () => {
    db = await createMigratedDatabase('balancer');
    hosts = [await startCluster(db.url, 2), await startCluster(db.url, 2)];
    balancer = await startHaproxy(HAPROXY!, hosts.map((h, i) => ({ name: `host${i + 1}`, host: '127.0.0.1', port: Number(new URL(h.url).port) })));
    await waitUntil('both hosts UP', async () => Object.values(await balancer.states()).every((s) => s === 'UP'), { timeoutMs: 60000, intervalMs: 250 });
  });

  afterAll(async () => {
    await balancer?.stop();
    for (const h of hosts) await h.stop();
    await db?.drop();
  });

  test('kill -9 of one host\'s PM2 daemon under load: its workers go with it, the balancer takes it out within its checks, and no GET fails (retried on the other host)', async () => {
    const pidsOf = (h: (typeof hosts)[number]) => new Set(h.online().map((p) => p.pid));
    const [first, second] = hosts;
    const served = async (n: number) => {
      const pids = [];
      for (let i = 0; i < n; i++) pids.push(JSON.parse((await getFresh(`${balancer.url}/version`)).body).pid as number);
      return pids;
    };
    // Both hosts serve, round robin; the balancer's session count (what the fleet's VM test reads) agrees with the pids.
    const sessionsBefore = await balancer.sessions();
    const before = await served(8);
    const sessionsAfter = await balancer.sessions();
    expect(before.some((p) => pidsOf(first).has(p)) && before.some((p) => pidsOf(second).has(p))).toBe(true);
    expect({ host1: sessionsAfter.host1 - sessionsBefore.host1, host2: sessionsAfter.host2 - sessionsBefore.host2 }).toEqual({
      host1: before.filter((p) => pidsOf(first).has(p)).length,
      host2: before.filter((p) => pidsOf(second).has(p)).length,
    });

    const load = startLoad(balancer.url, ['/api/sections?limit=5', '/version', '/healthz'], { connections: 4, pauseMs: 10 });
    await new Promise((r) => setTimeout(r, 2000));
    const daemon = Number(readFileSync(path.join(first.home, 'pm2.pid'), 'utf8'));
    const workers = [...pidsOf(first)];
    const killedAt = Date.now();
    process.kill(daemon, 'SIGKILL');
    // A cluster worker whose channel to its master closes exits (Node's cluster child, on 'disconnect').
    await waitUntil('the killed daemon\'s workers gone', () => workers.every((pid) => { try { process.kill(pid, 0); return false; } catch { return true; } }), { timeoutMs: 30000, intervalMs: 100 });
    const out = await waitUntil('host1 DOWN', async () => ((await balancer.states()).host1 === 'DOWN' ? Date.now() : undefined), { timeoutMs: 60000, intervalMs: 250 });
    await new Promise((r) => setTimeout(r, 3000));
    const result = await load.stop();
    const retries = await balancer.retries();
    console.log(`balancer: host1's PM2 killed; DOWN after ${((out - killedAt) / 1000).toFixed(1)} s; ${result.requests} requests, ${result.failed} failed ${JSON.stringify(result.failures)}; HAProxy retried ${retries.host1.retried} and redispatched ${retries.host1.redispatched} of host1's`);
    expect(result.failures).toEqual({});
    expect(result.requests).toBeGreaterThan(50);
    // Everything is now the other host's.
    expect((await served(6)).every((p) => pidsOf(second).has(p))).toBe(true);
  });
});
