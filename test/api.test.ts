import type { FastifyInstance } from 'fastify';
import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import { createHash } from 'node:crypto';
import type { Limits } from '../app/src/config';
import { createPool, inTransaction, type Pool } from '../app/src/db';
import path from 'node:path';
import { shippedMigrations } from '../app/src/release';
import { buildServer } from '../app/src/server';
import { createToken, revokeToken } from '../app/src/tokens';
import { createMigratedDatabase, ROOT } from './support/db';

let db: Awaited<ReturnType<typeof createMigratedDatabase>>;
let pool: Pool;
let app: FastifyInstance;
/** A real token, created as `admin token create` does: every write below carries it. */
let token: string;
const auth = () => ({ authorization: `Bearer ${token}` });

beforeAll(async () => {
  db = await createMigratedDatabase('api');
  // A request may queue for a connection behind many others (50 at once below): the wait is not what is tested.
  pool = createPool(db.url, 5, pino({ level: 'silent' }), { connectTimeoutMs: 60000 });
  app = buildServer({ pool, release: { id: 'test-release', build: 'test-build' }, requiredMigrations: shippedMigrations(path.join(ROOT, 'app', 'migrations')), logger: false });
  await app.ready();
  token = (await createToken(pool, 'api-tests')).token;
});

afterAll(async () => {
  await app.close();
  await pool.end();
  await db.drop();
});

const call = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
  const res = await app.inject({ method, url, payload, headers: method === 'GET' ? {} : auth() });
  return { status: res.statusCode, body: res.headers['content-type']?.toString().startsWith('application/json') ? res.json() : res.body, headers: res.headers };
};

let sectionSeq = 0;
async function newSection(grid = { rows: 3, plotsPerRow: 4 }) {
  const res = await call('POST', '/api/sections', { name: `Section ${++sectionSeq}`, grid });
  expect(res.status).toBe(201);
  const plots = await call('GET', `/api/plots?sectionId=${res.body.id}&limit=100`);
  return { section: res.body, plots: plots.body.items as Array<{ id: number; row: number; number: number; status: string }> };
}

const count = async (table: string) => Number((await pool.query(`SELECT count(*) FROM ${table}`)).rows[0].count);

describe('probes', () => {
  test('healthz, readyz and version answer', async () => {
    expect(await call('GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await call('GET', '/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
    const version = await call('GET', '/version');
    expect(version.body).toEqual({ release: 'test-release', build: 'test-build', pid: process.pid, node: process.version, uptimeSeconds: expect.any(Number) });
  });

  test("readyz is 503 until the release's own migrations are applied", async () => {
    const ahead = buildServer({ pool, release: { id: 'next', build: 'next' }, requiredMigrations: [...shippedMigrations(path.join(ROOT, 'app', 'migrations')), '1999999999999_not-yet'], logger: false });
    const res = await ahead.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ status: 'unavailable', reason: 'migrations not applied: 1999999999999_not-yet' });
    await ahead.close();
  });

  test('readyz is 503 while the database is unreachable, and while draining', async () => {
    const deadPool = createPool('postgres://nobody:x@127.0.0.1:1/none', 1, pino({ level: 'silent' }));
    const lifecycle = { draining: false };
    const dead = buildServer({ pool: deadPool, release: { id: 'x', build: 'x' }, logger: false, lifecycle });
    const res = await dead.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ status: 'unavailable', reason: 'database unreachable' });
    // API calls that need the database say so with 503, not 500.
    const list = await dead.inject({ method: 'GET', url: '/api/sections' });
    expect(list.statusCode).toBe(503);
    expect(list.json().message).toBe('database unavailable');
    lifecycle.draining = true;
    const draining = await dead.inject({ method: 'GET', url: '/healthz' });
    expect(draining.headers.connection).toBe('close');
    expect((await dead.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'draining' });
    await dead.close();
    await deadPool.end();
  });
});

