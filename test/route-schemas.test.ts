/**
 * The app starts without checking its route schemas against JSON Schema's meta-schema
 * (server.ts, validateSchema: false: compiling the meta-schema was 2 s of a worker's boot on
 * the emulated VM). This is where they are checked instead, every route the server registers.
 */
import Ajv from 'ajv';
import Fastify from 'fastify';
import pino from 'pino';
import { createPool } from '../app/src/db';
import { buildServer, registeredRoutes, VALIDATOR_OPTIONS } from '../app/src/server';

// Fastify's default validator compiler is Ajv 8 with draft-07, the same meta-schema.
const metaSchema = new Ajv();
const PARTS = ['body', 'querystring', 'params', 'headers'] as const;

/** Every schema of every route, named by where it is, with the meta-schema's complaint ('' when valid). */
function checkRoutes(routes: ReturnType<typeof registeredRoutes>) {
  const checked: Record<string, string> = {};
  for (const { method, url, schema } of routes) {
    const parts: [string, unknown][] = PARTS.map((p) => [p, schema?.[p]]);
    for (const [status, s] of Object.entries((schema?.response ?? {}) as Record<string, unknown>)) parts.push([`response ${status}`, s]);
    for (const [part, s] of parts) {
      if (s === undefined) continue;
      checked[`${method} ${url} ${part}`] = metaSchema.validateSchema(s as object) ? '' : metaSchema.errorsText(metaSchema.errors);
    }
  }
  return checked;
}

test("every route's schemas are valid JSON Schema (draft-07)", async () => {
  const pool = createPool('postgres://nobody:x@127.0.0.1:1/none', 1, pino({ level: 'silent' }));
  const app = buildServer({ pool, release: { id: 'x', build: 'x' }, logger: false });
  await app.ready();
  try {
    const checked = checkRoutes(registeredRoutes(app));
    // The writes have bodies and the reads have params: a check that found nothing would pass vacuously.
    expect(Object.keys(checked).filter((k) => k.startsWith('POST ') && k.endsWith(' body')).length).toBeGreaterThan(0);
    expect(Object.keys(checked).filter((k) => / params$/.test(k)).length).toBeGreaterThan(0);
    expect(Object.entries(checked).filter(([, problem]) => problem)).toEqual([]);
  } finally {
    await app.close();
    await pool.end();
  }
});

test('a schema the meta-schema refuses starts with the server\'s options, and this check names it', async () => {
  const app = Fastify({ ajv: { customOptions: VALIDATOR_OPTIONS } });
  const routes: ReturnType<typeof registeredRoutes> = [];
  app.addHook('onRoute', (r) => {
    routes.push({ method: String(r.method), url: r.url, schema: r.schema });
  });
  app.post('/bad', { schema: { body: { type: 'object', properties: { name: { type: 'string', maxLength: -1 } } } } }, async () => ({}));
  await app.ready();
  await app.close();
  expect(checkRoutes(routes)).toEqual({ 'POST /bad body': 'data/properties/name/maxLength must be >= 0' });
});
