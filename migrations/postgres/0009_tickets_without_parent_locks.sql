-- A ticket names its lot and its provider without a foreign key. Checking one locked the
-- parent row (SELECT ... FOR KEY SHARE) in every transaction that wrote a ticket: all of a
-- busy lot's tickets, from every lane and every instance, took a share of the same row, and
-- concurrent shares of one row become a MultiXact (about 2,800 in ten seconds of
-- ticket-ingest). Without them PostgreSQL spent 17% less CPU a ticket (BENCHMARKS.md).
--
-- What the keys guarded still holds: a ticket is written only after its lot was found and
-- its provider authenticated, and parkhub never deletes a lot or a principal. For a deletion
-- by hand, these triggers refuse to delete a lot or a principal that tickets still name, with
-- the error a foreign key would raise (a delete racing a ticket's insert is not caught).
-- SQLite keeps its keys: a check there is one B-tree lookup and takes no lock.
ALTER TABLE tickets DROP CONSTRAINT tickets_provider_id_fkey;
ALTER TABLE tickets DROP CONSTRAINT tickets_parking_lot_id_fkey;

CREATE FUNCTION refuse_deleting_ticket_parents() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'parking_lots'
        AND EXISTS (SELECT 1 FROM tickets WHERE parking_lot_id = OLD.id) THEN
        RAISE foreign_key_violation
            USING MESSAGE = format('parking lot %s still has tickets', OLD.id);
    END IF;
    IF TG_TABLE_NAME = 'principals'
        AND EXISTS (SELECT 1 FROM tickets WHERE provider_id = OLD.id) THEN
        RAISE foreign_key_violation
            USING MESSAGE = format('principal %s still has tickets', OLD.id);
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER parking_lots_keep_ticketed BEFORE DELETE ON parking_lots
    FOR EACH ROW EXECUTE FUNCTION refuse_deleting_ticket_parents();
CREATE TRIGGER principals_keep_ticketed BEFORE DELETE ON principals
    FOR EACH ROW EXECUTE FUNCTION refuse_deleting_ticket_parents();
