import type { FastifyPluginAsync } from 'fastify';
import type { Limits } from '../config';
import { capSectionPlots, inTransaction, type Pool } from '../db';
import { conflict, notFound } from '../errors';
import type { PlotStatus } from '../map';
import { errorResponse, idParams, pageOf, plot, plotStatus, type Page, listQuery } from '../schemas';
import { Filters, listPage } from './page';

const PLOT_COLUMNS = 'id, section_id AS "sectionId", "row", number, status, updated_at AS "updatedAt"';

/**
 * Which statuses a plot may be set to by hand. A plot becomes occupied only by
 * recording a burial (POST /api/burials), and an occupied plot stays occupied.
 */
const MANUAL_TRANSITIONS: Record<PlotStatus, readonly PlotStatus[]> = {
  available: ['available', 'reserved'],
  reserved: ['reserved', 'available'],
  occupied: [],
};

export function statusChangeRefusal(id: number, from: PlotStatus, to: PlotStatus): string | undefined {
  if (MANUAL_TRANSITIONS[from].includes(to)) return undefined;
  if (from === 'occupied') return `plot ${id} is occupied; its status cannot change`;
  return `plot ${id} cannot be set to ${to} by hand; a plot becomes occupied when a burial is recorded (POST /api/burials)`;
}

export const plotRoutes: FastifyPluginAsync<{ pool: Pool; limits: Limits }> = async (app, { pool, limits }) => {
  app.get<{ Querystring: Page & { sectionId?: number; status?: PlotStatus; row?: number } }>(
    '/api/plots',
    {
      schema: {
        querystring: listQuery({
          sectionId: { type: 'integer', minimum: 1 },
          status: plotStatus,
          row: { type: 'integer', minimum: 1 },
        }),
        response: { 200: pageOf(plot) },
      },
    },
    async (req) => {
      const { sectionId, status, row } = req.query;
      const filters = new Filters()
        .add((p) => `section_id = ${p}`, sectionId)
        .add((p) => `status = ${p}`, status)
        .add((p) => `"row" = ${p}`, row);
      return listPage(pool, { select: PLOT_COLUMNS, from: 'plots', ...filters, orderBy: 'section_id, "row", number' }, req.query, limits.maxOffset);
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/plots/:id',
    { schema: { params: idParams, response: { 200: plot, 404: errorResponse } } },
    async (req) => {
      const { rows } = await pool.query(`SELECT ${PLOT_COLUMNS} FROM plots WHERE id = $1`, [req.params.id]);
      if (rows.length === 0) throw notFound('plot', req.params.id);
      return rows[0];
    },
  );

  app.post<{ Body: { sectionId: number; row: number; number: number } }>(
    '/api/plots',
    {
      schema: {
        body: {
          type: 'object',
          required: ['sectionId', 'row', 'number'],
          additionalProperties: false,
          properties: {
            sectionId: { type: 'integer', minimum: 1 },
            row: { type: 'integer', minimum: 1, maximum: 1000 },
            number: { type: 'integer', minimum: 1, maximum: 1000 },
          },
        },
        response: { 201: plot },
      },
    },
    async (req, reply) => {
      const { sectionId, row, number } = req.body;
      const created = await inTransaction(pool, async (client) => {
        await capSectionPlots(client, limits.maxGridPlots);
        // FOR NO KEY UPDATE, not FOR SHARE: the insert's trigger updates this row (map_version), and two
        // transactions that both hold a share lock and both upgrade it deadlock. Plot creations in one
        // section now queue on the row instead.
        const section = await client.query('SELECT 1 FROM sections WHERE id = $1 FOR NO KEY UPDATE', [sectionId]);
        if (section.rowCount === 0) throw notFound('section', sectionId);
        const { rows } = await client.query(
          `INSERT INTO plots (section_id, "row", number) VALUES ($1, $2, $3)
           ON CONFLICT (section_id, "row", number) DO NOTHING RETURNING ${PLOT_COLUMNS}`,
          [sectionId, row, number],
        );
        if (rows.length === 0) throw conflict(`section ${sectionId} already has plot ${number} in row ${row}`);
        return rows[0];
      });
      return reply.status(201).header('location', `/api/plots/${created.id}`).send(created);
    },
  );

  app.put<{ Params: { id: number }; Body: { status: PlotStatus } }>(
    '/api/plots/:id/status',
    {
      schema: {
        params: idParams,
        body: { type: 'object', required: ['status'], additionalProperties: false, properties: { status: plotStatus } },
        response: { 200: plot, 404: errorResponse, 409: errorResponse },
      },
    },
    async (req) => {
      const { id } = req.params;
      const to = req.body.status;
      return inTransaction(pool, async (client) => {
        // FOR UPDATE: a burial recorded at the same moment waits, then sees the new status.
        const current = await client.query<{ status: PlotStatus }>('SELECT status FROM plots WHERE id = $1 FOR UPDATE', [id]);
        if (current.rowCount === 0) throw notFound('plot', id);
        const refusal = statusChangeRefusal(id, current.rows[0].status, to);
        if (refusal) throw conflict(refusal);
        const { rows } = await client.query(
          `UPDATE plots SET status = $2, updated_at = now() WHERE id = $1 AND status <> $2 RETURNING ${PLOT_COLUMNS}`,
          [id, to],
        );
        if (rows.length) return rows[0];
        return (await client.query(`SELECT ${PLOT_COLUMNS} FROM plots WHERE id = $1`, [id])).rows[0];
      });
    },
  );
};
