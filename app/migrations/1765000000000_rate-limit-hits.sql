-- Up Migration
-- The rate limit's counts, shared by every worker of every host
-- (app/src/rate-limit-store.ts): one row per client address, its window's
-- start and its requests in that window. UNLOGGED: a count that matters for a
-- minute needs no WAL, and a crash that empties the table only forgives a minute.
CREATE UNLOGGED TABLE rate_limit_hits (
  key           text PRIMARY KEY,
  window_start  timestamptz NOT NULL,
  hits          integer NOT NULL
);

-- Down Migration
DROP TABLE rate_limit_hits;
