-- On SQLite the provider's listing index (provider_id, updated_at) becomes (updated_at,
-- provider_id). Led by the provider, every ticket written went into it at one place per
-- provider, each in the middle of the index where B-tree balancing rewrites neighbouring
-- pages too: about a quarter of the pages (WAL frames) a group commit wrote, each of which
-- its fsync waits for (BENCHMARKS.md). Led by the time of the write, every ticket goes in at
-- its end. It serves the listing's updatedSince as a range from that time (the provider is
-- read from the index too); a listing without updatedSince finds the provider's tickets
-- through the unique (provider_id, ticket_id) index. PostgreSQL keeps its index, whose
-- range it plans with updatedSince's value.
DROP INDEX tickets_provider_updated;
CREATE INDEX tickets_updated ON tickets (updated_at, provider_id);
