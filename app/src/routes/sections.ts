import { negotiate } from '@fastify/accept-negotiator';
import type { FastifyPluginAsync } from 'fastify';
import type { Limits } from '../config';
import { capSectionPlots, inTransaction, type Pool } from '../db';
import { badRequest, conflict, notFound } from '../errors';
import { assembleMap, assembleMapGzip, renderMapTemplate, type MapPlot, type MapTemplate } from '../map';
import { errorResponse, idParams, pageOf, section, type Page, listQuery } from '../schemas';
import { Filters, listPage } from './page';

const SECTION_COLUMNS = 'id, name, description, created_at AS "createdAt"';

type CreateSection = { name: string; description?: string; grid?: { rows: number; plotsPerRow: number } };

/**
 * Per-worker cache of each section's rendered map template, keyed by the
 * section's map_version (bumped by database triggers on any plot or burial
 * change): a request costs one primary-key lookup, and a change shows on the
 * next request.
 */
class MapTemplateCache {
  private readonly entries = new Map<number, { version: string; template: MapTemplate }>();
  /** `maxPlots`: the largest map a worker renders (MAX_GRID_PLOTS), so one map's memory is bounded. */
  constructor(private readonly maxPlots: number, private readonly maxSections = 64) {}

  async get(pool: Pool, sectionId: number) {
    const head = await pool.query<{ name: string; version: string; plots: number }>(
      'SELECT name, map_version::text AS version, plot_count AS plots FROM sections WHERE id = $1',
      [sectionId],
    );
    if (head.rowCount === 0) return undefined;
    const { name, version, plots: count } = head.rows[0];
    // The database caps new plots; a section filled under a higher cap is refused here, not rendered.
    if (count > this.maxPlots) throw conflict(`section ${sectionId} has ${count} plots; a map shows at most ${this.maxPlots} (MAX_GRID_PLOTS)`);
    const cached = this.entries.get(sectionId);
    if (cached && cached.version === version) return cached;
    const plots = await pool.query<MapPlot>(
      `SELECT p.id, p.row, p.number, p.status, b.deceased_name AS "deceasedName",
              b.birth_date AS "birthDate", b.death_date AS "deathDate"
         FROM plots p LEFT JOIN burials b ON b.plot_id = p.id
        WHERE p.section_id = $1 ORDER BY p.row, p.number`,
      [sectionId],
    );
    const entry = { version, template: renderMapTemplate({ id: sectionId, name, plots: plots.rows }) };
    this.entries.delete(sectionId);
    this.entries.set(sectionId, entry);
    if (this.entries.size > this.maxSections) this.entries.delete(this.entries.keys().next().value!);
    return entry;
  }
}

export const sectionRoutes: FastifyPluginAsync<{ pool: Pool; limits: Limits }> = async (app, { pool, limits }) => {
  const mapCache = new MapTemplateCache(limits.maxGridPlots);

  app.get<{ Querystring: Page & { name?: string } }>(
    '/api/sections',
    {
      schema: {
        querystring: listQuery({ name: { type: 'string', minLength: 1, maxLength: 100 } }),
        response: { 200: pageOf(section) },
      },
    },
    async (req) => {
      const filters = new Filters().add((p) => `name ILIKE '%' || ${p} || '%'`, req.query.name);
      return listPage(pool, { select: SECTION_COLUMNS, from: 'sections', ...filters, orderBy: 'id' }, req.query, limits.maxOffset);
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/sections/:id',
    {
      schema: {
        params: idParams,
        response: {
          200: {
            ...section,
            properties: {
              ...section.properties,
              plots: {
                type: 'object',
                properties: { available: { type: 'integer' }, reserved: { type: 'integer' }, occupied: { type: 'integer' } },
              },
            },
          },
          404: errorResponse,
        },
      },
    },
    async (req) => {
      const { rows } = await pool.query(
        `SELECT s.id, s.name, s.description, s.created_at AS "createdAt",
                json_build_object(
                  'available', count(*) FILTER (WHERE p.status = 'available'),
                  'reserved',  count(*) FILTER (WHERE p.status = 'reserved'),
                  'occupied',  count(*) FILTER (WHERE p.status = 'occupied')) AS plots
           FROM sections s LEFT JOIN plots p ON p.section_id = s.id
          WHERE s.id = $1 GROUP BY s.id`,
        [req.params.id],
      );
      if (rows.length === 0) throw notFound('section', req.params.id);
      return rows[0];
    },
  );

  app.post<{ Body: CreateSection }>(
    '/api/sections',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 100 },
            description: { type: 'string', maxLength: 2000 },
            grid: {
              type: 'object',
              required: ['rows', 'plotsPerRow'],
              additionalProperties: false,
              properties: {
                rows: { type: 'integer', minimum: 1, maximum: 100 },
                plotsPerRow: { type: 'integer', minimum: 1, maximum: 100 },
              },
            },
          },
        },
        response: { 201: section },
      },
    },
    async (req, reply) => {
      const { name, description, grid } = req.body;
      if (grid && grid.rows * grid.plotsPerRow > limits.maxGridPlots) {
        throw badRequest(`body/grid of ${grid.rows} x ${grid.plotsPerRow} = ${grid.rows * grid.plotsPerRow} plots is over ${limits.maxGridPlots} (MAX_GRID_PLOTS), the most plots a section holds`);
      }
      // The section and its grid of plots land together or not at all.
      const created = await inTransaction(pool, async (client) => {
        await capSectionPlots(client, limits.maxGridPlots);
        const { rows } = await client.query(
          `INSERT INTO sections (name, description) VALUES ($1, $2)
           ON CONFLICT (name) DO NOTHING RETURNING ${SECTION_COLUMNS}`,
          [name, description ?? null],
        );
        if (rows.length === 0) throw conflict(`a section named "${name}" already exists`);
        if (grid) {
          await client.query(
            `INSERT INTO plots (section_id, "row", number)
             SELECT $1, r, n FROM generate_series(1, $2::int) r, generate_series(1, $3::int) n`,
            [rows[0].id, grid.rows, grid.plotsPerRow],
          );
        }
        return rows[0];
      });
      return reply.status(201).header('location', `/api/sections/${created.id}`).send(created);
    },
  );

  app.get<{ Params: { id: number }; Querystring: { highlight?: number } }>(
    '/api/sections/:id/map.svg',
    {
      schema: {
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { highlight: { type: 'integer', minimum: 1 } },
        },
      },
    },
    async (req, reply) => {
      const cached = await mapCache.get(pool, req.params.id);
      if (!cached) throw notFound('section', req.params.id);
      reply.type('image/svg+xml; charset=utf-8').header('vary', 'accept-encoding');
      // A 1,000-plot map is ~200 KB of SVG, ~20 KB gzipped; a 10,000-plot one ~2 MB. The
      // cached template holds the document gzipped up to its per-request tail, so a
      // request compresses only that tail (map.ts). Not brotli: its multi-megabyte
      // window made workers slow each other down (bench:cluster).
      if (negotiate(req.headers['accept-encoding'] ?? '', ['gzip', 'identity']) === 'gzip') {
        return reply.header('content-encoding', 'gzip').send(assembleMapGzip(cached.template, req.query.highlight));
      }
      return reply.send(assembleMap(cached.template, req.query.highlight));
    },
  );
};
