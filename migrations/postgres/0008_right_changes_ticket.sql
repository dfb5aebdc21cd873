-- A new ticket's change names the ticket, so the rights memory (src/rights/memory) can add that
-- one row, read by its key in the poll that finds the change, to what it holds of the plate,
-- instead of forgetting the plate and reading all its rights again: that read back every
-- ingested plate while tickets poured in (BENCHMARKS.md). Every other change still names only
-- the plate (or none: everything).
ALTER TABLE right_changes ADD COLUMN ticket BIGINT;

CREATE OR REPLACE FUNCTION right_changes_tickets() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO right_changes (plate, ticket) SELECT license_norm, id FROM new_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO right_changes (plate)
            SELECT license_norm FROM new_rows UNION SELECT license_norm FROM old_rows;
    ELSE
        INSERT INTO right_changes (plate) SELECT DISTINCT license_norm FROM old_rows;
    END IF;
    RETURN NULL;
END $$;
