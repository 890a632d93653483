-- Every change Rollcall makes at a vendor and every credential or config
-- change. Never holds a secret.
CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    request_id   TEXT,
    before_json  TEXT,
    after_json   TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    detail       TEXT
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

-- Single-use links that let an end customer link their own account. Only a
-- hash of the token is kept.
CREATE TABLE link_tokens (
    token_sha256  BYTEA PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    tenant_ref    TEXT,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    account_id    TEXT
);

-- Accounts are listed per tenant in id order, optionally by tenant_ref.
CREATE INDEX integrated_accounts_tenant_ref ON integrated_accounts (tenant_id, tenant_ref, id);
-- Key rotation finds every credential sealed under a given key.
CREATE INDEX integrated_accounts_key ON integrated_accounts (credentials_key_id);
