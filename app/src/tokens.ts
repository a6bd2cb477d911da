/**
 * API tokens: `cmt_` and 32 random bytes (base64url), shown once when created.
 * The database keeps only their SHA-256, looked up by its unique index.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from './db';

export const TOKEN_PREFIX = 'cmt_';
const TOKEN_SHAPE = /^cmt_[A-Za-z0-9_-]{43}$/;
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const hashOf = (token: string) => createHash('sha256').update(token).digest();

export type TokenInfo = { id: number; name: string; createdAt: string; revokedAt: string | null };

/** Creates a token named `name` and returns it: the only time it is ever shown. */
export async function createToken(pool: Pool, name: string): Promise<{ id: number; token: string }> {
  if (!TOKEN_NAME.test(name)) throw new Error(`a token name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit; got "${name}"`);
  const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  try {
    const { rows } = await pool.query<{ id: number }>('INSERT INTO api_tokens (name, token_hash) VALUES ($1, $2) RETURNING id', [name, hashOf(token)]);
    return { id: rows[0].id, token };
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new Error(`an active token named "${name}" exists: revoke it first, or pick another name`);
    throw err;
  }
}

export async function listTokens(pool: Pool): Promise<TokenInfo[]> {
  const { rows } = await pool.query<TokenInfo>(
    `SELECT id, name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "createdAt",
            to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "revokedAt"
       FROM api_tokens ORDER BY id`,
  );
  return rows;
}

/** Revokes the active token with this name or id; returns it, or undefined if there is none. */
export async function revokeToken(pool: Pool, which: { name: string } | { id: number }): Promise<TokenInfo | undefined> {
  const [where, value] = 'name' in which ? ['name = $1', which.name] : ['id = $1', which.id];
  const { rows } = await pool.query<TokenInfo>(
    `UPDATE api_tokens SET revoked_at = now() WHERE ${where} AND revoked_at IS NULL
     RETURNING id, name, created_at::text AS "createdAt", revoked_at::text AS "revokedAt"`,
    [value],
  );
  return rows[0];
}

/** Whether a presented token is an active one. Malformed tokens never reach the database. */
export async function isActiveToken(pool: Pool, token: string): Promise<boolean> {
  if (!TOKEN_SHAPE.test(token)) return false;
  const { rows } = await pool.query('SELECT 1 FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL', [hashOf(token)]);
  return rows.length === 1;
}