describe('sections', () => {
  test('create with a grid makes every plot in one go', async () => {
    const res = await call('POST', '/api/sections', { name: 'Garden of Rest', description: 'by the chapel', grid: { rows: 2, plotsPerRow: 5 } });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/api/sections/${res.body.id}`);
    const got = await call('GET', `/api/sections/${res.body.id}`);
    expect(got.body).toMatchObject({ name: 'Garden of Rest', description: 'by the chapel', plots: { available: 10, reserved: 0, occupied: 0 } });
  });

  test('a duplicate name is 409 and writes nothing', async () => {
    await call('POST', '/api/sections', { name: 'Twin' });
    const [sections, plots] = [await count('sections'), await count('plots')];
    const res = await call('POST', '/api/sections', { name: 'Twin', grid: { rows: 3, plotsPerRow: 3 } });
    expect(res).toMatchObject({ status: 409, body: { message: 'a section named "Twin" already exists' } });
    expect([await count('sections'), await count('plots')]).toEqual([sections, plots]);
  });

  test.each([
    [{}, 'body/name is required'],
    [{ name: '' }, 'body/name must NOT have fewer than 1 characters'],
    [{ name: 'x', colour: 'red' }, 'body/colour is not allowed'],
    [{ name: 'x', grid: { rows: 0, plotsPerRow: 3 } }, 'body/grid/rows must be >= 1'],
    [{ name: 'x', grid: { rows: 2 } }, 'body/grid/plotsPerRow is required'],
    [{ name: 'x', grid: { rows: 2, plotsPerRow: 101 } }, 'body/grid/plotsPerRow must be <= 100'],
  ])('bad body %j is 400: %s', async (payload, message) => {
    const before = await count('sections');
    expect(await call('POST', '/api/sections', payload)).toMatchObject({ status: 400, body: { statusCode: 400, error: 'Bad Request', message } });
    expect(await count('sections')).toBe(before);
  });

  test('malformed JSON is 400', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/sections', headers: { 'content-type': 'application/json', ...auth() }, payload: '{"name":' });
    expect(res.statusCode).toBe(400);
  });

  test('unknown id is 404, a non-numeric id 400', async () => {
    expect(await call('GET', '/api/sections/999999')).toMatchObject({ status: 404, body: { message: 'section 999999 not found' } });
    expect(await call('GET', '/api/sections/abc')).toMatchObject({ status: 400, body: { message: 'params/id must be integer' } });
    expect(await call('GET', '/api/sections/0')).toMatchObject({ status: 400, body: { message: 'params/id must be >= 1' } });
  });

  test('list filters by name', async () => {
    await call('POST', '/api/sections', { name: 'Willow Lane' });
    const res = await call('GET', '/api/sections?name=willow');
    expect(res.body.items.map((s: { name: string }) => s.name)).toEqual(['Willow Lane']);
  });
});

describe('pagination', () => {
  let sectionId: number;
  beforeAll(async () => {
    sectionId = (await newSection({ rows: 3, plotsPerRow: 4 })).section.id;
  });

  test('pages cover the list in order with the total', async () => {
    const pages = [];
    for (const offset of [0, 5, 10]) pages.push((await call('GET', `/api/plots?sectionId=${sectionId}&limit=5&offset=${offset}`)).body);
    expect(pages.map((p) => p.items.length)).toEqual([5, 5, 2]);
    expect(pages.every((p) => p.total === 12)).toBe(true);
    const ids = pages.flatMap((p) => p.items.map((i: { id: number }) => i.id));
    expect(new Set(ids).size).toBe(12);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  test('an offset past the end is an empty page with the real total', async () => {
    expect((await call('GET', `/api/plots?sectionId=${sectionId}&offset=12`)).body).toEqual({ items: [], total: 12, totalExact: true, limit: 20, offset: 12 });
  });

  test('the default page size is 20, the largest 100', async () => {
    expect((await call('GET', '/api/plots')).body.limit).toBe(20);
    expect((await call('GET', '/api/plots?limit=100')).status).toBe(200);
  });

  test.each([
    ['limit=0', 'querystring/limit must be >= 1'],
    ['limit=101', 'querystring/limit must be <= 100'],
    ['offset=-1', 'querystring/offset must be >= 0'],
    ['limit=ten', 'querystring/limit must be integer'],
    ['status=buried', 'querystring/status must be one of available, reserved, occupied'],
    ['colour=red', 'querystring/colour is not allowed'],
  ])('%s is 400: %s', async (query, message) => {
    expect(await call('GET', `/api/plots?${query}`)).toMatchObject({ status: 400, body: { message } });
  });
});

describe('plots', () => {
  test('create, conflict on the same place, 404 for a missing section', async () => {
    const { section } = await newSection({ rows: 1, plotsPerRow: 1 });
    const created = await call('POST', '/api/plots', { sectionId: section.id, row: 2, number: 1 });
    expect(created).toMatchObject({ status: 201, body: { sectionId: section.id, row: 2, number: 1, status: 'available' } });
    expect(await call('POST', '/api/plots', { sectionId: section.id, row: 2, number: 1 })).toMatchObject({
      status: 409,
      body: { message: `section ${section.id} already has plot 1 in row 2` },
    });
    expect(await call('POST', '/api/plots', { sectionId: 999999, row: 1, number: 1 })).toMatchObject({ status: 404, body: { message: 'section 999999 not found' } });
  });

  test('status rules: reserve and release by hand; never occupy by hand; occupied is final', async () => {
    const { plots } = await newSection({ rows: 1, plotsPerRow: 2 });
    const [a, b] = plots;
    expect(await call('PUT', `/api/plots/${a.id}/status`, { status: 'reserved' })).toMatchObject({ status: 200, body: { status: 'reserved' } });
    expect(await call('PUT', `/api/plots/${a.id}/status`, { status: 'reserved' })).toMatchObject({ status: 200, body: { status: 'reserved' } });
    expect(await call('PUT', `/api/plots/${a.id}/status`, { status: 'available' })).toMatchObject({ status: 200, body: { status: 'available' } });
    const occupyByHand = await call('PUT', `/api/plots/${a.id}/status`, { status: 'occupied' });
    expect(occupyByHand.status).toBe(409);
    expect(occupyByHand.body.message).toMatch(/becomes occupied when a burial is recorded/);

    await call('POST', '/api/burials', { plotId: b.id, deceasedName: 'Jan Novak', deathDate: '2001-05-02' });
    expect(await call('PUT', `/api/plots/${b.id}/status`, { status: 'available' })).toMatchObject({
      status: 409,
      body: { message: `plot ${b.id} is occupied; its status cannot change` },
    });
    expect(await call('PUT', '/api/plots/999999/status', { status: 'reserved' })).toMatchObject({ status: 404 });
    expect(await call('PUT', `/api/plots/${a.id}/status`, { status: 'sold' })).toMatchObject({
      status: 400,
      body: { message: 'body/status must be one of available, reserved, occupied' },
    });
  });
});

describe('burials', () => {
  test('a burial occupies its plot; a second one there is 409 and writes nothing', async () => {
    const { plots } = await newSection({ rows: 1, plotsPerRow: 1 });
    const plotId = plots[0].id;
    const res = await call('POST', '/api/burials', { plotId, deceasedName: '  Ada Lovelace ', birthDate: '1815-12-10', deathDate: '1852-11-27' });
    expect(res).toMatchObject({ status: 201, body: { plotId, deceasedName: 'Ada Lovelace', birthDate: '1815-12-10', deathDate: '1852-11-27' } });
    expect(res.headers.location).toBe(`/api/burials/${res.body.id}`);
    expect((await call('GET', `/api/plots/${plotId}`)).body.status).toBe('occupied');
    expect((await call('GET', `/api/burials/${res.body.id}`)).body).toEqual(res.body);

    const before = await count('burials');
    expect(await call('POST', '/api/burials', { plotId, deceasedName: 'Someone Else', deathDate: '1900-01-01' })).toMatchObject({
      status: 409,
      body: { message: `plot ${plotId} is already occupied` },
    });
    expect(await count('burials')).toBe(before);
  });

  test('a reserved plot can take a burial', async () => {
    const { plots } = await newSection({ rows: 1, plotsPerRow: 1 });
    await call('PUT', `/api/plots/${plots[0].id}/status`, { status: 'reserved' });
    expect((await call('POST', '/api/burials', { plotId: plots[0].id, deceasedName: 'R. Reserved', deathDate: '1999-09-09' })).status).toBe(201);
  });

  test('two burials racing for one plot: one 201, one 409, one row', async () => {
    const { plots } = await newSection({ rows: 1, plotsPerRow: 1 });
    const plotId = plots[0].id;
    const results = await Promise.all(
      ['First', 'Second', 'Third'].map((name) => call('POST', '/api/burials', { plotId, deceasedName: name, deathDate: '2020-02-02' })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    expect((await call('GET', `/api/burials?plotId=${plotId}`)).body.total).toBe(1);
  });

  test.each([
    [{ deceasedName: 'x', deathDate: '2000-01-01' }, 'body/plotId is required'],
    [{ plotId: 1, deathDate: '2000-01-01' }, 'body/deceasedName is required'],
    [{ plotId: 1, deceasedName: '   ', deathDate: '2000-01-01' }, 'body/deceasedName must match pattern "\\S"'],
    [{ plotId: 1, deceasedName: 'x', deathDate: '01/02/2000' }, 'body/deathDate must match format "date"'],
    [{ plotId: 1, deceasedName: 'x', deathDate: '2000-02-30' }, 'body/deathDate must match format "date"'],
    [{ plotId: 1, deceasedName: 'x', deathDate: '2999-01-01' }, 'body/deathDate must not be in the future, got 2999-01-01'],
    [{ plotId: 1, deceasedName: 'x', birthDate: '2001-01-01', deathDate: '2000-01-01' }, 'body/birthDate (2001-01-01) must not be after body/deathDate (2000-01-01)'],
  ])('bad body %j is 400: %s', async (payload, message) => {
    const before = await count('burials');
    expect(await call('POST', '/api/burials', payload)).toMatchObject({ status: 400, body: { message } });
    expect(await count('burials')).toBe(before);
  });

  test('a missing plot is 404', async () => {
    expect(await call('POST', '/api/burials', { plotId: 999999, deceasedName: 'x', deathDate: '2000-01-01' })).toMatchObject({
      status: 404,
      body: { message: 'plot 999999 not found' },
    });
  });

  test('list filters by section and by a part of the name, case-insensitive', async () => {
    const { section, plots } = await newSection({ rows: 1, plotsPerRow: 2 });
    await call('POST', '/api/burials', { plotId: plots[0].id, deceasedName: 'Maria Sklodowska', deathDate: '1934-07-04' });
    await call('POST', '/api/burials', { plotId: plots[1].id, deceasedName: 'Pierre Curie', deathDate: '1906-04-19' });
    expect((await call('GET', `/api/burials?sectionId=${section.id}`)).body.total).toBe(2);
    const found = await call('GET', `/api/burials?sectionId=${section.id}&name=SKLOD`);
    expect(found.body.items.map((b: { deceasedName: string }) => b.deceasedName)).toEqual(['Maria Sklodowska']);
  });
});

describe('section map', () => {
  test('renders every plot coloured by status, highlights one, and follows changes at once', async () => {
    const { section, plots } = await newSection({ rows: 2, plotsPerRow: 3 });
    const first = await app.inject({ method: 'GET', url: `/api/sections/${section.id}/map.svg?highlight=${plots[1].id}` });
    expect(first.statusCode).toBe(200);
    expect(first.headers['content-type']).toBe('image/svg+xml; charset=utf-8');
    expect(first.body.match(/data-status="available"/g)).toHaveLength(6);
    expect(first.body.match(/<style>#plot-\d+>rect\{stroke:#d50000;stroke-width:3\}<\/style>/g)).toEqual([
      `<style>#plot-${plots[1].id}>rect{stroke:#d50000;stroke-width:3}</style>`,
    ]);
    expect(first.body).toContain(`<g id="plot-${plots[1].id}" data-status="available">\n<rect x="76" y="80" width="28" height="28" rx="3" fill="#8bc34a"/>`);

    await call('PUT', `/api/plots/${plots[0].id}/status`, { status: 'reserved' });
    await call('POST', '/api/burials', { plotId: plots[2].id, deceasedName: 'O\'Brien & <Sons>', birthDate: '1900-01-01', deathDate: '1980-06-30' });
    const second = (await app.inject({ method: 'GET', url: `/api/sections/${section.id}/map.svg` })).body;
    expect(second).toContain(`<g id="plot-${plots[0].id}" data-status="reserved">`);
    expect(second).toContain(`<g id="plot-${plots[2].id}" data-status="occupied">`);
    expect(second).toContain('<title>Row 1, plot 3: occupied, O&apos;Brien &amp; &lt;Sons&gt; (1900–1980)</title>');
    expect(second).toContain('>available (4)</text>');
  });

  test('is gzipped for clients that accept it', async () => {
    const { section } = await newSection({ rows: 2, plotsPerRow: 2 });
    const url = `/api/sections/${section.id}/map.svg`;
    const plain = await app.inject({ method: 'GET', url });
    const gzipped = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'br;q=1, gzip;q=0.8' } });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(gzipped.headers.vary).toBe('accept-encoding');
    expect(gunzipSync(gzipped.rawPayload).toString('utf8')).toBe(plain.body);
    // With a highlight: the cached compressed prefix and the request's own tail, one valid gzip stream.
    const highlighted = await app.inject({ method: 'GET', url: `${url}?highlight=3`, headers: { 'accept-encoding': 'gzip' } });
    const plainHighlighted = await app.inject({ method: 'GET', url: `${url}?highlight=3` });
    expect(gunzipSync(highlighted.rawPayload).toString('utf8')).toBe(plainHighlighted.body);
    expect(execFileSync('gzip', ['-dc'], { input: highlighted.rawPayload }).toString('utf8')).toBe(plainHighlighted.body);
  });

  test('unknown section 404, bad highlight 400', async () => {
    expect((await call('GET', '/api/sections/999999/map.svg')).status).toBe(404);
    expect(await call('GET', '/api/sections/1/map.svg?highlight=x')).toMatchObject({ status: 400, body: { message: 'querystring/highlight must be integer' } });
  });
});

