//! Rights checks: the preloaded data (1,000,000 tickets, 100,000 permits, 10,000 stays at full
//! scale), single checks in a closed loop and at half that rate in an open loop, GET /healthz at
//! the same rate, the handhelds' list and the operator's check log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use parkhub::principals::Role;

use crate::drive::{BusyMeter, Row, closed_loop, inside_service, millis, open_loop, splitmix};
use crate::load::preload;
use crate::{Bench, json_answer, metric_value, succeeds};

/// What preloading the rights-check data took.
pub(crate) struct Preloaded {
    pub(crate) tickets: i64,
    pub(crate) permits: i64,
    pub(crate) stays: i64,
    load_secs: f64,
    /// When the service's rights memory had taken it in, and the service's memory then.
    memory: String,
    /// An enforcement officer's token, for checks.
    officer: String,
}

impl Bench {
    /// Waits until the service's rights memory holds `plates` (those before and those
    /// preloaded behind its back, heard of as another writer's), as it would hold them at
    /// start-up, and has read every change (a check as `officer` is answered from it), and
    /// says how long that took and what the service then holds.
    async fn memory_loaded(&self, plates: i64, officer: &str) -> anyhow::Result<String> {
        let started = Instant::now();
        let check = self.url("/api/v1/parking-rights?licenseNumber=NOBODY1&parkingLotId=12");
        loop {
            let (held, unknown) = self.memory_plates().await?;
            // Taken in, and read but for the few the service leaves to the checks that ask.
            if held >= plates && unknown <= 1_000 {
                let before = self.rights_sources().await?.0;
                json_answer(self.client.get(&check).bearer_auth(officer), &check).await?;
                if self.rights_sources().await?.0 > before {
                    return Ok(format!(
                        ", in the service's rights memory {:.1} s later (service RSS {:.1} MiB)",
                        started.elapsed().as_secs_f64(),
                        self.server_rss_kib() as f64 / 1024.0
                    ));
                }
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!(
                    "the rights memory holds {held} of {plates} plates after 300 s, or is behind"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no check waits for the check log's plate index (SQLite indexes a busy
    /// run's checks once they stop): how many waited and how long that took.
    async fn check_log_indexed(&self) -> anyhow::Result<String> {
        let started = Instant::now();
        let mut most = 0.0f64;
        loop {
            let text = self.metrics_text().await?;
            let waiting = metric_value(&text, "parkhub_check_log_rows_to_index");
            most = most.max(waiting);
            if waiting == 0.0 {
                return Ok(format!(
                    "{most:.0} checks waiting for the plate index, indexed in {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("{waiting} checks still wait for the plate index after 300 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Checks answered so far from the rights memory and from the database.
    async fn rights_sources(&self) -> anyhow::Result<(u64, u64)> {
        let text = self.metrics_text().await?;
        Ok((
            metric_value(&text, "parkhub_rights_answered_from_memory_total") as u64,
            metric_value(&text, "parkhub_rights_read_from_database_total") as u64,
        ))
    }

    /// How many plates the service's rights memory has taken in (holds rights for, or is to
    /// read again), and how many of them it is to read again.
    async fn memory_plates(&self) -> anyhow::Result<(i64, i64)> {
        let text = self.metrics_text().await?;
        // A plate whose rights changed since the memory read them is "unknown" until the first
        // check that asks reads it again, or the memory does: once many are, or, when more
        // than 1,000 are, once the writes have quieted down. The preload's last plates end
        // there rather than in a full reload, depending on when the memory looked.
        let held = metric_value(&text, "parkhub_rights_memory_plates");
        let unknown = metric_value(&text, "parkhub_rights_memory_unknown_plates");
        Ok(((held + unknown) as i64, unknown as i64))
    }

    /// The rights-check data (1,000,000 tickets, 100,000 permits, 10,000 stays at full
    /// scale), preloaded once and waited for until the service's rights memory holds it.
    pub(crate) async fn preloaded(&self) -> anyhow::Result<&Preloaded> {
        self.preloaded
            .get_or_try_init(|| async {
                let tickets = (1_000_000.0 * self.scale) as i64;
                let permits = (100_000.0 * self.scale) as i64;
                let stays = (10_000.0 * self.scale) as i64;
                let started = Instant::now();
                preload(&self.store, tickets, permits, stays).await?;
                let load_secs = started.elapsed().as_secs_f64();
                let officer = self.token(Role::Enforcement, "bench-officer").await?;
                // Every preloaded plate has a right now, held or to be read again. What the
                // memory took in before (the ticket-ingest scenario's plates) may be dropped
                // meanwhile: those tickets ended long ago, and a full reload does not keep them.
                let memory = self
                    .memory_loaded(tickets + permits + stays, &officer)
                    .await?;
                anyhow::Ok(Preloaded {
                    tickets,
                    permits,
                    stays,
                    load_secs,
                    memory,
                    officer,
                })
            })
            .await
    }

    /// Times one operator GET of a paged list: milliseconds, and the total it counts.
    async fn timed_total(&self, path: &str) -> anyhow::Result<(f64, i64)> {
        let started = Instant::now();
        let page = json_answer(
            self.client.get(self.url(path)).bearer_auth(&self.operator),
            path,
        )
        .await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok((ms, page["meta"]["total"].as_i64().unwrap_or(0)))
    }

    pub(crate) async fn rights_check(&self) -> anyhow::Result<Row> {
        let Preloaded {
            tickets,
            permits,
            stays,
            load_secs,
            ref memory,
            ref officer,
        } = *self.preloaded().await?;
        // The handhelds' list of every plate allowed at the lot: decided for the whole lot.
        let listed = Instant::now();
        let path = "/api/v1/parking-rights/valid-plates?parkingLotId=12&perPage=500";
        let page = json_answer(self.client.get(self.url(path)).bearer_auth(officer), path).await?;
        let list_secs = listed.elapsed().as_secs_f64();
        let valid = page["meta"]["total"].as_i64().unwrap_or(0);
        // The next page, asked for the instant the first one answered: from the same list.
        let at = page["at"].as_str().unwrap_or_default().replace('+', "%2B");
        let next = format!("{path}&page=2&at={at}");
        let listed = Instant::now();
        let second =
            json_answer(self.client.get(self.url(&next)).bearer_auth(officer), &next).await?;
        let next_ms = listed.elapsed().as_secs_f64() * 1000.0;
        if second["meta"]["total"] != page["meta"]["total"] {
            bail!(
                "valid-plates: page 2 counts {} plates, page 1 {valid}",
                second["meta"]["total"]
            );
        }
        let base = self.url("/api/v1/parking-rights");
        let plate = |i: u64| {
            let pick = splitmix(i);
            match pick % 6 {
                0 | 1 => format!("TK{:07}", (pick >> 8) % tickets.max(1) as u64),
                2 => format!("PM{:07}", (pick >> 8) % permits.max(1) as u64),
                _ if pick % 6 == 3 && stays > 0 => format!("TX{:07}", (pick >> 8) % stays as u64),
                _ => format!("NO{:07}", (pick >> 8) % 10_000_000),
            }
        };
        let make = |i: u64| {
            self.client
                .get(format!("{base}?licenseNumber={}&parkingLotId=12", plate(i)))
                .bearer_auth(officer)
        };
        let counter = AtomicU64::new(0);
        let sources_before = self.rights_sources().await?;
        let cpu = self.cpu_meter();
        let (max_rate, checked, errors_max) = closed_loop(self.concurrency, self.duration, |_| {
            succeeds(make(counter.fetch_add(1, Ordering::Relaxed)))
        })
        .await;
        let cpu = cpu.per_request(checked.len());
        let sources = self.rights_sources().await?;
        let (from_memory, database) = (sources.0 - sources_before.0, sources.1 - sources_before.1);
        let target = (max_rate / 2.0).max(1.0);
        let healthz = self.url("/healthz");
        let route = "/api/v1/parking-rights";
        let before = self.service_histogram(route).await?;
        let cores = BusyMeter::start();
        let half_cpu = self.cpu_meter();
        let (latency, errors) = open_loop(&self.client, target, self.duration, &healthz, |i| {
            succeeds(make(1_000_000_000 + i))
        })
        .await?;
        let busy = cores.busy_and_stolen();
        let half_cpu = half_cpu.per_request(latency.len());
        let inside = inside_service(&before, &self.service_histogram(route).await?);
        // One plate's checks from the operator's log, while the checks above may still wait
        // for the plate index; then the wait for it, so the floor below runs on a service as
        // idle as before the checks.
        let log = "/api/v1/admin/parking-right-checks";
        let (plate_ms, plate_checks) = self
            .timed_total(&format!("{log}?licenseNumber={}", plate(0)))
            .await?;
        let indexed = self.check_log_indexed().await?;
        // The same arrival rate on GET /healthz: the latency this machine, the load generator
        // and the HTTP stack add to any request at that rate, the floor under the figure above.
        let cores = BusyMeter::start();
        let floor_cpu = self.cpu_meter();
        let (floor, floor_errors) =
            open_loop(&self.client, target, self.duration, &healthz, |_| {
                succeeds(self.client.get(&healthz))
            })
            .await?;
        let floor_busy = cores.busy_and_stolen();
        let floor_cpu = floor_cpu.per_request(floor.len());
        let (floor_p99, floor_p999) = (millis(&floor, 0.99), millis(&floor, 0.999));
        // The operator's log of every check above: the newest page (and the count of all),
        // and one plate's checks once all are in the plate index.
        let (newest_ms, logged) = self.timed_total(log).await?;
        let (plate_indexed_ms, _) = self
            .timed_total(&format!("{log}?licenseNumber={}", plate(0)))
            .await?;
        Ok(Row {
            name: "rights-check",
            rate: max_rate,
            latency: Some(latency),
            errors: errors + errors_max + floor_errors,
            notes: format!(
                "max req/s closed loop ({cpu}; {from_memory} answered from the rights memory, {database} from the database); latency at {target:.0}/s (half), {busy} ({half_cpu}), {inside}, where GET /healthz has p99 {floor_p99:.2} ms, p99.9 {floor_p999:.2} ms, {floor_busy} ({floor_cpu}); preloaded {tickets} tickets, {permits} permits, {stays} stays in {load_secs:.0} s{memory}; GET valid-plates (first 500 of {valid}) in {list_secs:.2} s, the next page in {next_ms:.1} ms; check log of {logged}: one plate's {plate_checks} in {plate_ms:.1} ms right after the checks, {indexed}, then {plate_indexed_ms:.1} ms; newest page in {newest_ms:.1} ms"
            ),
        })
    }
}
