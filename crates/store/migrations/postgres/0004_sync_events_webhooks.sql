-- Background jobs: claimed atomically by one worker at a time, which holds
-- a lease it renews while it works; a job whose lease ran out (its worker
-- died) is claimed again.
CREATE TABLE jobs (
    id            TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    tenant_id     TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    account_id    TEXT REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    payload_json  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    run_at        BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX jobs_queued ON jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_until) WHERE status = 'running';
-- One sync per account at a time.
CREATE UNIQUE INDEX jobs_one_sync_per_account ON jobs (account_id)
    WHERE kind = 'sync' AND status IN ('queued', 'running');

-- What a sync did, as `GET /sync-runs/{id}` shows it.
CREATE TABLE sync_runs (
    id             TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id     TEXT NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    trigger        TEXT NOT NULL CHECK (trigger IN ('api', 'schedule')),
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    phase          TEXT,
    progress_json  TEXT,
    counts_json    TEXT,
    error          TEXT,
    attempts       BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT
);
CREATE INDEX sync_runs_account ON sync_runs (account_id, created_at);

-- Per account: when it was last synced, when every user was last read in
-- full (connectors that skip unchanged users re-read them now and then), and
-- when the scheduler syncs it next.
CREATE TABLE account_sync_state (
    account_id         TEXT PRIMARY KEY NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    last_run_id        TEXT,
    last_success_at    BIGINT,
    last_full_read_at  BIGINT,
    next_sync_at       BIGINT NOT NULL
);
CREATE INDEX account_sync_state_due ON account_sync_state (next_sync_at);

-- The last good snapshot of each account's directory. A sync replaces it
-- in one transaction together with the events its changes produce.
CREATE TABLE dir_users (
    account_id  TEXT NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    email       TEXT,
    status      TEXT NOT NULL,
    is_admin    BIGINT NOT NULL,
    data_json   TEXT NOT NULL,
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX dir_users_email ON dir_users (account_id, email, user_id);
-- Cached reads page in user-id order within each filter (keyset, no offsets).
CREATE INDEX dir_users_status ON dir_users (account_id, status, user_id);
CREATE INDEX dir_users_status_admin ON dir_users (account_id, status, is_admin, user_id);

CREATE TABLE dir_groups (
    account_id  TEXT NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    group_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    data_json   TEXT NOT NULL,
    PRIMARY KEY (account_id, group_id)
);

CREATE TABLE dir_memberships (
    account_id  TEXT NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    group_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (account_id, group_id, user_id)
);
CREATE INDEX dir_memberships_user ON dir_memberships (account_id, user_id, group_id);

CREATE TABLE dir_roles (
    account_id  TEXT NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    role_id     TEXT NOT NULL,
    data_json   TEXT NOT NULL,
    PRIMARY KEY (account_id, role_id)
);

-- Change events, in the order they were committed (`seq`). Kept when the
-- account is unlinked: they are history.
CREATE TABLE events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id   TEXT,
    type         TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    data_json    TEXT NOT NULL
);
CREATE INDEX events_tenant ON events (tenant_id, seq);

-- Webhook subscriptions. The signing secret is sealed like a credential.
-- `last_event_seq` is how far deliveries have been queued for it.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events_json     TEXT NOT NULL,
    secret_key_id   TEXT NOT NULL,
    secret_sealed   BYTEA NOT NULL,
    last_event_seq  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_seq        BIGINT NOT NULL,
    event_id         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'dead')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
