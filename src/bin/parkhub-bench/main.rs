//! `parkhub-bench`: starts parkhub on a fresh database in a child process, prepares data, runs
//! the scenarios over loopback with a real HTTP/WebSocket client and HDR histograms, and prints
//! one table. Latency scenarios run at a constant arrival rate (open model): each request's
//! latency counts from when it was due, so a slow server cannot hide behind a slow client.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use parkhub::principals::{Role, store as principals};
use parkhub::store::{Backend, Store, StoreOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

mod database;
mod drive;
mod equipment;
mod events;
mod ingest;
mod listing;
mod load;
mod rights;

use database::fresh_database;
use drive::{BusyMeter, CpuMeter, Row, closed_loop};
use load::floor_commit;
use rights::Preloaded;

const SCENARIOS: [&str; 10] = [
    "floor-http",
    "floor-commit",
    "ticket-ingest",
    "rights-check",
    "ticket-list",
    "ticket-ingest-loaded",
    "event-latency",
    "event-replay",
    "idle-sockets",
    // Last: on PostgreSQL its burst of updates and events left the server busy with them
    // (vacuum, checkpoint) through the next scenario, whose latency tail it set (BENCHMARKS.md).
    "equipment-ingest",
];

/// More of the cores' time than this (percent) taken by the host during a scenario, and the
/// run says its figures are the host's as much as parkhub's.
const STOLEN_TOO_MUCH: f64 = 5.0;

/// Notes on `row` the host's share of the cores since `cores` started, and adds its name to
/// `host_busy` if that was more than [`STOLEN_TOO_MUCH`].
fn note_steal(row: &mut Row, cores: &BusyMeter, host_busy: &mut Vec<&'static str>) {
    if row
        .stolen_from(cores)
        .is_some_and(|stolen| stolen > STOLEN_TOO_MUCH)
    {
        host_busy.push(row.name);
    }
}

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
    /// Concurrent clients for the closed-loop scenarios (floor-http, ticket-ingest and the
    /// rights-check maximum).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
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
    let mut host_busy = Vec::new();
    for name in wanted {
        let cores = BusyMeter::start();
        let mut row = match name {
            "floor-http" => bench.floor_http().await?,
            "floor-commit" => floor_commit(database, args.duration).await?,
            "ticket-ingest" => bench.ticket_ingest().await?,
            "rights-check" => bench.rights_check().await?,
            "ticket-list" => bench.ticket_list().await?,
            "ticket-ingest-loaded" => bench.ticket_ingest_loaded().await?,
            "equipment-ingest" => bench.equipment_ingest().await?,
            "event-latency" => bench.event_latency().await?,
            "event-replay" => bench.event_replay().await?,
            "idle-sockets" => bench.idle_sockets().await?,
            _ => bail!("unknown scenario {name}"),
        };
        note_steal(&mut row, &cores, &mut host_busy);
        if name == "floor-http" {
            floor = Some(row.rate);
        }
        failed |= row.errors > 0;
        // A ratio to the floor means something for the closed loops at its concurrency only.
        row.print(floor.filter(|_| !matches!(name, "floor-http" | "ticket-list")));
    }
    // This machine's speed drifts within minutes: the floor again at the end of a full run
    // shows how far the ratios above (to the first floor) may be off.
    if args.scenario.is_none() {
        // (after a second for the last scenario's sockets to close)
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cores = BusyMeter::start();
        let mut again = bench.floor_http().await?;
        again.name = "floor-http (end)";
        note_steal(&mut again, &cores, &mut host_busy);
        failed |= again.errors > 0;
        again.print(floor);
    }
    if !host_busy.is_empty() {
        println!(
            "the host took more than {STOLEN_TOO_MUCH}% of the cores' time (steal) during {}: \
             those figures measured the host as much as parkhub",
            host_busy.join(", ")
        );
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
            concurrency: usize::from(args.concurrency),
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

    /// A POST of `body`, JSON written out as text, to `url` with `token`: a load generator's
    /// request (building a JSON value and serializing it cost the load generator, on the
    /// service's cores, about a tenth more a request; BENCHMARKS.md).
    fn post_text(&self, url: &str, token: &str, body: String) -> reqwest::RequestBuilder {
        self.client
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
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

    /// Times the service's rights memory was loaded whole so far.
    async fn memory_loads(&self) -> anyhow::Result<f64> {
        let text = self.metrics_text().await?;
        Ok(metric_value(&text, "parkhub_rights_memory_loads_total"))
    }

    /// Group commit's batches, the writes in them, and the seconds they took the database, so
    /// far.
    async fn write_batches(&self) -> anyhow::Result<(f64, f64, f64)> {
        let text = self.metrics_text().await?;
        Ok((
            metric_value(&text, "parkhub_write_batches_total"),
            metric_value(&text, "parkhub_write_batch_jobs_total"),
            metric_value(&text, "parkhub_write_batch_duration_seconds_sum"),
        ))
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
}

/// The value of the unlabelled metric `name` in Prometheus `text` (0 when absent).
fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}
