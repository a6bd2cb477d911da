/**
 * The front door's Caddyfile (scripts/host/caddyfile.sh, as the proxy step
 * writes it) read by a real Caddy, Debian's 2.6.2 as the hosts run it; and,
 * behind a load balancer, run in front of the real app, attacked from outside:
 * who may say where a request comes from. Needs a caddy binary: $CADDY,
 * .cache/caddy/usr/bin/caddy (.ci/run unpacks Debian's package there, starting
 * no service), or caddy on PATH; CI requires it, elsewhere these are skipped
 * with a notice.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createPool, type Pool } from '../app/src/db';
import { buildServer } from '../app/src/server';
import { appTrustProxy, HOST_SCRIPTS_DIR } from '../infra/host-steps';
import { PUBLIC_SUBNET_CIDRS } from '../infra/vpc-ranges';
import { freePort } from '../scripts/lib/ports.cjs';
import { createMigratedDatabase } from './support/db';

const ROOT = path.resolve(__dirname, '..');
function findCaddy(): string | undefined {
  const candidates = [process.env.CADDY, path.join(ROOT, '.cache/caddy/usr/bin/caddy')];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return execFileSync('sh', ['-c', 'command -v caddy'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const CADDY = findCaddy();
if (!CADDY && process.env.CI) throw new Error('caddy is required in CI (.ci/run unpacks Debian\'s package into .cache/caddy)');
if (!CADDY) console.warn('caddy not found ($CADDY, .cache/caddy/usr/bin/caddy, PATH): the Caddyfile tests are skipped (apt-get install caddy)');
const withCaddy = CADDY ? describe : describe.skip;

type FrontDoor = { domain?: string; acmeEmail?: string; issuer?: 'acme' | 'internal'; balancerRanges?: string };

/** The Caddyfile the proxy step writes for these arguments, printed by the step's own function. */
function caddyfileFor(door: FrontDoor, appPort = 3000, adminSocket = '/run/caddy/admin.sock') {
  return execFileSync('bash', ['-c', `source ${HOST_SCRIPTS_DIR}/caddyfile.sh && caddyfile`], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      APP_PORT: String(appPort),
      ISSUER: door.issuer ?? 'acme',
      MAINTENANCE_FLAG: '/var/lib/cemetery-backend/maintenance',
      ADMIN_SOCKET: adminSocket,
      domain: door.domain ?? '',
      acme_email: door.acmeEmail ?? '',
      balancer_ranges: door.balancerRanges ?? '',
    },
  });
}