describe('writes need a token', () => {
  const post = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/api/sections', payload: { name: `Token test ${Math.random()}` }, headers });

  test('without one: 401 saying what is missing, and nothing is written', async () => {
    const before = await count('sections');
    const res = await post({});
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="cemetery-backend"');
    expect(res.json()).toEqual({ statusCode: 401, error: 'Unauthorized', message: 'write requests need a token: Authorization: Bearer <token>' });
    expect((await app.inject({ method: 'PUT', url: '/api/plots/1/status', payload: { status: 'reserved' } })).statusCode).toBe(401);
    expect(await count('sections')).toBe(before);
  });

  test('an unknown, malformed or revoked token gets the same 401; a valid one writes', async () => {
    const { token: office } = await createToken(pool, 'office');
    expect((await post({ authorization: `Bearer ${office}` })).statusCode).toBe(201);
    await revokeToken(pool, { name: 'office' });
    const answers = await Promise.all(
      [`Bearer ${office}`, `Bearer cmt_${'A'.repeat(43)}`, 'Bearer not-a-token', `Basic ${Buffer.from('a:b').toString('base64')}`].map(async (h) => (await post({ authorization: h })).json()),
    );
    expect(answers.slice(0, 3)).toEqual(Array(3).fill({ statusCode: 401, error: 'Unauthorized', message: 'the bearer token is not accepted' }));
    expect(answers[3].message).toBe('write requests need a token: Authorization: Bearer <token>');
  });

  test('no token reaches the request log, accepted or refused', async () => {
    let logged = '';
    const logger = pino({ level: 'trace' }, { write: (line: string) => (logged += line) });
    const logging = buildServer({ pool, release: { id: 'x', build: 'x' }, logger });
    const wrong = `cmt_${'B'.repeat(43)}`;
    expect((await logging.inject({ method: 'POST', url: '/api/sections', payload: { name: `Logged ${Math.random()}` }, headers: auth() })).statusCode).toBe(201);
    expect((await logging.inject({ method: 'POST', url: '/api/sections', payload: { name: 'x' }, headers: { authorization: `Bearer ${wrong}` } })).statusCode).toBe(401);
    await logging.close();
    expect(logged).toContain('"statusCode":401');
    expect(logged).not.toContain(token.slice(4));
    expect(logged).not.toContain(wrong.slice(4));
  });

  test('only a hash is stored', async () => {
    const { token: t } = await createToken(pool, 'hash-check');
    const { rows } = await pool.query("SELECT encode(token_hash, 'hex') AS h FROM api_tokens WHERE name = 'hash-check'");
    expect(rows[0].h).toBe(createHash('sha256').update(t).digest('hex'));
    expect(JSON.stringify((await pool.query('SELECT * FROM api_tokens')).rows)).not.toContain(t.slice(4));
  });

  test('reads are public unless PUBLIC_READS=false; the probes always are', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/sections' })).statusCode).toBe(200);
    const closed = buildServer({ pool, release: { id: 'x', build: 'x' }, logger: false, limits: { publicReads: false } });
    expect((await closed.inject({ method: 'GET', url: '/api/sections' })).json()).toMatchObject({ statusCode: 401, message: 'requests need a token: Authorization: Bearer <token>' });
    expect((await closed.inject({ method: 'GET', url: '/api/sections', headers: auth() })).statusCode).toBe(200);
    for (const probe of ['/healthz', '/readyz', '/version']) expect((await closed.inject({ method: 'GET', url: probe })).statusCode).toBe(200);
    await closed.close();
  });
});

