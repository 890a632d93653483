-- Idempotency-Key: the first response to a POST or PATCH, replayed for a
-- repeat with the same key and request. A row is `pending` while the first
-- request runs, so a concurrent repeat is refused instead of run twice.
CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  BYTEA NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    status        BIGINT,
    body          BYTEA,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
