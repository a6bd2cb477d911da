-- Up Migration
-- Bearer tokens for writes. Only a SHA-256 of each token is kept: a copy of the
-- database gives no usable token. A revoked token stays listed, with when.
CREATE TABLE api_tokens (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  token_hash  bytea NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
-- One active token per name, so `token revoke --name` means one token.
CREATE UNIQUE INDEX api_tokens_active_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;

-- Down Migration
DROP TABLE api_tokens;
