import type { Pool } from '../db';
import { badRequest } from '../errors';
import type { Page } from '../schemas';

/**
 * One page of a filtered list: the rows and the total that matches, so a
 * client can tell the last page. `where` holds $n placeholders for `params`.
 * No page lies deeper than `maxOffset`, and the total is counted only that far
 * (`totalExact: false` then, and `total` is a lower bound): a deep page or a
 * count of everything costs a scan of everything.
 */
export async function listPage<T>(
  pool: Pool,
  q: { select: string; from: string; where: string[]; params: unknown[]; orderBy: string },
  page: Page,
  maxOffset: number,
): Promise<{ items: T[]; total: number; totalExact: boolean; limit: number; offset: number }> {
  if (page.offset > maxOffset) throw badRequest(`querystring/offset must be at most ${maxOffset} (MAX_OFFSET): narrow the list with its filters instead`);
  const where = q.where.length ? `WHERE ${q.where.join(' AND ')}` : '';
  const n = q.params.length;
  const countCap = maxOffset + page.limit;
  const [rows, count] = await Promise.all([
    pool.query(`SELECT ${q.select} FROM ${q.from} ${where} ORDER BY ${q.orderBy} LIMIT $${n + 1} OFFSET $${n + 2}`, [
      ...q.params,
      page.limit,
      page.offset,
    ]),
    pool.query(`SELECT count(*)::int AS total FROM (SELECT 1 FROM ${q.from} ${where} LIMIT $${n + 1}) capped`, [...q.params, countCap + 1]),
  ]);
  const counted = count.rows[0].total as number;
  return { items: rows.rows as T[], total: Math.min(counted, countCap), totalExact: counted <= countCap, limit: page.limit, offset: page.offset };
}

/** Builds the WHERE list and its params together, so placeholders always line up. */
export class Filters {
  readonly where: string[] = [];
  readonly params: unknown[] = [];
  add(sql: (placeholder: string) => string, value: unknown): this {
    if (value !== undefined) {
      this.params.push(value);
      this.where.push(sql(`$${this.params.length}`));
    }
    return this;
  }
}
