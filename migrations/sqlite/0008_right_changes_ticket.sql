-- A new ticket's change names the ticket, so the rights memory (rights/memory) can add that one
-- row, read by its key with the change, to what it holds of the plate, instead of forgetting
-- the plate and reading all its rights again: that read back every ingested plate and was 7%
-- of the service's time while tickets poured in (BENCHMARKS.md). Every other change still
-- names only the plate (or none: everything).
ALTER TABLE right_changes ADD COLUMN ticket INTEGER;
DROP TRIGGER right_changes_ticket_insert;
CREATE TRIGGER right_changes_ticket_insert AFTER INSERT ON tickets
BEGIN
    INSERT INTO right_changes (plate, ticket) VALUES (NEW.license_norm, NEW.id);
END;
