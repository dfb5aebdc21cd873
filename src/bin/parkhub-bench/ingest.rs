//! Ticket ingest: distinct CreateOrUpdates from 64 clients (`--concurrency`), into an empty
//! database and into the data rights-check preloads.

use std::sync::atomic::{AtomicU64, Ordering};

use parkhub::principals::Role;
use parkhub::store::Backend;
use serde_json::json;

use crate::drive::{Row, closed_loop};
use crate::{Bench, succeeds};

impl Bench {
    pub(crate) async fn ticket_ingest(&self) -> anyhow::Result<Row> {
        self.ingest("ticket-ingest", "bench", "IN", String::new())
            .await
    }

    /// `ticket-ingest` into the database `rights-check` preloads (preloaded first when run
    /// alone): a service that has been running a while, with tables of a million rows and a
    /// rights memory of a million plates to keep current while it ingests.
    pub(crate) async fn ticket_ingest_loaded(&self) -> anyhow::Result<Row> {
        let data = self.preloaded().await?;
        let loads = self.memory_loads().await?;
        let mut row = self
            .ingest(
                "ticket-ingest-loaded",
                "loaded",
                "LD",
                format!(
                    "; into {} tickets, {} permits, {} stays",
                    data.tickets, data.permits, data.stays
                ),
            )
            .await?;
        let loads = self.memory_loads().await? - loads;
        row.notes.push_str(&format!(
            "; rights memory loaded whole {loads:.0} times meanwhile"
        ));
        Ok(row)
    }

    /// Distinct CreateOrUpdates of tickets `{id}-{n}` for plates `{plate}{n:07}`, from the run's
    /// clients (64 unless told, as floor-http) for 4 providers, for the run's duration.
    async fn ingest(
        &self,
        name: &'static str,
        id: &str,
        plate: &str,
        about: String,
    ) -> anyhow::Result<Row> {
        self.ingest_lot
            .get_or_try_init(|| async {
                self.post(
                    "/api/v1/admin/parking-lots",
                    &self.operator,
                    &json!({"id": 13, "name": "Tickets", "zoneCode": 13}),
                )
                .await
                .map(|_| ())
            })
            .await?;
        let mut providers = Vec::new();
        for i in 0..4 {
            providers.push(self.token(Role::Provider, &format!("ingest-{i}")).await?);
        }
        let url = self.url("/api/v1/actions/tickets");
        let counter = AtomicU64::new(0);
        let batches_before = self.write_batches().await?;
        let cpu = self.cpu_meter();
        let (rate, latency, errors) = closed_loop(self.concurrency, self.duration, |worker| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let body = format!(
                r#"{{"eventType":"CreateOrUpdate","ticketId":"{id}-{n}","parkingLotId":13,"startDate":"2025-06-01T10:00:00Z","endDate":"2025-06-01T12:00:00Z","licenseNumber":"{plate}{n:07}","ticketCost":{{"amountInclVat":2000,"vatRate":25,"currencyCode":"SEK"}}}}"#
            );
            succeeds(self.post_text(&url, &providers[worker % providers.len()], body))
        })
        .await;
        let cpu = cpu.per_request(latency.len());
        let batches = self.write_batches().await?;
        let (commits, written, seconds) = (
            batches.0 - batches_before.0,
            batches.1 - batches_before.1,
            batches.2 - batches_before.2,
        );
        let per_commit = written / commits.max(1.0);
        let batch_micros = seconds / commits.max(1.0) * 1e6;
        let durability = match self.store.backend() {
            Backend::Sqlite(_) => "SQLite WAL synchronous=FULL, group commit",
            Backend::Postgres(_) => "PostgreSQL synchronous_commit=on",
        };
        Ok(Row {
            name,
            rate,
            latency: Some(latency),
            errors,
            notes: format!(
                "{} concurrent, 4 providers; {durability}, {per_commit:.1} tickets a commit, {batch_micros:.0} µs a batch on the database; {cpu}{about}",
                self.concurrency
            ),
        })
    }
}
