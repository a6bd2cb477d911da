/**
 * The attacker's view of "writes need a token": every route the server
 * registers (taken from the server, not from a list kept here), spelled every
 * way a path can be spelled, sent as raw bytes over a socket (no client
 * library normalises the path), with no token. No write may succeed, and no
 * read when PUBLIC_READS=false, except the three open probes. A control sends
 * each write with a token and the plain spelling: those succeed, so the bodies
 * are good and a refusal here is the token check's.
 */
import type { FastifyInstance } from 'fastify';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { createPool, type Pool } from '../app/src/db';
import { shippedMigrations } from '../app/src/release';
import { buildServer, registeredRoutes } from '../app/src/server';
import { createToken } from '../app/src/tokens';
import { createMigratedDatabase, ROOT } from './support/db';

/** Open by design (README: the probes): they say nothing about the register. */
const OPEN_PROBES = new Set(['/healthz', '/readyz', '/version']);
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let pool: Pool;
let token: string;
const ids = { section: 0, plot: 0, spare: 0, free: 0, burial: 0 };

beforeAll(async () => {
  db = await createMigratedDatabase('authmatrix');
  pool = createPool(db.url, 4, pino({ level: 'silent' }));
  token = (await createToken(pool, 'matrix')).token;
  ids.section = (await pool.query("INSERT INTO sections (name) VALUES ('Matrix') RETURNING id")).rows[0].id;
  const plots = await pool.query('INSERT INTO plots (section_id, "row", number) VALUES ($1, 1, 1), ($1, 1, 2), ($1, 1, 3) RETURNING id', [ids.section]);
  [ids.plot, ids.spare, ids.free] = plots.rows.map((r) => r.id);
  ids.burial = (await pool.query("INSERT INTO burials (plot_id, deceased_name, death_date) VALUES ($1, 'A. Matrix', '2001-01-01') RETURNING id", [ids.plot])).rows[0].id;
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

/** One request as raw bytes: the request target reaches the server exactly as written here. */
function raw(port: number, method: string, target: string, body?: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => (answer += d));
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)));
    const lines = [`${method} ${target} HTTP/1.1`, 'Host: cemetery.test', 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    if (body !== undefined) lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
    // Not end(): a half-closed socket can be dropped before a slow handler answers. Connection: close ends it after the answer.
    socket.write(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
  });
}

let unique = 0;
/** A concrete path for a route (its parameters filled with rows that exist) and a body a token holder's request would succeed with. */
function requestFor(method: string, url: string): { path: string; body?: string } {
  const filled = url.replace(/^\/api\/(sections|plots|burials)\/:id/, (_m, kind: string) => `/api/${kind}/${kind === 'sections' ? ids.section : kind === 'plots' ? ids.spare : ids.burial}`);
  if (filled.includes(':')) throw new Error(`no parameter values for route ${url}: teach requestFor about it`);
  if (READS.has(method)) return { path: filled };
  const n = ++unique;
  const bodies: Record<string, object> = {
    'POST /api/sections': { name: `Matrix ${n}` },
    'POST /api/plots': { sectionId: ids.section, row: 2, number: n },
    'PUT /api/plots/:id/status': { status: n % 2 ? 'reserved' : 'available' },
    'POST /api/burials': { plotId: ids.free, deceasedName: `B. Matrix ${n}`, deathDate: '2002-02-02' },
  };
  const body = bodies[`${method} ${url}`];
  if (!body) throw new Error(`no body for ${method} ${url}: teach requestFor about it`);
  return { path: filled, body: JSON.stringify(body) };
}

