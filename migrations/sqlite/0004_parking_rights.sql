-- Parking rights: each lot's grace period, the log of every check, and the key used to
-- pseudonymise plates past their retention.

ALTER TABLE parking_lots ADD COLUMN grace_minutes BIGINT NOT NULL DEFAULT 5;

CREATE TABLE parking_right_checks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    principal_id    BIGINT  NOT NULL,
    -- normal form; '~' and a keyed hash once pseudonymised
    license_norm    TEXT    NOT NULL,
    parking_lot_id  BIGINT,
    zone_code       BIGINT,
    at              BIGINT  NOT NULL,
    allowed         BOOLEAN NOT NULL,
    grace           BOOLEAN NOT NULL,
    -- the kinds of right that applied, e.g. "ticket,permit"
    kinds           TEXT    NOT NULL,
    checked_at      BIGINT  NOT NULL
);
CREATE INDEX parking_right_checks_plate ON parking_right_checks (license_norm, checked_at);
CREATE INDEX parking_right_checks_lot ON parking_right_checks (parking_lot_id, checked_at);
CREATE INDEX parking_right_checks_time ON parking_right_checks (checked_at);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE INDEX tickets_end ON tickets (end_at);
CREATE INDEX transactions_exit ON transactions (exit_at);
