-- Barrier car parks: lots known to equipment as FacilityNo + CarparkNo, their rates,
-- frictionless identifiers, transactions (stays), and the events outbox with subscriptions.
-- Instants are BIGINT unix microseconds, UTC.

ALTER TABLE parking_lots ADD COLUMN facility_no BIGINT;
ALTER TABLE parking_lots ADD COLUMN carpark_no BIGINT;
ALTER TABLE parking_lots ADD COLUMN capacity BIGINT;
CREATE UNIQUE INDEX parking_lots_carpark ON parking_lots (facility_no, carpark_no);

CREATE TABLE rates (
    parking_lot_id    BIGINT  NOT NULL REFERENCES parking_lots (id),
    rate_no           BIGINT  NOT NULL,
    name              TEXT    NOT NULL,
    currency_code     TEXT    NOT NULL,
    free_minutes      BIGINT  NOT NULL,
    period_minutes    BIGINT  NOT NULL,
    price_per_period  BIGINT  NOT NULL,
    -- JSON array of {"from":"HH:MM","to":"HH:MM","pricePerPeriod":N}, local time
    bands             TEXT    NOT NULL,
    max_per_day       BIGINT,
    is_default        BOOLEAN NOT NULL,
    updated_at        BIGINT  NOT NULL,
    PRIMARY KEY (parking_lot_id, rate_no)
);

-- One row per identifier ever claimed: locking it serialises claims of that identifier.
CREATE TABLE identifier_keys (
    ticket_type  BIGINT NOT NULL,
    ticket_key   TEXT   NOT NULL,
    claims       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (ticket_type, ticket_key)
);

CREATE TABLE identifiers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id    BIGINT  NOT NULL REFERENCES principals (id),
    ticket_type    BIGINT  NOT NULL,
    -- as sent; ticket_key is the plate's normal form (type 4) or the barcode text (type 5)
    ticket_no      TEXT    NOT NULL,
    ticket_key     TEXT    NOT NULL,
    -- JSON array of lot ids, or NULL for every lot the provider may use
    valid_carparks TEXT,
    valid_from     BIGINT,
    valid_until    BIGINT,
    reference_no   TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    UNIQUE (provider_id, ticket_type, ticket_key)
);
CREATE INDEX identifiers_key ON identifiers (ticket_type, ticket_key);

CREATE TABLE transactions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    parking_lot_id    BIGINT  NOT NULL REFERENCES parking_lots (id),
    ticket_type       BIGINT  NOT NULL,
    ticket_no         TEXT    NOT NULL,
    ticket_key        TEXT    NOT NULL,
    provider_id       BIGINT,
    reference_no      TEXT    NOT NULL,
    entry_at          BIGINT  NOT NULL,
    entry_event_id    TEXT    NOT NULL,
    exit_at           BIGINT,
    exit_event_id     TEXT,
    rate_no           BIGINT,
    duration_minutes  BIGINT,
    amount_minor      BIGINT,
    currency_code     TEXT
);
-- at most one open stay per vehicle and car park
CREATE UNIQUE INDEX transactions_open ON transactions (parking_lot_id, ticket_type, ticket_key) WHERE exit_at IS NULL;
CREATE INDEX transactions_vehicle ON transactions (ticket_key, parking_lot_id, entry_at);

-- The outbox: events are written in the transaction that causes them, numbered in commit
-- order (the sequence row below is locked by every writer until it commits).
CREATE TABLE event_sequence (
    id    BIGINT PRIMARY KEY,
    last  BIGINT NOT NULL
);
INSERT INTO event_sequence (id, last) VALUES (1, 0);

CREATE TABLE events (
    seq          BIGINT  PRIMARY KEY,
    event_id     TEXT    NOT NULL UNIQUE,
    -- the provider whose identifier it concerns; NULL: only the operator sees it
    provider_id  BIGINT,
    payload      TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX events_provider ON events (provider_id, seq);

-- What was removed by retention: a resume point at or below this is gone.
CREATE TABLE event_retention (
    id            BIGINT PRIMARY KEY,
    pruned_through BIGINT NOT NULL
);
INSERT INTO event_retention (id, pruned_through) VALUES (1, 0);

CREATE TABLE subscriptions (
    principal_id  BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    name          TEXT   NOT NULL,
    -- the last event delivered (auto) or acknowledged (explicit)
    position      BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (principal_id, name)
);
