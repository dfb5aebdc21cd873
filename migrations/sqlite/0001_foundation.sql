-- parkhub foundation: principals and their tokens, parking lots, short-time tickets.
-- Instants are BIGINT unix microseconds, UTC.

CREATE TABLE parking_lots (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    zone_code   BIGINT  NOT NULL,
    time_zone   TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX parking_lots_zone_code ON parking_lots (zone_code);

CREATE TABLE principals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    role        TEXT    NOT NULL CHECK (role IN ('operator', 'provider', 'tenant', 'equipment', 'enforcement')),
    name        TEXT    NOT NULL,
    -- true: may act at every lot; false: only at the lots in principal_lots
    all_lots    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  BIGINT  NOT NULL,
    UNIQUE (role, name)
);

CREATE TABLE principal_lots (
    principal_id    BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    parking_lot_id  BIGINT NOT NULL REFERENCES parking_lots (id),
    PRIMARY KEY (principal_id, parking_lot_id)
);

CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    principal_id  BIGINT  NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    -- SHA-256 of the whole token, hex; the token itself is never stored
    hash          TEXT    NOT NULL UNIQUE,
    -- the first characters of the token, so people can tell their tokens apart
    hint          TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX tokens_principal ON tokens (principal_id);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id     BIGINT  NOT NULL REFERENCES principals (id),
    ticket_id       TEXT    NOT NULL,
    parking_lot_id  BIGINT  NOT NULL REFERENCES parking_lots (id),
    license_raw     TEXT    NOT NULL,
    license_norm    TEXT    NOT NULL,
    start_at        BIGINT  NOT NULL,
    end_at          BIGINT,
    cost_amount     BIGINT,
    cost_vat_rate   BIGINT,
    cost_currency   TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('active', 'canceled')),
    canceled_at     BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (provider_id, ticket_id)
);
CREATE INDEX tickets_plate_lot ON tickets (license_norm, parking_lot_id);
CREATE INDEX tickets_provider_updated ON tickets (provider_id, updated_at);
