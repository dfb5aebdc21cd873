//! `parkhub-bench`: starts parkhub on a fresh database in a child process, prepares data, runs
//! the scenarios over loopback with a real HTTP/WebSocket client and HDR histograms, and prints
//! one table. Latency scenarios run at a constant arrival rate (open model): each request's
//! latency counts from when it was due, so a slow server cannot hide behind a slow client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use parkhub::principals::{Role, store as principals};
use parkhub::store::{Backend, Store, StoreOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

mod database;
mod drive;
mod events;
mod ingest;
mod load;

use database::fresh_database;
use drive::{BusyMeter, CpuMeter, Row, closed_loop, inside_service, millis, open_loop, splitmix};
use load::{floor_commit, preload};

const SCENARIOS: [&str; 8] = [
    "floor-http",
    "floor-commit",
    "ticket-ingest",
    "rights-check",
    "ticket-ingest-loaded",
    "event-latency",
    "event-replay",
    "idle-sockets",
];

#[derive(Debug, Parser)]
#[command(
    name = "parkhub-bench",
    about = "Measure parkhub against floors measured in the same run"
)]
struct Args {
    /// `postgres://...` to run on PostgreSQL (a fresh database is created there and dropped at the end); default a
    /// temporary SQLite file.
    #[arg(long)]
    database: Option<String>,
    /// Run one scenario (default: all).
    #[arg(long, value_parser = SCENARIOS)]
    scenario: Option<String>,
    /// Seconds per throughput or latency measurement.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Concurrent clients for throughput scenarios.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Fraction of the full data sizes (1,000,000 tickets, 100,000 permits, 10,000 stays,
    /// 100,000 queued events, 10,000 sockets).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// A few seconds per scenario and 1% of the data: proves the command works (CI).
    #[arg(long)]
    smoke: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.duration = args.duration.min(2.0);
        args.scale = args.scale.min(0.01);
    }
    let (database, fresh) = fresh_database(args.database.as_deref()).await?;
    let outcome = run(&database, &args).await;
    fresh.remove().await;
    outcome
}

