import type { FastifyPluginAsync } from 'fastify';
import type { Limits } from '../config';
import { inTransaction, type Pool } from '../db';
import { badRequest, conflict, notFound } from '../errors';
import { burial, errorResponse, idParams, pageOf, type Page, listQuery } from '../schemas';
import { Filters, listPage } from './page';

const BURIAL_COLUMNS = `b.id, b.plot_id AS "plotId", p.section_id AS "sectionId", b.deceased_name AS "deceasedName",
  b.birth_date AS "birthDate", b.death_date AS "deathDate", b.created_at AS "createdAt"`;
const BURIALS_WITH_PLOT = 'burials b JOIN plots p ON p.id = b.plot_id';

type CreateBurial = { plotId: number; deceasedName: string; birthDate?: string; deathDate: string };

const today = () => new Date().toISOString().slice(0, 10);

export const burialRoutes: FastifyPluginAsync<{ pool: Pool; limits: Limits }> = async (app, { pool, limits }) => {
  app.get<{ Querystring: Page & { sectionId?: number; plotId?: number; name?: string } }>(
    '/api/burials',
    {
      schema: {
        querystring: listQuery({
          sectionId: { type: 'integer', minimum: 1 },
          plotId: { type: 'integer', minimum: 1 },
          name: { type: 'string', minLength: 1, maxLength: 200 },
        }),
        response: { 200: pageOf(burial) },
      },
    },
    async (req) => {
      const { sectionId, plotId, name } = req.query;
      const filters = new Filters()
        .add((p) => `p.section_id = ${p}`, sectionId)
        .add((p) => `b.plot_id = ${p}`, plotId)
        .add((p) => `lower(b.deceased_name) LIKE '%' || lower(${p}) || '%'`, name);
      return listPage(pool, { select: BURIAL_COLUMNS, from: BURIALS_WITH_PLOT, ...filters, orderBy: 'b.id' }, req.query, limits.maxOffset);
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/burials/:id',
    { schema: { params: idParams, response: { 200: burial, 404: errorResponse } } },
    async (req) => {
      const { rows } = await pool.query(`SELECT ${BURIAL_COLUMNS} FROM ${BURIALS_WITH_PLOT} WHERE b.id = $1`, [req.params.id]);
      if (rows.length === 0) throw notFound('burial', req.params.id);
      return rows[0];
    },
  );

  app.post<{ Body: CreateBurial }>(
    '/api/burials',
    {
      schema: {
        body: {
          type: 'object',
          required: ['plotId', 'deceasedName', 'deathDate'],
          additionalProperties: false,
          properties: {
            plotId: { type: 'integer', minimum: 1 },
            deceasedName: { type: 'string', minLength: 1, maxLength: 200, pattern: '\\S' },
            birthDate: { type: 'string', format: 'date' },
            deathDate: { type: 'string', format: 'date' },
          },
        },
        response: { 201: burial, 404: errorResponse, 409: errorResponse },
      },
    },
    async (req, reply) => {
      const { plotId, deceasedName, birthDate, deathDate } = req.body;
      if (deathDate > today()) throw badRequest(`body/deathDate must not be in the future, got ${deathDate}`);
      if (birthDate && birthDate > deathDate) throw badRequest(`body/birthDate (${birthDate}) must not be after body/deathDate (${deathDate})`);

      const created = await inTransaction(pool, async (client) => {
        // Lock the plot: two burials racing for one plot get 201 and 409, never two rows.
        const plot = await client.query<{ status: string }>('SELECT status FROM plots WHERE id = $1 FOR UPDATE', [plotId]);
        if (plot.rowCount === 0) throw notFound('plot', plotId);
        if (plot.rows[0].status === 'occupied') throw conflict(`plot ${plotId} is already occupied`);
        const inserted = await client.query<{ id: number }>(
          'INSERT INTO burials (plot_id, deceased_name, birth_date, death_date) VALUES ($1, $2, $3, $4) RETURNING id',
          [plotId, deceasedName.trim(), birthDate ?? null, deathDate],
        );
        await client.query(`UPDATE plots SET status = 'occupied', updated_at = now() WHERE id = $1`, [plotId]);
        const { rows } = await client.query(`SELECT ${BURIAL_COLUMNS} FROM ${BURIALS_WITH_PLOT} WHERE b.id = $1`, [inserted.rows[0].id]);
        return rows[0];
      });
      return reply.status(201).header('location', `/api/burials/${created.id}`).send(created);
    },
  );
};
