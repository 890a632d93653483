-- Sends to a vendor per credential (a hash of it) within the rate-limit
-- window, shared by every node so together they keep the vendor's limit.
CREATE TABLE vendor_sends (
    key      TEXT NOT NULL,
    sent_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX vendor_sends_key ON vendor_sends (key, sent_at);
