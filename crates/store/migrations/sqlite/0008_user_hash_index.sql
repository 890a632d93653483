-- A sync reads every stored user's (id, hash) before the vendor's pages
-- arrive, to skip building users whose record is unchanged. From the table
-- itself that read walks every stored JSON (half a KB a user); this index
-- holds just the pair. Stored hashes may now also be connectors'
-- fingerprints of the vendor's record (see `SyncCommit::upsert_users`).
CREATE INDEX dir_users_hashes ON dir_users (account_id, user_id, data_hash);
-- Cached reads filter on email by equality only, which `dir_users_by_email`
-- (email, account_id, user_id) serves as well; one index less for a sync's
-- writes to keep up.
DROP INDEX dir_users_email;