/// Every scenario asked for, against a service on `database`.
async fn run(database: &str, args: &Args) -> anyhow::Result<()> {
    let bench = Bench::start(database, args).await?;
    println!(
        "parkhub-bench: {} cores, database {}",
        num_cpus(),
        parkhub::store::redact_url(database)
    );
    println!(
        "{:<20} {:>12} {:>10} {:>10} {:>10} {:>8}  notes",
        "scenario", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "non-2xx"
    );
    let wanted: Vec<&str> = match &args.scenario {
        Some(one) => vec![one.as_str()],
        None => SCENARIOS.to_vec(),
    };
    let mut floor = None;
    let mut failed = false;
    for name in wanted {
        let row = match name {
            "floor-http" => bench.floor_http().await?,
            "floor-commit" => floor_commit(database, args.duration).await?,
            "ticket-ingest" => bench.ticket_ingest().await?,
            "rights-check" => bench.rights_check().await?,
            "ticket-ingest-loaded" => bench.ticket_ingest_loaded().await?,
            "event-latency" => bench.event_latency().await?,
            "event-replay" => bench.event_replay().await?,
            "idle-sockets" => bench.idle_sockets().await?,
            _ => bail!("unknown scenario {name}"),
        };
        if name == "floor-http" {
            floor = Some(row.rate);
        }
        failed |= row.errors > 0;
        row.print(floor.filter(|_| name != "floor-http"));
    }
    // This machine's speed drifts within minutes: the floor again at the end of a full run
    // shows how far the ratios above (to the first floor) may be off.
    if args.scenario.is_none() {
        // (after a second for the last scenario's sockets to close)
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut again = bench.floor_http().await?;
        failed |= again.errors > 0;
        again.name = "floor-http (end)";
        again.print(floor);
    }
    bench.stop().await;
    if failed {
        bail!("some requests failed: the figures above are not valid");
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Sends `request`; true if the answer was a 2xx.
pub(crate) async fn succeeds(request: reqwest::RequestBuilder) -> bool {
    request
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

/// Sends `request` and gives its JSON answer; anything but a 2xx is an error naming `what`.
async fn json_answer(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

/// The service under test: the `parkhub` binary built beside this one, so what is measured is
/// what ships (its allocator included), not a copy of it inside the load generator.
fn service_binary() -> anyhow::Result<std::path::PathBuf> {
    let path =
        std::env::current_exe()?.with_file_name(format!("parkhub{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "{} is missing: build both binaries first (cargo build --release)",
            path.display()
        );
    }
    Ok(path)
}

struct Bench {
    child: tokio::process::Child,
    base: String,
    store: Store,
    operator: String,
    client: reqwest::Client,
    duration: Duration,
    concurrency: usize,
    scale: f64,
    /// The service's resident memory right after it started.
    idle_rss_kib: u64,
    /// The lot tickets are ingested at, once created.
    ingest_lot: tokio::sync::OnceCell<()>,
    /// The rights-check data, once preloaded and taken in by the rights memory: its figures.
    preloaded: tokio::sync::OnceCell<Preloaded>,
}

/// What preloading the rights-check data took.
struct Preloaded {
    tickets: i64,
    permits: i64,
    stays: i64,
    load_secs: f64,
    /// When the service's rights memory had taken it in, and the service's memory then.
    memory: String,
    /// An enforcement officer's token, for checks.
    officer: String,
}

impl Bench {
    async fn start(database: &str, args: &Args) -> anyhow::Result<Self> {
        let store = Store::open(database, &StoreOptions::default()).await?;
        let operator = principals::find_or_create(&store, Role::Operator, "bench").await?;
        let (_, operator) = principals::issue_token(&store, operator.id).await?;
        // The load generator is one client with few tokens: no rate limit, room for every socket.
        let mut child = tokio::process::Command::new(service_binary()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(["--max-connections", "32", "--rate-limit", "0"])
            .args(["--max-sockets-per-principal", "1000000"])
            .env("PARKHUB_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        let base = loop {
            match lines.next_line().await? {
                Some(line) => {
                    if let Some(base) = line.strip_prefix("parkhub is listening on ") {
                        break base.trim().to_owned();
                    }
                }
                None => bail!("the service did not start"),
            }
        };
        // Whatever else it prints is read and dropped, so it can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()?;
        let bench = Self {
            child,
            base,
            store,
            operator,
            client,
            duration: Duration::from_secs_f64(args.duration),
            concurrency: args.concurrency,
            scale: args.scale,
            idle_rss_kib: 0,
            ingest_lot: tokio::sync::OnceCell::new(),
            preloaded: tokio::sync::OnceCell::new(),
        };
        bench.setup().await?;
        let mut bench = bench;
        bench.idle_rss_kib = bench.server_rss_kib();
        Ok(bench)
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body);
        json_answer(request, path).await
    }

    /// Lot 12: a car park (1/2) with a default rate; lot 13 for tickets.
    async fn setup(&self) -> anyhow::Result<()> {
        self.post(
            "/api/v1/admin/parking-lots",
            &self.operator,
            &json!({"id": 12, "name": "Bench", "zoneCode": 12, "facilityNo": 1, "carparkNo": 2, "capacity": 100000}),
        )
        .await?;
        let rate = json!({"name": "Standard", "currencyCode": "SEK", "freeMinutes": 15, "periodMinutes": 60, "pricePerPeriod": 2000, "default": true});
        let response = self
            .client
            .put(self.url("/api/v1/admin/parking-lots/12/rates/1"))
            .bearer_auth(&self.operator)
            .json(&rate)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("rate: {}", response.status());
        }
        Ok(())
    }

    async fn token(&self, role: Role, name: &str) -> anyhow::Result<String> {
        let principal = principals::find_or_create(&self.store, role, name).await?;
        Ok(principals::issue_token(&self.store, principal.id).await?.1)
    }

    /// Counts CPU time from now: the service's, and the PostgreSQL server's when it is the
    /// database (a meter of every `postgres` process here, so only meaningful on a local one).
    fn cpu_meter(&self) -> CpuMeter {
        let postgres = matches!(self.store.backend(), Backend::Postgres(_));
        CpuMeter::start(self.child.id(), postgres)
    }

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

    /// Times the service's rights memory was loaded whole so far.
    async fn memory_loads(&self) -> anyhow::Result<f64> {
        let text = self.metrics_text().await?;
        Ok(metric_value(&text, "parkhub_rights_memory_loads_total"))
    }

    /// Group commit's batches and the writes in them so far.
    async fn write_batches(&self) -> anyhow::Result<(f64, f64)> {
        let text = self.metrics_text().await?;
        Ok((
            metric_value(&text, "parkhub_write_batches_total"),
            metric_value(&text, "parkhub_write_batch_jobs_total"),
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

    /// The service's `/metrics`, as Prometheus text.
    async fn metrics_text(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    /// The service's own latency histogram of `GET route` from `/metrics`: (upper bound in
    /// seconds, requests so far at most that long), as Prometheus counts them.
    async fn service_histogram(&self, route: &str) -> anyhow::Result<Vec<(f64, u64)>> {
        let text = self.metrics_text().await?;
        let labels = format!("method=\"GET\",route=\"{route}\"}}");
        let mut buckets = Vec::new();
        for line in text.lines() {
            let Some(rest) =
                line.strip_prefix("parkhub_http_request_duration_seconds_bucket{le=\"")
            else {
                continue;
            };
            let Some((bound, rest)) = rest.split_once("\",") else {
                continue;
            };
            let Some(count) = rest.strip_prefix(labels.as_str()) else {
                continue;
            };
            buckets.push((bound.parse()?, count.trim().parse()?));
        }
        Ok(buckets)
    }

    fn server_rss_kib(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(|l| l.to_owned())
            })
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }

    async fn floor_http(&self) -> anyhow::Result<Row> {
        let url = self.url("/healthz");
        let cpu = self.cpu_meter();
        let (rate, latency, errors) = closed_loop(self.concurrency, self.duration, |_| {
            succeeds(self.client.get(&url))
        })
        .await;
        Ok(Row {
            name: "floor-http",
            rate,
            errors,
            notes: format!(
                "GET /healthz, {} concurrent; {}",
                self.concurrency,
                cpu.per_request(latency.len())
            ),
            latency: Some(latency),
        })
    }

    /// The rights-check data (1,000,000 tickets, 100,000 permits, 10,000 stays at full
    /// scale), preloaded once and waited for until the service's rights memory holds it.
    async fn preloaded(&self) -> anyhow::Result<&Preloaded> {
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

    async fn rights_check(&self) -> anyhow::Result<Row> {
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
        let busy = cores.busy();
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
        let floor_busy = cores.busy();
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

/// The value of the unlabelled metric `name` in Prometheus `text` (0 when absent).
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}
