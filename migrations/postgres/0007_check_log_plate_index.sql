-- The check log's plate index holds only rows marked plate_indexed. On SQLite, a busy second's
-- checks are written without it (one random B-tree page per check was most of the log's cost)
-- and indexed later, when checks slow down, in large transactions; the rows still waiting are
-- found through the small parking_right_checks_to_index, always at the end of the log.
-- PostgreSQL writes every row indexed (the column's default), as before.
ALTER TABLE parking_right_checks ADD COLUMN plate_indexed BOOLEAN NOT NULL DEFAULT TRUE;
DROP INDEX parking_right_checks_plate;
CREATE INDEX parking_right_checks_plate ON parking_right_checks (license_norm, checked_at)
    WHERE plate_indexed;
CREATE INDEX parking_right_checks_to_index ON parking_right_checks (id) WHERE NOT plate_indexed;
