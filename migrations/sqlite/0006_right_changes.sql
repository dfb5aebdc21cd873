-- The plates whose rights changed, in commit order (SQLite has one writer, so the numbers are
-- handed out in commit order): each instance keeps every current right in memory
-- (rights/memory.rs) and reads here what to read again. A null plate: read everything again
-- (a permit definition, its lots, an allocation or a provider changed).
-- Written by triggers, so no writer of rights can forget it, this process's or another's.
CREATE TABLE right_changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    plate  TEXT
);

CREATE TRIGGER right_changes_ticket_insert AFTER INSERT ON tickets
BEGIN
    INSERT INTO right_changes (plate) VALUES (NEW.license_norm);
END;
CREATE TRIGGER right_changes_ticket_update AFTER UPDATE ON tickets
BEGIN
    INSERT INTO right_changes (plate) VALUES (NEW.license_norm);
    INSERT INTO right_changes (plate) SELECT OLD.license_norm WHERE OLD.license_norm <> NEW.license_norm;
END;
CREATE TRIGGER right_changes_ticket_delete AFTER DELETE ON tickets
BEGIN
    INSERT INTO right_changes (plate) VALUES (OLD.license_norm);
END;

CREATE TRIGGER right_changes_stay_insert AFTER INSERT ON transactions WHEN NEW.ticket_type = 4
BEGIN
    INSERT INTO right_changes (plate) VALUES (NEW.ticket_key);
END;
CREATE TRIGGER right_changes_stay_update AFTER UPDATE ON transactions
    WHEN NEW.ticket_type = 4 OR OLD.ticket_type = 4
BEGIN
    INSERT INTO right_changes (plate) SELECT NEW.ticket_key WHERE NEW.ticket_type = 4;
    INSERT INTO right_changes (plate) SELECT OLD.ticket_key WHERE OLD.ticket_type = 4
        AND NOT (NEW.ticket_type = 4 AND NEW.ticket_key = OLD.ticket_key);
END;
CREATE TRIGGER right_changes_stay_delete AFTER DELETE ON transactions WHEN OLD.ticket_type = 4
BEGIN
    INSERT INTO right_changes (plate) VALUES (OLD.ticket_key);
END;

CREATE TRIGGER right_changes_vehicle_insert AFTER INSERT ON end_user_vehicles
BEGIN
    INSERT INTO right_changes (plate) VALUES (NEW.license_norm);
END;
CREATE TRIGGER right_changes_vehicle_update AFTER UPDATE ON end_user_vehicles
BEGIN
    INSERT INTO right_changes (plate) VALUES (NEW.license_norm);
    INSERT INTO right_changes (plate) SELECT OLD.license_norm WHERE OLD.license_norm <> NEW.license_norm;
END;
CREATE TRIGGER right_changes_vehicle_delete AFTER DELETE ON end_user_vehicles
BEGIN
    INSERT INTO right_changes (plate) VALUES (OLD.license_norm);
END;

-- Before the delete: its vehicles are still there to name.
CREATE TRIGGER right_changes_end_user_delete BEFORE DELETE ON end_users
BEGIN
    INSERT INTO right_changes (plate)
        SELECT license_norm FROM end_user_vehicles WHERE end_user_id = OLD.id;
END;
CREATE TRIGGER right_changes_end_user_update AFTER UPDATE OF email ON end_users
BEGIN
    INSERT INTO right_changes (plate)
        SELECT license_norm FROM end_user_vehicles WHERE end_user_id = NEW.id;
END;

-- A permit is held by the vehicles of the end user with its e-mail address.
CREATE TRIGGER right_changes_permit_insert AFTER INSERT ON permits
BEGIN
    INSERT INTO right_changes (plate)
        SELECT v.license_norm FROM end_users u JOIN end_user_vehicles v ON v.end_user_id = u.id
         WHERE u.email = NEW.email;
END;
CREATE TRIGGER right_changes_permit_update AFTER UPDATE ON permits
BEGIN
    INSERT INTO right_changes (plate)
        SELECT v.license_norm FROM end_users u JOIN end_user_vehicles v ON v.end_user_id = u.id
         WHERE u.email IN (NEW.email, OLD.email);
END;
CREATE TRIGGER right_changes_permit_delete AFTER DELETE ON permits
BEGIN
    INSERT INTO right_changes (plate)
        SELECT v.license_norm FROM end_users u JOIN end_user_vehicles v ON v.end_user_id = u.id
         WHERE u.email = OLD.email;
END;

-- What many plates share: read everything again.
CREATE TRIGGER right_changes_allocation_update AFTER UPDATE ON permit_allocations
    WHEN NEW.definition_id <> OLD.definition_id
BEGIN
    INSERT INTO right_changes (plate) VALUES (NULL);
END;
CREATE TRIGGER right_changes_allocation_delete AFTER DELETE ON permit_allocations
BEGIN
    INSERT INTO right_changes (plate) VALUES (NULL);
END;
CREATE TRIGGER right_changes_definition_update AFTER UPDATE ON permit_definitions
BEGIN
    INSERT INTO right_changes (plate) VALUES (NULL);
END;
CREATE TRIGGER right_changes_definition_delete AFTER DELETE ON permit_definitions
BEGIN
    INSERT INTO right_changes (plate) VALUES (NULL);
END;
CREATE TRIGGER right_changes_definition_lot_insert AFTER INSERT ON permit_definition_lots
BEGIN
    INSERT INTO right_changes (plate) VALUES (NULL);
END;
CREATE TRIGGER right_changes_definition_lot_delete AFTER DELETE ON permit_definition_lots
BEGIN
    INSERT INTO right_changes (plate) VALUES (NULL);
END;
CREATE TRIGGER right_changes_provider_update AFTER UPDATE OF name ON principals
BEGIN
    INSERT INTO right_changes (plate) VALUES (NULL);
END;
