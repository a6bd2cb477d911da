import type { Pool } from '../db';
import type { Page } from '../schemas';

/**
 * One page of a filtered list: the rows and the total that matches, so a
 * client can tell the last page. `where` holds $n placeholders for `params`.
 */
export async function listPage<T>(
  pool: Pool,
  q: { select: string; from: string; where: string[]; params: unknown[]; orderBy: string },
  page: Page,
): Promise<{ items: T[]; total: number; limit: number; offset: number }> {
  const where = q.where.length ? `WHERE ${q.where.join(' AND ')}` : '';
  const n = q.params.length;
  const [rows, count] = await Promise.all([
    pool.query(`SELECT ${q.select} FROM ${q.from} ${where} ORDER BY ${q.orderBy} LIMIT $${n + 1} OFFSET $${n + 2}`, [
      ...q.params,
      page.limit,
      page.offset,
    ]),
    pool.query(`SELECT count(*)::int AS total FROM ${q.from} ${where}`, q.params),
  ]);
  return { items: rows.rows as T[], total: count.rows[0].total as number, limit: page.limit, offset: page.offset };
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