describe('abuse limits', () => {
  const server = (limits: Partial<Limits>, p: Pool = pool) => buildServer({ pool: p, release: { id: 'x', build: 'x' }, logger: false, limits });

  test('rate limit: 429 with Retry-After per client address; a spoofed left-most X-Forwarded-For does not dodge it; the host itself is not limited', async () => {
    const limited = server({ rateLimitPerMinute: 3 });
    // As the host's Caddy sends it: the client's address appended last; whatever the client sent before it.
    const from = (client: string, spoof = `10.9.${Math.floor(Math.random() * 250)}.1`) =>
      limited.inject({ method: 'GET', url: '/api/sections?limit=1', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': `${spoof}, ${client}` } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await from('203.0.113.5')).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await from('203.0.113.5');
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.json()).toMatchObject({ statusCode: 429, error: 'Too Many Requests', message: expect.stringMatching(/^over 3 requests per minute from this address; retry in \d+ s$/) });
    expect((await from('203.0.113.6')).statusCode).toBe(200);
    // A direct connection from an address that is not a trusted proxy: its X-Forwarded-For is ignored.
    const direct = (spoof: string) => limited.inject({ method: 'GET', url: '/api/sections?limit=1', remoteAddress: '198.51.100.9', headers: { 'x-forwarded-for': spoof } });
    const directStatuses = [];
    for (let i = 0; i < 4; i++) directStatuses.push((await direct(`192.0.2.${i}`)).statusCode);
    expect(directStatuses).toEqual([200, 200, 200, 429]);
    for (let i = 0; i < 5; i++) expect((await limited.inject({ method: 'GET', url: '/readyz', remoteAddress: '127.0.0.1' })).statusCode).toBe(200);
    await limited.close();
  });

  test('a statement over STATEMENT_TIMEOUT_MS: 503 with Retry-After, and the worker serves on', async () => {
    const slowPool = createPool(db.url, 2, pino({ level: 'silent' }), { statementTimeoutMs: 300 });
    const timed = server({}, slowPool);
    const { section } = await newSection({ rows: 1, plotsPerRow: 1 });
    // The test's own transaction holds the section row: the request's statement waits on it past the timeout.
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM sections WHERE id = $1 FOR UPDATE', [section.id]);
      // The lock is held until after the answer: only the statement timeout can end the wait (no time is measured).
      const res = await timed.inject({ method: 'POST', url: '/api/plots', payload: { sectionId: section.id, row: 2, number: 1 }, headers: auth() });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json().message).toBe('the database took too long (statement timeout); try again');
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect((await timed.inject({ method: 'POST', url: '/api/plots', payload: { sectionId: section.id, row: 2, number: 1 }, headers: auth() })).statusCode).toBe(201);
    await timed.close();
    await slowPool.end();
  });

  test("the database's disk full (SQLSTATE 53100, raised here by a trigger): 503 saying so, nothing written, reads served; writes again once it passes", async () => {
    // The VM tier fills a real filesystem under the table (test/e2e); this is the app's side of it.
    await pool.query(`CREATE FUNCTION e2e_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = 'disk_full'; END $$`);
    await pool.query('CREATE TRIGGER e2e_disk_full BEFORE INSERT ON sections FOR EACH ROW EXECUTE FUNCTION e2e_disk_full()');
    const before = await count('sections');
    try {
      const res = await app.inject({ method: 'POST', url: '/api/sections', payload: { name: 'On a full disk' }, headers: auth() });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('60');
      expect(res.json()).toMatchObject({ statusCode: 503, message: 'the database is out of disk space: nothing was written; reads still work' });
      expect(await count('sections')).toBe(before);
      expect((await app.inject({ method: 'GET', url: '/api/sections?limit=1' })).statusCode).toBe(200);
    } finally {
      await pool.query('DROP TRIGGER e2e_disk_full ON sections; DROP FUNCTION e2e_disk_full()');
    }
    expect((await app.inject({ method: 'POST', url: '/api/sections', payload: { name: 'On a freed disk' }, headers: auth() })).statusCode).toBe(201);
  });

  test('grid over MAX_GRID_PLOTS: 400 naming the cap; nothing is created', async () => {
    const before = await count('sections');
    const res = await call('POST', '/api/sections', { name: 'Too big', grid: { rows: 100, plotsPerRow: 100 } });
    expect(res).toMatchObject({ status: 400, body: { message: 'body/grid of 100 x 100 = 10000 plots is over 2500 (MAX_GRID_PLOTS), the most plots a section holds' } });
    expect(await count('sections')).toBe(before);
    expect((await call('POST', '/api/sections', { name: 'Just fits', grid: { rows: 50, plotsPerRow: 50 } })).status).toBe(201);
  });

  test('a section never holds more than MAX_GRID_PLOTS, however its plots arrive: 50 concurrent creations into a section of cap 10', async () => {
    const capped = server({ maxGridPlots: 10 });
    const created = await capped.inject({ method: 'POST', url: '/api/sections', payload: { name: 'Capped', grid: { rows: 1, plotsPerRow: 4 } }, headers: auth() });
    expect(created.statusCode).toBe(201);
    const sectionId = created.json().id;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => capped.inject({ method: 'POST', url: '/api/plots', payload: { sectionId, row: 2, number: i + 1 }, headers: auth() })),
    );
    const statuses = results.map((r) => r.statusCode);
    expect(statuses.filter((s) => s !== 201 && s !== 409 && s !== 503)).toEqual([]);
    const { rows } = await pool.query('SELECT count(*)::int AS n, (SELECT plot_count FROM sections WHERE id = $1) AS counted FROM plots WHERE section_id = $1', [sectionId]);
    // Exactly the cap: every creation the database let through, and no more.
    expect(rows[0]).toEqual({ n: 10, counted: 10 });
    expect(statuses.filter((s) => s === 201)).toHaveLength(6);
    const refusal = results.find((r) => r.statusCode === 409)!.json();
    expect(refusal.message).toMatch(new RegExp(`^section ${sectionId} would hold 11 plots, over its cap of 10 \\(MAX_GRID_PLOTS\\)$`));
    // A grid that would pass the cap in one go is refused by the database too, whoever asks.
    await expect(
      inTransaction(pool, async (client) => {
        await client.query("SELECT set_config('cemetery.max_section_plots', '12', true)");
        await client.query('INSERT INTO plots (section_id, "row", number) SELECT $1, 3, n FROM generate_series(1, 3) n', [sectionId]);
      }),
    ).rejects.toMatchObject({ code: '23514', constraint: 'section_plot_cap' });
    await capped.close();
  });

  test('the map of a section over the cap (filled under a higher one) is refused, not rendered', async () => {
    const { section } = await newSection({ rows: 2, plotsPerRow: 3 });
    const small = server({ maxGridPlots: 5 });
    const res = await small.inject({ method: 'GET', url: `/api/sections/${section.id}/map.svg` });
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toBe(`section ${section.id} has 6 plots; a map shows at most 5 (MAX_GRID_PLOTS)`);
    expect((await app.inject({ method: 'GET', url: `/api/sections/${section.id}/map.svg` })).statusCode).toBe(200);
    await small.close();
  });

  test('plot counts follow every change: creations, grids and deletions, in one statement or many', async () => {
    const { section } = await newSection({ rows: 2, plotsPerRow: 2 });
    const counted = async () => (await pool.query('SELECT plot_count FROM sections WHERE id = $1', [section.id])).rows[0].plot_count;
    expect(await counted()).toBe(4);
    expect((await call('POST', '/api/plots', { sectionId: section.id, row: 3, number: 1 })).status).toBe(201);
    expect(await counted()).toBe(5);
    await pool.query('DELETE FROM plots WHERE section_id = $1 AND "row" = 1', [section.id]);
    expect(await counted()).toBe(3);
  });

  test('offset over MAX_OFFSET: 400 naming the cap; totals are counted only that far', async () => {
    const capped = server({ maxOffset: 10 });
    expect((await capped.inject({ method: 'GET', url: '/api/plots?offset=11' })).json()).toMatchObject({
      statusCode: 400,
      message: 'querystring/offset must be at most 10 (MAX_OFFSET): narrow the list with its filters instead',
    });
    const page = (await capped.inject({ method: 'GET', url: '/api/plots?limit=5&offset=10' })).json();
    expect(await count('plots')).toBeGreaterThan(15);
    expect(page).toMatchObject({ total: 15, totalExact: false, limit: 5, offset: 10 });
    expect(page.items).toHaveLength(5);
    expect((await call('GET', '/api/plots?offset=10001')).status).toBe(400);
    await capped.close();
  });
});

