-- Tenants own everything: API keys, linked accounts and all later data.
-- Same versions and file names as migrations/sqlite; times are BIGINT
-- epoch milliseconds, binary values BYTEA.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- API keys: `rk_<id>_<secret>`; only a SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    secret_sha256 BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Linked Mode and Metabase accounts. Credentials are an AEAD ciphertext
-- tagged with the id of the master key that sealed it.
CREATE TABLE integrated_accounts (
    id                  TEXT PRIMARY KEY NOT NULL,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider            TEXT NOT NULL CHECK (provider IN ('mode', 'metabase')),
    label               TEXT NOT NULL,
    tenant_ref          TEXT,
    config_json         TEXT NOT NULL,
    credentials_key_id  TEXT NOT NULL,
    credentials_sealed  BYTEA NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('active', 'needs_reauth', 'disabled')),
    status_detail       TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX integrated_accounts_tenant ON integrated_accounts (tenant_id, id);
