-- Each provider's number of tickets in each lot, so that listing them without a filter, or
-- with only a lot's, need not count them (60-120 ms a page for a provider with a million
-- tickets, BENCHMARKS.md).
--
-- Written by triggers, so no writer of tickets can forget it, this instance's or another's:
-- each statement that writes tickets appends to ticket_count_changes a row for each provider
-- and lot whose number it changed. Nothing is updated there, so the batches of two lanes or
-- of two instances never wait for each other on a counter's row. Now and then an instance folds the
-- changes into ticket_counts (src/tickets/store/counts.rs), in one transaction: a reader sees
-- them either still as changes or already in the count. A provider's number of tickets (in a
-- lot) is the sum of its rows in ticket_counts and in the changes, read in one statement.
-- Each row also keeps the least id of the tickets it counted in (first_id): a listing reads
-- the table in id order from there rather than from the table's first ticket. A ticket
-- deleted or moved away leaves it lower than the first one left, still a bound below all.
CREATE TABLE ticket_counts (
    provider_id     BIGINT NOT NULL,
    parking_lot_id  BIGINT NOT NULL,
    tickets         BIGINT NOT NULL,
    first_id        BIGINT,
    PRIMARY KEY (provider_id, parking_lot_id)
);

CREATE TABLE ticket_count_changes (
    provider_id     BIGINT NOT NULL,
    parking_lot_id  BIGINT NOT NULL,
    tickets         BIGINT NOT NULL,
    first_id        BIGINT
);
CREATE INDEX ticket_count_changes_provider ON ticket_count_changes (provider_id, parking_lot_id);

-- The rows a statement inserted, deleted, or moved to another lot or provider (transition
-- tables `old_rows`, `new_rows`; an INSERT ... ON CONFLICT DO UPDATE fires both the INSERT and
-- the UPDATE trigger, and an update that keeps the lot and the provider adds nothing).
CREATE FUNCTION ticket_counts_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ticket_count_changes (provider_id, parking_lot_id, tickets, first_id)
            SELECT provider_id, parking_lot_id, COUNT(*), MIN(id) FROM new_rows
             GROUP BY provider_id, parking_lot_id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO ticket_count_changes (provider_id, parking_lot_id, tickets, first_id)
            SELECT provider_id, parking_lot_id, SUM(n), MIN(id) FILTER (WHERE n = 1) FROM (
                SELECT provider_id, parking_lot_id, id, 1 AS n FROM new_rows
                UNION ALL
                SELECT provider_id, parking_lot_id, id, -1 AS n FROM old_rows
            ) moved GROUP BY provider_id, parking_lot_id HAVING SUM(n) <> 0;
    ELSE
        INSERT INTO ticket_count_changes (provider_id, parking_lot_id, tickets)
            SELECT provider_id, parking_lot_id, -COUNT(*) FROM old_rows
             GROUP BY provider_id, parking_lot_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ticket_counts_truncated() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM ticket_count_changes;
    DELETE FROM ticket_counts;
    RETURN NULL;
END $$;

-- Created before the counts are taken: creating a trigger locks the table against writes
-- until this migration commits, so no ticket is written between the count and the triggers.
CREATE TRIGGER ticket_counts_insert AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_counts_changed();
CREATE TRIGGER ticket_counts_update AFTER UPDATE ON tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_counts_changed();
CREATE TRIGGER ticket_counts_delete AFTER DELETE ON tickets
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_counts_changed();
CREATE TRIGGER ticket_counts_truncate AFTER TRUNCATE ON tickets
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_counts_truncated();

INSERT INTO ticket_counts (provider_id, parking_lot_id, tickets, first_id)
    SELECT provider_id, parking_lot_id, COUNT(*), MIN(id) FROM tickets
     GROUP BY provider_id, parking_lot_id;
