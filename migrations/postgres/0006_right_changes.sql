-- The plates whose rights changed, announced on the channel 'parkhub_rights' when the change
-- commits: each instance keeps every current right in memory (src/rights/memory) and reads
-- again the plates it hears of. PostgreSQL delivers notifications in commit order, after the
-- commit, to every listening instance; one payload is sent once per transaction however often
-- it is raised. Payloads: 'p' and the plate's normal form; '*' to read everything again (a
-- permit definition, its lots, an allocation or a provider changed). Raised by triggers, so no
-- writer of rights can forget it, this instance's or another's.

CREATE FUNCTION right_changed(plate TEXT) RETURNS void
    LANGUAGE sql AS $$ SELECT pg_notify('parkhub_rights', COALESCE('p' || plate, '*')) $$;

-- A row's plate: before and after (the same payload twice is sent once).
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

CREATE TRIGGER right_changes_ticket AFTER INSERT OR UPDATE OR DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION right_changes_plate_row();
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
