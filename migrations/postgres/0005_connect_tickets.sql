-- Short-lived, single-use tickets for opening a TransactionMonitor socket from a browser,
-- which cannot set an Authorization header on a WebSocket. Only the hash is stored.
CREATE TABLE connect_tickets (
    hash          TEXT    PRIMARY KEY,
    principal_id  BIGINT  NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    expires_at    BIGINT  NOT NULL,
    used_at       BIGINT
);
CREATE INDEX connect_tickets_expires ON connect_tickets (expires_at);