const hex = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
/** Other spellings of a path: percent-encoded characters (each alone, both hex cases, all), case, slashes, dot segments, parameters. */
export function spellings(p: string): string[] {
  const out = new Set<string>([p]);
  for (let i = 1; i < p.length; i++) {
    if (p[i] === '/') continue;
    out.add(p.slice(0, i) + hex(p[i]) + p.slice(i + 1));
    out.add(p.slice(0, i) + hex(p[i]).toUpperCase() + p.slice(i + 1));
  }
  out.add(p.replace(/[^/]/g, hex));
  out.add(p.replace('a', '%2561')); // encoded twice
  out.add(p.toUpperCase());
  out.add(p.replace('/api', '/API'));
  out.add(p.replace(/\/([a-z])/g, (_m, c: string) => `/${c.toUpperCase()}`));
  out.add(`/${p}`);
  out.add(p.replace(/\//g, '//'));
  out.add(`${p}/`);
  out.add(`${p}//`);
  out.add(p.replace('/api/', '/api%2f'));
  out.add(p.replace('/api/', '/api%2F'));
  out.add(`/${p.slice(1).replace(/\//g, '%2F')}`);
  out.add(p.replace('/api/', '/api\\'));
  out.add(`/.${p}`);
  out.add(`/x/..${p}`);
  out.add(`/x/%2e%2e${p}`);
  out.add(`/x%2f..${p}`);
  out.add(p.replace('/api/', '/api/./'));
  out.add(p.replace('/api/', '/api/%2e/'));
  out.add(`/api/..${p}`);
  out.add(`${p}/.`);
  out.add(`${p}/..${p.slice(p.lastIndexOf('/'))}`);
  for (const tail of ['?', '?x=1', '?access_token=x', ';x=1', '%3Bx=1', '#x', '%23x', '%00', '%20', '%09', '.json', '~']) out.add(`${p}${tail}`);
  out.add(`http://cemetery.test${p}`); // absolute form
  out.add(`http://cemetery.test/x/..${p}`);
  return [...out];
}

async function counts() {
  const { rows } = await pool.query(`SELECT (SELECT count(*) FROM sections) s, (SELECT count(*) FROM plots) p, (SELECT count(*) FROM burials) b,
      (SELECT string_agg(id || status || updated_at, ',' ORDER BY id) FROM plots) state`);
  return rows[0];
}

/** Headers a stranger tries besides none: another method or URL named in a header, an empty or bare Bearer. */
const ATTEMPTS: Record<string, string>[] = [{}, { 'x-http-method-override': 'GET', 'x-original-url': '/healthz', 'x-rewrite-url': '/healthz' }, { authorization: 'Bearer ' }, { authorization: 'bearer' }];

async function attack(app: FastifyInstance, publicReads: boolean) {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  const routes = registeredRoutes(app);
  const passed: string[] = [];
  let sent = 0;
  try {
    for (const { method, url } of routes) {
      const open = OPEN_PROBES.has(url) || (publicReads && READS.has(method));
      if (open) continue;
      const { path: p, body } = requestFor(method, url);
      for (const target of spellings(p)) {
        for (const headers of ATTEMPTS) {
          sent++;
          const status = await raw(port, method, target, body, headers);
          // 0: no answer at all, which could hide one: counted as passed, so it is seen.
          if (status === 0 || (status >= 200 && status < 400)) passed.push(`${method} ${target} ${JSON.stringify(headers)} -> ${status}`);
        }
      }
    }
  } finally {
    await app.close();
  }
  return { routes, passed, sent };
}

const server = (publicReads: boolean) =>
  buildServer({ pool, release: { id: 'x', build: 'x' }, requiredMigrations: shippedMigrations(path.join(ROOT, 'app', 'migrations')), logger: false, limits: { publicReads, rateLimitPerMinute: 1000000 } });

test('no route, however its path is spelled, writes without a token; with PUBLIC_READS=false none reads either (the probes excepted)', async () => {
  const before = await counts();
  const sizes: Record<string, number> = {};
  for (const publicReads of [true, false]) {
    const { routes, passed, sent } = await attack(server(publicReads), publicReads);
    // The server has the API: a registry that lost its routes would make this test pass on nothing.
    expect(routes.filter((r) => r.url.startsWith('/api/') && !READS.has(r.method)).length).toBeGreaterThanOrEqual(4);
    expect(passed).toEqual([]);
    sizes[`publicReads ${publicReads}`] = sent;
  }
  expect(await counts()).toEqual(before);
  console.log(`auth matrix: ${JSON.stringify(sizes)} requests without a valid token, none answered 2xx/3xx; the register unchanged`);
});

test('control: each write and read, plainly spelled and with a token, succeeds (the bodies are good)', async () => {
  const app = server(false);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;
  try {
    const writes = registeredRoutes(app).filter((r) => !READS.has(r.method));
    for (const { method, url } of writes) {
      const { path: p, body } = requestFor(method, url);
      expect(`${method} ${url} ${await raw(port, method, p, body, { authorization: `Bearer ${token}` })}`).toMatch(new RegExp(`^${method} ${url} 20[01]$`));
    }
    for (const { url } of registeredRoutes(app).filter((r) => r.method === 'GET' && r.url.startsWith('/api/'))) {
      expect(`${url} ${await raw(port, 'GET', requestFor('GET', url).path, undefined, { authorization: `Bearer ${token}` })}`).toBe(`${url} 200`);
    }
  } finally {
    await app.close();
  }
});
