//! Equipment ingest: a burst of entries and exits from the car park's lanes, as many as the
//! service takes, each one's event committed to the outbox before its 2xx.

use std::sync::atomic::{AtomicU64, Ordering};

use parkhub::principals::Role;
use parkhub::store::Backend;

use crate::drive::{Row, closed_loop};
use crate::{Bench, succeeds};

impl Bench {
    /// The run's clients (64 unless told) each report a vehicle's entry at car park 1/2, then
    /// its exit, then the next vehicle's entry, for the run's duration: every request writes a
    /// transaction and its event. The exit is priced (free minutes, so 0 SEK).
    pub(crate) async fn equipment_ingest(&self) -> anyhow::Result<Row> {
        let gate = self.token(Role::Equipment, "lanes").await?;
        let entries = self.url("/api/v1/carparks/entries");
        let exits = self.url("/api/v1/carparks/exits");
        let reports: Vec<AtomicU64> = (0..self.concurrency).map(|_| AtomicU64::new(0)).collect();
        let batches_before = self.write_batches().await?;
        let cpu = self.cpu_meter();
        let (rate, latency, errors) = closed_loop(self.concurrency, self.duration, |worker| {
            let n = reports[worker].fetch_add(1, Ordering::Relaxed);
            let url = if n % 2 == 0 { &entries } else { &exits };
            let body = format!(
                r#"{{"facilityNo":1,"carparkNo":2,"ticketNo":"EQ{worker:03}{:07}","ticketType":4}}"#,
                n / 2
            );
            succeeds(self.post_text(url, &gate, body))
        })
        .await;
        let cpu = cpu.per_request(latency.len());
        let batches = self.write_batches().await?;
        let (commits, written) = (batches.0 - batches_before.0, batches.1 - batches_before.1);
        let durability = match self.store.backend() {
            Backend::Sqlite(_) => format!(
                "SQLite WAL synchronous=FULL, {:.1} reports a group commit",
                written / commits.max(1.0)
            ),
            Backend::Postgres(_) => "PostgreSQL synchronous_commit=on".to_owned(),
        };
        Ok(Row {
            name: "equipment-ingest",
            rate,
            latency: Some(latency),
            errors,
            notes: format!(
                "{} lanes, entries and exits in turn; {durability}; {cpu}",
                self.concurrency
            ),
        })
    }
}
