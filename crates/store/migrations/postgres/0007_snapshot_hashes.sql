-- Hashes that let a sync tell what is unchanged without reading the
-- stored snapshot back: one per stored user's JSON
-- (`CachedUserRow::content_hash`), and one of the account's whole
-- membership list (`sync::memberships_hash`). NULL where written before
-- they existed: those are compared in full once and stored again.
ALTER TABLE dir_users ADD COLUMN data_hash BIGINT;
ALTER TABLE account_sync_state ADD COLUMN memberships_hash BIGINT;
