export { freePort } from './ports.cjs';

export type EmbeddedPostgresServer = {
  port: number;
  /** A URL for `database` on this cluster, as its superuser. */
  urlFor(database: string): string;
  /** Creates `name` if it is missing; returns its URL. */
  ensureDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
};

export function startEmbeddedPostgres(options: { stateDir: string; port: number; persistent?: boolean; log?: (message: unknown) => void }): Promise<EmbeddedPostgresServer>;
