-- Permits: definitions (what a permit allows), allocations (a tenant's quota of one),
-- end users with their vehicles, and the permits tenants give them.
-- Dates are local dates (YYYY-MM-DD) in the definition's time zone; instants are BIGINT unix
-- microseconds, UTC.

CREATE TABLE permit_definitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    time_zone   TEXT    NOT NULL,
    -- JSON array of windows {"days":[...],"from":"HH:MM","to":"HH:MM"}; [] = all day, every day
    schedule    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE permit_definition_lots (
    definition_id   BIGINT NOT NULL REFERENCES permit_definitions (id) ON DELETE CASCADE,
    parking_lot_id  BIGINT NOT NULL REFERENCES parking_lots (id),
    PRIMARY KEY (definition_id, parking_lot_id)
);
CREATE INDEX permit_definition_lots_lot ON permit_definition_lots (parking_lot_id);

CREATE TABLE permit_allocations (
    id                    TEXT    PRIMARY KEY,
    tenant_id             BIGINT  NOT NULL REFERENCES principals (id),
    definition_id         BIGINT  NOT NULL REFERENCES permit_definitions (id),
    parking_spaces_count  BIGINT  NOT NULL,
    permit_count          BIGINT  NOT NULL,
    valid_from            TEXT    NOT NULL,
    valid_to              TEXT    NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);
CREATE INDEX permit_allocations_tenant ON permit_allocations (tenant_id);

CREATE TABLE end_users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- lower case: e-mail addresses are compared case-insensitively
    email       TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE end_user_vehicles (
    end_user_id   BIGINT NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    license_norm  TEXT   NOT NULL,
    license_raw   TEXT   NOT NULL,
    added_at      BIGINT NOT NULL,
    PRIMARY KEY (end_user_id, license_norm)
);
CREATE INDEX end_user_vehicles_plate ON end_user_vehicles (license_norm);

CREATE TABLE permits (
    id             TEXT    PRIMARY KEY,
    allocation_id  TEXT    NOT NULL REFERENCES permit_allocations (id),
    -- lower case; the end user need not have a profile yet
    email          TEXT    NOT NULL,
    valid_from     TEXT    NOT NULL,
    valid_to       TEXT    NOT NULL,
    -- valid_from 00:00 local, and 00:00 local of the day after valid_to (exclusive)
    starts_at      BIGINT  NOT NULL,
    ends_at        BIGINT  NOT NULL,
    activated_at   BIGINT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    deleted_at     BIGINT
);
CREATE INDEX permits_allocation ON permits (allocation_id);
CREATE INDEX permits_email ON permits (email, ends_at);
