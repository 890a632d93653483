-- Governance: time-bound access grants and plan/apply.

-- Bumped by every sync that changes an account's snapshot, so a plan
-- computed from one snapshot can tell it is stale.
ALTER TABLE account_sync_state ADD COLUMN snapshot_version BIGINT NOT NULL DEFAULT 0;
-- Whether the last snapshot carries activity (last-active times) at all:
-- where it does not, no user can be called inactive.
ALTER TABLE account_sync_state ADD COLUMN activity_exposed BIGINT NOT NULL DEFAULT 0;

-- A group membership granted until `expires_at`. `preexisting`: the
-- membership was there before the grant (or is held by an earlier grant
-- that found it there), so ending the grant leaves it in place.
CREATE TABLE access_grants (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id    TEXT NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    reason        TEXT,
    status        TEXT NOT NULL CHECK (status IN ('active', 'expiring', 'expired', 'revoked')),
    preexisting   BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    last_error    TEXT,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX access_grants_tenant ON access_grants (tenant_id, id);
CREATE INDEX access_grants_membership ON access_grants (account_id, group_id, user_id)
    WHERE status IN ('active', 'expiring');

-- A computed set of changes to one account, and what applying it did.
CREATE TABLE plans (
    id                TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id        TEXT NOT NULL REFERENCES integrated_accounts(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL CHECK (kind IN ('group_sync', 'deprovision_inactive')),
    request_json      TEXT NOT NULL,
    changes_json      TEXT NOT NULL,
    snapshot_version  BIGINT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('planned', 'applying', 'applied', 'failed')),
    results_json      TEXT,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    applied_at        BIGINT
);
CREATE INDEX plans_tenant ON plans (tenant_id, id);

-- The people report walks all of a tenant's users in email order (emails
-- are stored lower-cased).
CREATE INDEX dir_users_by_email ON dir_users (email, account_id, user_id)
    WHERE email IS NOT NULL;
