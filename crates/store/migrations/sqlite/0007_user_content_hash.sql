-- A hash of each stored user's JSON (`rows::content_hash`), so a sync can
-- tell the unchanged users without reading their JSON back. NULL for rows
-- written before it existed: those are compared in full once and rewritten.
ALTER TABLE dir_users ADD COLUMN data_hash INTEGER;
