-- The plates whose rights changed, written by the transactions that change them: each instance
-- keeps every current right in memory (src/rights/memory) and reads here what to forget. A null
-- plate: read everything again (a permit definition, its lots, an allocation or a provider
-- changed). Written by triggers, so no writer of rights can forget it, this instance's or
-- another's: once per statement where a statement writes many rows (a batch of tickets), once
-- per row where rows are written one at a time.
--
-- Numbers from a sequence are not handed out in commit order here, so a change is known by its
-- transaction (`xid`): an instance reads the changes of the transactions that committed between
-- two snapshots (src/rights/memory/poll.rs). Not a NOTIFY: PostgreSQL serializes the commits of
-- notifying transactions, fsync included: a third fewer commits from concurrent writers.
CREATE TABLE right_changes (
    xid   xid8 NOT NULL DEFAULT pg_current_xact_id(),
    plate TEXT
);
CREATE INDEX right_changes_xid ON right_changes (xid);

CREATE FUNCTION right_changed(plate TEXT) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO right_changes (plate) VALUES (plate) $$;

-- The plates of the rows a statement wrote (transition tables `old_rows`, `new_rows`; an
-- INSERT ... ON CONFLICT DO UPDATE fires the INSERT and the UPDATE trigger).
CREATE FUNCTION right_changes_tickets() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO right_changes (plate) SELECT DISTINCT license_norm FROM new_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO right_changes (plate)
            SELECT license_norm FROM new_rows UNION SELECT license_norm FROM old_rows;
    ELSE
        INSERT INTO right_changes (plate) SELECT DISTINCT license_norm FROM old_rows;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER right_changes_ticket_insert AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION right_changes_tickets();
CREATE TRIGGER right_changes_ticket_update AFTER UPDATE ON tickets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION right_changes_tickets();
CREATE TRIGGER right_changes_ticket_delete AFTER DELETE ON tickets
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION right_changes_tickets();

-- A row's plate: before and after.
CREATE FUNCTION right_changes_plate_row() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        PERFORM right_changed(NEW.license_norm);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM right_changed(OLD.license_norm);
    END IF;
    RETURN NULL;
END $$;

-- A car-park stay's plate (ticket type 4; a QR code's stays are nobody's right).
CREATE FUNCTION right_changes_stay_row() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'DELETE' AND NEW.ticket_type = 4 THEN
        PERFORM right_changed(NEW.ticket_key);
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.ticket_type = 4 THEN
        PERFORM right_changed(OLD.ticket_key);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER right_changes_vehicle AFTER INSERT OR UPDATE OR DELETE ON end_user_vehicles
    FOR EACH ROW EXECUTE FUNCTION right_changes_plate_row();
CREATE TRIGGER right_changes_stay AFTER INSERT OR UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION right_changes_stay_row();

-- The vehicles of the end users with an e-mail address: a permit is held by them.
CREATE FUNCTION right_changes_email_row() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM right_changed(v.license_norm)
       FROM end_users u JOIN end_user_vehicles v ON v.end_user_id = u.id
      WHERE (TG_OP <> 'INSERT' AND u.email = OLD.email)
         OR (TG_OP <> 'DELETE' AND u.email = NEW.email);
    RETURN NULL;
END $$;

-- Before an end user's delete: the vehicles are still there to name.
CREATE TRIGGER right_changes_end_user_delete BEFORE DELETE ON end_users
    FOR EACH ROW EXECUTE FUNCTION right_changes_email_row();
CREATE TRIGGER right_changes_end_user_update AFTER UPDATE OF email ON end_users
    FOR EACH ROW EXECUTE FUNCTION right_changes_email_row();
CREATE TRIGGER right_changes_permit AFTER INSERT OR UPDATE OR DELETE ON permits
    FOR EACH ROW EXECUTE FUNCTION right_changes_email_row();

-- What many plates share: read everything again.
CREATE FUNCTION right_changes_everything() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM right_changed(NULL);
    RETURN NULL;
END $$;

CREATE TRIGGER right_changes_allocation_update AFTER UPDATE ON permit_allocations
    FOR EACH ROW WHEN (NEW.definition_id <> OLD.definition_id)
    EXECUTE FUNCTION right_changes_everything();
CREATE TRIGGER right_changes_allocation_delete AFTER DELETE ON permit_allocations
    FOR EACH STATEMENT EXECUTE FUNCTION right_changes_everything();
CREATE TRIGGER right_changes_definition AFTER UPDATE OR DELETE ON permit_definitions
    FOR EACH STATEMENT EXECUTE FUNCTION right_changes_everything();
CREATE TRIGGER right_changes_definition_lot AFTER INSERT OR DELETE ON permit_definition_lots
    FOR EACH STATEMENT EXECUTE FUNCTION right_changes_everything();
CREATE TRIGGER right_changes_provider AFTER UPDATE OF name ON principals
    FOR EACH STATEMENT EXECUTE FUNCTION right_changes_everything();