/** Caddy's own reading of a Caddyfile: its JSON config (fails on a Caddyfile it does not take). */
function adapt(caddyfile: string, home: string): any {
  const file = path.join(home, 'Caddyfile');
  writeFileSync(file, caddyfile);
  return JSON.parse(execFileSync(CADDY!, ['adapt', '--adapter', 'caddyfile', '--config', file], { encoding: 'utf8', env: { HOME: home, PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

const BALANCED: FrontDoor = { domain: 'cemetery.example.org', balancerRanges: PUBLIC_SUBNET_CIDRS.join(' ') };

/** The proxy step's check of the running front door (caddyfile.sh front_door_answer): what it printed, or null when it failed. */
function frontDoorAnswer(url: string, balancerRanges: string): Promise<string | null> {
  return new Promise((resolve) =>
    execFile('bash', ['-c', `source ${HOST_SCRIPTS_DIR}/caddyfile.sh && front_door_answer "$0" cemetery.example.org`, url], { env: { PATH: process.env.PATH, balancer_ranges: balancerRanges } }, (err, stdout) =>
      resolve(err ? null : stdout.trim()),
    ),
  );
}

// A new host behind the balancer has no app until its release step, which comes after the proxy step: there Caddy
// closes a GET unanswered (below), and the proxy step's check once took that for "caddy does not answer" and failed
// the host's first up (the VM tier's fleet, once its hosts no longer started with the first host's workers).
describe("the proxy step's check of port 80", () => {
  let closer: net.Server;
  let answering: http.Server;
  const urls = { closer: '', answering: '', nothing: '' };
  beforeAll(async () => {
    // Takes each connection and closes it without a word, as Caddy's abort does.
    closer = net.createServer((socket) => socket.once('data', () => socket.destroy()));
    answering = http.createServer((_req, res) => res.writeHead(503).end());
    for (const [name, server] of [['closer', closer], ['answering', answering]] as const) {
      const port = await freePort();
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      urls[name] = `http://127.0.0.1:${port}/readyz`;
    }
    // A port nothing listens on.
    urls.nothing = `http://127.0.0.1:${await freePort()}/readyz`;
  });
  afterAll(() => {
    closer?.close();
    answering?.close();
  });

  test('any HTTP answer is one; behind the balancer a connection taken and closed unanswered is one too ("none"); nothing listening never is', async () => {
    const ranges = PUBLIC_SUBNET_CIDRS.join(' ');
    expect(await frontDoorAnswer(urls.answering, '')).toBe('503');
    expect(await frontDoorAnswer(urls.answering, ranges)).toBe('503');
    expect(await frontDoorAnswer(urls.closer, ranges)).toBe('none');
    // Without a balancer nothing is closed on purpose: an empty reply is a broken front door.
    expect(await frontDoorAnswer(urls.closer, '')).toBeNull();
    expect(await frontDoorAnswer(urls.nothing, ranges)).toBeNull();
    expect(await frontDoorAnswer(urls.nothing, '')).toBeNull();
  });
});

withCaddy('the Caddyfile, as Caddy 2.6.2 reads it', () => {
  let home: string;
  beforeAll(() => {
    home = mkdtempSync(path.join(os.tmpdir(), 'cemetery-caddyfile-'));
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  const routeOf = (config: any) => JSON.stringify(config.apps.http.servers.srv0.routes);
  const proxyOf = (config: any): any => {
    const found: any[] = [];
    JSON.stringify(config, (_k, v) => (v && v.handler === 'reverse_proxy' ? (found.push(v), v) : v));
    expect(found).toHaveLength(1);
    return found[0];
  };

  test.each([
    ['one host, no domain: plain HTTP on 80', {}, [':80'], false],
    ["one host with a domain: HTTPS for it (Let's Encrypt)", { domain: 'cemetery.example.org', acmeEmail: 'ops@example.org' }, [':443'], true],
    ["one host on Caddy's own CA", { domain: 'cemetery.test', issuer: 'internal' as const }, [':443'], true],
    ['behind the load balancer: HTTP on 80 for any name, HSTS for the domain', BALANCED, [':80'], true],
  ])('%s', (_what, door, listen, hsts) => {
    const config = adapt(caddyfileFor(door), home);
    expect(config.apps.http.servers.srv0.listen).toEqual(listen);
    expect(routeOf(config).includes('Strict-Transport-Security')).toBe(hsts);
    // Only the balancer's nodes are believed about the client; without one, nobody.
    expect(proxyOf(config).trusted_proxies).toEqual(door.balancerRanges ? door.balancerRanges.split(' ') : undefined);
    // The site answers whatever name a request carries only behind the balancer (its health checks carry an address).
    expect(routeOf(config).includes('"host":["cemetery.')).toBe(Boolean(door.domain && !door.balancerRanges));
    // Behind the balancer, any other peer but the host itself is turned away, before the maintenance page.
    expect(routeOf(config).includes(`{"not":[{"remote_ip":{"ranges":${JSON.stringify([...(door.balancerRanges?.split(' ') ?? []), '127.0.0.1/32', '::1/128'])}}}]}],"handle":[{"handler":"subroute","routes":[{"handle":[{"abort":true`)).toBe(Boolean(door.balancerRanges));
    expect(config.admin.listen).toBe('unix//run/caddy/admin.sock');
  });
});

withCaddy('behind the load balancer, a real Caddy in front of the real app: the client address is the one the balancer appended', () => {
  // The balancer's node is this machine at 127.0.0.2; an attacker who reaches the host's port 80 another
  // way (on aws the security group admits the balancer alone; target ssh has none) is 127.0.0.3.
  const NODE = '127.0.0.2';
  const STRANGER = '127.0.0.3';
  let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
  let pool: Pool;
  let app: ReturnType<typeof buildServer>;
  let caddy: ChildProcess;
  let home: string;
  let port: number;

  beforeAll(async () => {
    db = await createMigratedDatabase('caddy_front');
    pool = createPool(db.url, 5, pino({ level: 'silent' }), { connectTimeoutMs: 60000 });
    // The app as provisioning configures it behind a balancer (TRUST_PROXY), with a limit small enough to reach.
    app = buildServer({ pool, release: { id: 'x', build: 'x' }, logger: false, limits: { rateLimitPerMinute: 2, trustProxy: appTrustProxy([`${NODE}/32`]) } });
    const appPort = await freePort();
    await app.listen({ host: '127.0.0.1', port: appPort });
    home = mkdtempSync(path.join(os.tmpdir(), 'cemetery-caddy-'));
    const config = adapt(caddyfileFor({ domain: 'cemetery.example.org', balancerRanges: `${NODE}/32` }, appPort, path.join(home, 'admin.sock')), home);
    port = await freePort();
    // Port 80 is the host's; here a free one on loopback.
    config.apps.http.servers.srv0.listen = [`127.0.0.1:${port}`];
    writeFileSync(path.join(home, 'caddy.json'), JSON.stringify(config));
    caddy = spawn(CADDY!, ['run', '--config', path.join(home, 'caddy.json')], { env: { HOME: home, PATH: process.env.PATH }, stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if ((await get('/healthz', NODE).catch(() => undefined))?.status === 200) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('caddy did not answer on its port within 10 s');
  }, 90_000);

  afterAll(async () => {
    caddy?.kill();
    await app?.close();
    await pool?.end();
    await db?.drop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  function get(url: string, from: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: url, localAddress: from, headers: { host: '10.40.0.17', ...headers }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
      });
      req.on('error', reject);
    });
  }
  const read = (from: string, xff: string) => get('/api/sections?limit=1', from, { 'x-forwarded-for': xff });

  test("the balancer's health check, with an address for a name, reaches the app's /readyz; answers carry HSTS", async () => {
    const answer = await get('/readyz', NODE);
    expect(answer.status).toBe(200);
    expect(answer.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  test('a client that sends its own X-Forwarded-For through the balancer is still counted by the address the balancer appended', async () => {
    // The balancer appends the address it saw to whatever the client sent: "<claimed>, <real>".
    expect((await read(NODE, '203.0.113.1, 198.51.100.7')).status).toBe(200);
    expect((await read(NODE, '203.0.113.2, 198.51.100.7')).status).toBe(200);
    expect((await read(NODE, '203.0.113.3, 198.51.100.7')).status).toBe(429);
    // Another client through the same node has a count of its own: the node's address is not the key.
    expect((await read(NODE, '203.0.113.1, 198.51.100.8')).status).toBe(200);
  });

  // target ssh has no security group: the host's port 80 is the stranger's to reach.
  test('a peer that is not the balancer gets its connection closed unanswered, whatever it asks or claims; the host itself is served', async () => {
    for (const [url, headers] of [['/readyz', {}], ['/api/sections?limit=1', { 'x-forwarded-for': '198.51.100.7' }], ['/healthz', { host: 'cemetery.example.org' }]] as const) {
      await expect(get(url, STRANGER, headers)).rejects.toThrow(/socket hang up|ECONNRESET/);
    }
    expect((await get('/healthz', '127.0.0.1')).status).toBe(200);
  });

  // Last: it stops the app.
  test("once the app cannot be reached (PM2 down, or none yet), a GET is closed unanswered after Caddy's tries, for the balancer to send to another host, and the proxy step's check takes that as Caddy's answer; a POST is answered 502, never left for a second host to run again", async () => {
    await app.close();
    const post = new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/api/sections', method: 'POST', localAddress: NODE, headers: { host: '10.40.0.17', 'content-type': 'application/json' }, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end('{"name":"x"}');
    });
    // The proxy step's check on a new host, before its first release, at the same time: Caddy's own answer.
    const check = frontDoorAnswer(`http://127.0.0.1:${port}/readyz`, `${NODE}/32`);
    await expect(get('/api/sections?limit=1', NODE)).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(await post).toBe(502);
    expect(await check).toBe('none');
  }, 60_000);
});
