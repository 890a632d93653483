-- Tenants own everything: API keys, linked accounts and all later data.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

-- API keys: `rk_<id>_<secret>`; only a SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;
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
    credentials_sealed  BLOB NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('active', 'needs_reauth', 'disabled')),
    status_detail       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX integrated_accounts_tenant ON integrated_accounts (tenant_id, id);
