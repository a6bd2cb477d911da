/** JSON schemas shared by the routes: validation happens at the edge, before any SQL. */

export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1, maximum: 2147483647 } },
} as const;

export const MAX_PAGE_SIZE = 100;

export const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 20 },
  offset: { type: 'integer', minimum: 0, maximum: 1000000, default: 0 },
} as const;

export type Page = { limit: number; offset: number };

/** The query of a list endpoint: paging plus its filters; anything else is a 400 naming it. */
export const listQuery = (filters: Record<string, object>) =>
  ({ type: 'object', additionalProperties: false, properties: { ...pageQuery, ...filters } }) as const;

export const pageOf = (itemSchema: object) =>
  ({
    type: 'object',
    required: ['items', 'total', 'limit', 'offset'],
    properties: {
      items: { type: 'array', items: itemSchema },
      total: { type: 'integer' },
      totalExact: { type: 'boolean' },
      limit: { type: 'integer' },
      offset: { type: 'integer' },
    },
  }) as const;

export const errorResponse = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, error: { type: 'string' }, message: { type: 'string' } },
} as const;

export const plotStatus = { type: 'string', enum: ['available', 'reserved', 'occupied'] } as const;

export const section = {
  type: 'object',
  required: ['id', 'name'],
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    description: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
  },
} as const;

export const plot = {
  type: 'object',
  required: ['id', 'sectionId', 'row', 'number', 'status'],
  properties: {
    id: { type: 'integer' },
    sectionId: { type: 'integer' },
    row: { type: 'integer' },
    number: { type: 'integer' },
    status: plotStatus,
    updatedAt: { type: 'string' },
  },
} as const;

export const burial = {
  type: 'object',
  required: ['id', 'plotId', 'deceasedName', 'deathDate'],
  properties: {
    id: { type: 'integer' },
    plotId: { type: 'integer' },
    sectionId: { type: 'integer' },
    deceasedName: { type: 'string' },
    birthDate: { type: ['string', 'null'] },
    deathDate: { type: 'string' },
    createdAt: { type: 'string' },
  },
} as const;
