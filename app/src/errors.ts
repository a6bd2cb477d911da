import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/** An error whose message is safe to show to the client, with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** After a 503 for load (a timeout, a conflict that persisted): when a client may try again. */
const RETRY_AFTER = { 'retry-after': '1' };

export const notFound = (what: string, id: number) => new HttpError(404, `${what} ${id} not found`);
export const conflict = (message: string) => new HttpError(409, message);
export const badRequest = (message: string) => new HttpError(400, message);

type AjvError = { instancePath: string; keyword: string; message?: string; params: Record<string, unknown> };

/**
 * Names the offending field in every validation message, e.g.
 * "body/extra is not allowed" instead of Ajv's "body must NOT have additional properties".
 */
export function schemaErrorFormatter(errors: AjvError[], dataVar: string): Error {
  const e = errors[0];
  const field = `${dataVar}${e.instancePath}`;
  if (e.keyword === 'additionalProperties') return new Error(`${field}/${String(e.params.additionalProperty)} is not allowed`);
  if (e.keyword === 'required') return new Error(`${field}/${String(e.params.missingProperty)} is required`);
  if (e.keyword === 'enum') return new Error(`${field} must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`);
  return new Error(`${field} ${e.message ?? 'is invalid'}`);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

type PgError = Error & { code?: string; constraint?: string; detail?: string };

/** node-postgres raises these while it cannot reach the server at all. */
function isConnectionFailure(err: PgError): boolean {
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EAI_AGAIN', '57P01', '57P03'].includes(err.code ?? '') ||
    (err.code?.startsWith('08') ?? false) ||
    /timeout exceeded when trying to connect|Connection terminated/.test(err.message)
  );
}

/** Serialization failures and deadlocks: the transaction may succeed if run again (db.ts inTransaction does, once). */
export const isRetryable = (err: unknown) => ['40001', '40P01'].includes((err as PgError).code ?? '');

function classify(err: FastifyError & PgError): { status: number; message: string; headers?: Record<string, string> } {
  if (err.validation) return { status: 400, message: err.message };
  if (err instanceof HttpError) return { status: err.statusCode, message: err.message, headers: err.headers };
  if (err.code === '57014') return { status: 503, message: 'the database took too long (statement timeout); try again', headers: RETRY_AFTER };
  // PostgreSQL could not extend a file (SQLSTATE 53100): the write is rolled back, reads go on, and writes work again once space is freed.
  if (err.code === '53100') return { status: 503, message: 'the database is out of disk space: nothing was written; reads still work', headers: { 'retry-after': '60' } };
  if (isRetryable(err)) return { status: 503, message: 'concurrent changes conflicted; try again', headers: RETRY_AFTER };
  // The database's own cap check (migration 1764900000000) says which section, how many and the cap.
  if (err.code === '23514' && err.constraint === 'section_plot_cap') return { status: 409, message: err.message };
  switch (err.code) {
    case '23505':
      return { status: 409, message: `already exists (${err.constraint ?? 'unique constraint'})` };
    case '23503':
      return { status: 409, message: `still referenced (${err.constraint ?? 'foreign key'})` };
    case '23514':
      return { status: 400, message: `violates ${err.constraint ?? 'a check constraint'}` };
  }
  if (isConnectionFailure(err)) return { status: 503, message: 'database unavailable' };
  // Fastify's own client errors (bad JSON, wrong content type, body too large).
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return { status: err.statusCode, message: err.message };
  return { status: 500, message: 'internal error' };
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const { status, message, headers } = classify(err as FastifyError & PgError);
  if (status === 500) request.log.error({ err }, 'request failed');
  else if (status >= 500) request.log.warn({ err: err.message, code: (err as PgError).code }, 'request refused');
  if (headers) reply.headers(headers);
  return reply.status(status).send({ statusCode: status, error: STATUS_TEXT[status] ?? 'Error', message });
}