describe('concurrent plot creation in one section', () => {
  test('50 at once: each 201 or 409, never a 500; the rows created are the 201s', async () => {
    const { section } = await newSection({ rows: 1, plotsPerRow: 1 });
    // Half of them ask for the same few places (409s), the rest for their own.
    const bodies = Array.from({ length: 50 }, (_, i) => ({ sectionId: section.id, row: 2 + (i % 2 ? i : i % 5), number: 1 }));
    const results = await Promise.all(bodies.map((payload) => app.inject({ method: 'POST', url: '/api/plots', payload, headers: auth() })));
    const statuses = results.map((r) => r.statusCode);
    expect(statuses.filter((s) => ![201, 409, 503].includes(s))).toEqual([]);
    const created = statuses.filter((s) => s === 201).length;
    expect(created).toBeGreaterThanOrEqual(25);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM plots WHERE section_id = $1', [section.id]);
    expect(rows[0].n).toBe(1 + created);
    for (const r of results.filter((r) => r.statusCode === 503)) expect(r.headers['retry-after']).toBe('1');
  });

  test('a deadlock in a transaction is retried once, then answered 503 with Retry-After', async () => {
    let runs = 0;
    const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    await expect(inTransaction(pool, async () => {
      runs++;
      if (runs === 1) throw deadlock;
      return 'second run';
    })).resolves.toBe('second run');
    runs = 0;
    await expect(inTransaction(pool, async () => {
      runs++;
      throw deadlock;
    })).rejects.toBe(deadlock);
    expect(runs).toBe(2);
  });
});
