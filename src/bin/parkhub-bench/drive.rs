//! Driving load: closed loops (the most the service does) and open loops (a constant arrival
//! rate, each request timed from when it was due), and the table's rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One line of the table.
pub struct Row {
    pub name: &'static str,
    pub rate: f64,
    pub latency: Option<Histogram<u64>>,
    pub errors: u64,
    pub notes: String,
}

impl Row {
    /// Adds to the notes how much of the cores' time the host took since `cores` started, and
    /// returns that share in percent (if measured).
    pub fn stolen_from(&mut self, cores: &BusyMeter) -> Option<f64> {
        let shares = cores.shares();
        self.notes = format!("{}; {}", self.notes, stolen_text(shares));
        shares.map(|(_, stolen)| stolen)
    }

    pub fn print(&self, floor: Option<f64>) {
        let ms = |q: f64| {
            self.latency
                .as_ref()
                .map_or("-".to_owned(), |h| format!("{:.2}", millis(h, q)))
        };
        let mut notes = self.notes.clone();
        if let Some(floor) = floor
            && self.rate > 0.0
            && self.latency.is_some()
        {
            notes = format!("{:.0}% of floor-http; {notes}", 100.0 * self.rate / floor);
        }
        println!(
            "{:<20} {:>12.0} {:>10} {:>10} {:>10} {:>8}  {}",
            self.name,
            self.rate,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            self.errors,
            notes
        );
    }
}

/// The latency at quantile `q` of a histogram of microseconds, in milliseconds.
pub fn millis(latency: &Histogram<u64>, q: f64) -> f64 {
    latency.value_at_quantile(q) as f64 / 1000.0
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `workers` clients each sending one request after another for `duration`: the most the
/// service does. Returns requests/s, latency and failures.
pub async fn closed_loop<F, Fut>(
    workers: usize,
    duration: Duration,
    make: F,
) -> (f64, Histogram<u64>, u64)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let runs = (0..workers).map(|w| {
        let make = &make;
        async move {
            let mut latency = histogram();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                if !make(w).await {
                    errors += 1;
                }
                latency
                    .record((sent.elapsed().as_micros() as u64).max(1))
                    .ok();
            }
            (latency, errors)
        }
    });
    let results = futures_util::future::join_all(runs).await;
    let secs = started.elapsed().as_secs_f64();
    let mut total = histogram();
    let mut errors = 0;
    for (h, e) in results {
        total.add(&h).ok();
        errors += e;
    }
    (total.len() as f64 / secs, total, errors)
}

/// The most requests an open loop has in flight: the connections of a fleet of clients.
const MAX_IN_FLIGHT: usize = 256;

/// The pacer sleeps at least this long between wake-ups, then sends every request due: up to
/// this much is added to a latency measured, counted in it.
const PACE_GRAIN: Duration = Duration::from_micros(200);

/// Requests due at a constant `rate` for `duration`, each timed from when it was due; `make`
/// gives request `i`, to be sent on `client`. Errors only if the connections cannot be opened.
///
/// It opens `client`'s [`MAX_IN_FLIGHT`] connections first, with GET `warm`, as a fleet of
/// clients keeps its own: opened on demand, a moment's backlog had the client open a few
/// hundred connections at once, each an accept and a handshake on the cores the requests
/// waited for, and the backlog fed itself (BENCHMARKS.md).
///
/// A thread of its own paces the requests and spawns them onto the runtime: tokio's timer
/// wakes in whole milliseconds, which would add up to a millisecond to every latency measured
/// here, and relaying each through an async task first cost another thread wake-up a request
/// on the cores the service shares. It wakes at most every [`PACE_GRAIN`] and spawns every
/// request due by then (each still timed from when it was due): a wake-up a request cost the
/// load generator about a fifth of its CPU at 16,000 requests/s (BENCHMARKS.md).
pub async fn open_loop<F, Fut>(
    client: &reqwest::Client,
    rate: f64,
    duration: Duration,
    warm: &str,
    make: F,
) -> anyhow::Result<(Histogram<u64>, u64)>
where
    F: Fn(u64) -> Fut + Sync,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let opened = futures_util::future::join_all(
        (0..MAX_IN_FLIGHT).map(|_| crate::succeeds(client.get(warm))),
    )
    .await;
    anyhow::ensure!(
        opened.iter().all(|ok| *ok),
        "GET {warm} failed while opening the open loop's connections"
    );
    let total = (rate * duration.as_secs_f64()) as u64;
    let runtime = tokio::runtime::Handle::current();
    // At most this many requests in flight (so connections) at once; a request that waits for
    // its turn still counts that wait, timed from when it was due.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let pace = || {
        let start = Instant::now();
        let due = |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
        let mut tasks = Vec::with_capacity(total as usize);
        let mut i = 0;
        while i < total {
            let now = Instant::now();
            while i < total && due(i) <= now {
                let request = make(i);
                let in_flight = in_flight.clone();
                let was_due = due(i);
                tasks.push(runtime.spawn(async move {
                    let ok = match in_flight.acquire_owned().await {
                        Ok(_turn) => request.await,
                        Err(_) => false,
                    };
                    (was_due.elapsed().as_micros() as u64, ok)
                }));
                i += 1;
            }
            if i < total {
                std::thread::sleep((due(i) - now).max(PACE_GRAIN));
            }
        }
        tasks
    };
    // The pacer borrows `make`; this task waits for it (the runtime's workers run the requests).
    let tasks = match tokio::task::block_in_place(|| {
        std::thread::scope(|scope| scope.spawn(pace).join())
    }) {
        Ok(tasks) => tasks,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let mut latency = histogram();
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((us, ok)) => {
                latency.record(us.max(1)).ok();
                if !ok {
                    errors += 1;
                }
            }
            Err(_) => errors += 1,
        }
    }
    Ok((latency, errors))
}

/// Clock ticks per second in `/proc/<pid>/stat`: USER_HZ, which Linux reports to user space
/// as 100 whatever its internal tick rate.
const USER_HZ: f64 = 100.0;

/// The CPU time (user and system, all threads) process `pid` has used so far, in seconds;
/// `None` where `/proc` is not there.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((user + system) as f64 / USER_HZ)
}

/// The CPU time each PostgreSQL server process on this machine has used so far (their command
/// name is `postgres`), by process id; `None` if there is none.
fn postgres_cpu_seconds() -> Option<HashMap<u32, f64>> {
    let mut each = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() == "postgres"
            && let Some(seconds) = cpu_seconds(pid)
        {
            each.insert(pid, seconds);
        }
    }
    (!each.is_empty()).then_some(each)
}

/// The CPU time PostgreSQL's processes used between two readings: each live one's since the
/// first reading (or since it began). A process that ended in between is lost, so this is at
/// least what the server spent: summing the readings instead, a connection that closed
/// mid-run took its whole past with it, and the figure could even fall.
fn postgres_cpu_between(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, now)| now - before.get(pid).copied().unwrap_or(0.0).min(*now))
        .sum()
}

/// The machine's CPU time so far from `/proc/stat`, in clock ticks.
#[derive(Clone, Copy)]
struct Ticks {
    /// Run by this machine's own threads (user, system, interrupts).
    busy: u64,
    /// Taken by the host for something else while a thread here was ready to run (steal).
    stolen: u64,
    all: u64,
}

/// The first line of `/proc/stat`, summed: idle and waiting for I/O are neither busy nor
/// stolen (guest time is counted in user time already).
fn machine_ticks() -> Option<Ticks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    ticks_of(stat.lines().next()?)
}

fn ticks_of(line: &str) -> Option<Ticks> {
    let times: Vec<u64> = line
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    let all: u64 = times.iter().take(8).sum();
    let idle = times.get(3)? + times.get(4)?;
    let stolen = times.get(7).copied().unwrap_or(0);
    Some(Ticks {
        busy: all - idle - stolen,
        stolen,
        all,
    })
}

/// How the machine's cores were used over a measurement, whoever used them.
pub struct BusyMeter(Option<Ticks>);

impl BusyMeter {
    pub fn start() -> Self {
        Self(machine_ticks())
    }

    /// The busy and stolen shares of the cores' time since the start, in percent.
    fn shares(&self) -> Option<(f64, f64)> {
        let (t0, t1) = self.0.zip(machine_ticks())?;
        let all = t1.all.checked_sub(t0.all).filter(|all| *all > 0)? as f64;
        let share = |a: u64, b: u64| a.saturating_sub(b) as f64 * 100.0 / all;
        Some((share(t1.busy, t0.busy), share(t1.stolen, t0.stolen)))
    }

    /// "cores N% busy" since the start: this machine's threads, not the host's steal.
    pub fn busy(&self) -> String {
        busy_text(self.shares())
    }

    /// [`Self::busy`] and the host's share of the cores' time (see [`stolen_text`]), from one
    /// reading.
    pub fn busy_and_stolen(&self) -> String {
        let shares = self.shares();
        format!("{}, {}", busy_text(shares), stolen_text(shares))
    }
}

fn busy_text(shares: Option<(f64, f64)>) -> String {
    match shares {
        Some((busy, _)) => format!("cores {busy:.0}% busy"),
        None => "cores' use not measured".to_owned(),
    }
}

/// "the host took N% of the cores' time (steal)": a virtual machine's cores run something
/// else of the host's meanwhile, and every figure measured then is slower than this machine
/// can do.
fn stolen_text(shares: Option<(f64, f64)>) -> String {
    match shares {
        Some((_, stolen)) => format!("the host took {stolen:.0}% of the cores' time (steal)"),
        None => "steal not measured".to_owned(),
    }
}

/// CPU time the service and the load generator (and a PostgreSQL server on the same machine)
/// spend per request over a measurement: where a scenario's time goes on a machine they all
/// share, which requests/s alone does not say.
pub struct CpuMeter {
    service: u32,
    started: Option<(f64, f64)>,
    database: Option<HashMap<u32, f64>>,
}

impl CpuMeter {
    /// Starts counting for the service's process `service`, and for the local PostgreSQL
    /// server's processes if `postgres`.
    pub fn start(service: Option<u32>, postgres: bool) -> Self {
        let service = service.unwrap_or(0);
        let started = cpu_seconds(service).zip(cpu_seconds(std::process::id()));
        let database = postgres.then(postgres_cpu_seconds).flatten();
        Self {
            service,
            started,
            database,
        }
    }

    /// "service N µs CPU/request, load generator M" for `requests` done since the start.
    pub fn per_request(&self, requests: u64) -> String {
        let now = cpu_seconds(self.service).zip(cpu_seconds(std::process::id()));
        match (self.started, now) {
            (Some((service0, own0)), Some((service1, own1))) if requests > 0 => {
                let us = |s: f64| s * 1e6 / requests as f64;
                let database = match self.database.as_ref().zip(postgres_cpu_seconds()) {
                    Some((db0, db1)) => format!(
                        ", PostgreSQL server {:.1} µs",
                        us(postgres_cpu_between(db0, &db1))
                    ),
                    None => String::new(),
                };
                format!(
                    "CPU/request: service {:.1} µs, load generator {:.1} µs{database}",
                    us(service1 - service0),
                    us(own1 - own0)
                )
            }
            _ => "CPU/request not measured".to_owned(),
        }
    }
}

/// How long requests took inside the service between two readings of its histogram: "in the
/// service p99 <= X ms, p99.9 <= Y ms", bucket bounds, the rest of a request's time being
/// spent outside the handlers (connection, scheduling, the load generator).
pub fn inside_service(before: &[(f64, u64)], after: &[(f64, u64)]) -> String {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .map(|&(bound, n)| {
            let earlier = before.iter().find(|b| b.0 == bound).map_or(0, |b| b.1);
            (bound, n.saturating_sub(earlier))
        })
        .collect();
    let total = counts.last().map_or(0, |c| c.1);
    let bound = |q: f64| {
        counts
            .iter()
            .find(|c| c.1 as f64 >= q * total as f64)
            .map_or(f64::INFINITY, |c| c.0 * 1000.0)
    };
    if total == 0 {
        return "in the service: not measured".to_owned();
    }
    format!(
        "in the service p99 <= {} ms, p99.9 <= {} ms",
        bound(0.99),
        bound(0.999)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_neither_busy_nor_idle() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let ticks = ticks_of("cpu  100 5 40 300 7 2 3 50 20 0").expect("a cpu line");
        assert_eq!((ticks.busy, ticks.stolen, ticks.all), (150, 50, 507));
        assert!(
            ticks_of("cpu0 1 2 3 4 5 6 7 8").is_none(),
            "only the machine's line"
        );
    }

    #[test]
    fn postgres_time_counts_live_processes_since_the_first_reading_and_never_falls() {
        let before = HashMap::from([(10, 5.0), (11, 100.0), (12, 1.0)]);
        // 10 used 2 s more, 11 ended, 13 began and used 0.5 s; 12's id now names a younger one.
        let after = HashMap::from([(10, 7.0), (12, 0.2), (13, 0.5)]);
        let spent = postgres_cpu_between(&before, &after);
        assert!((spent - 2.5).abs() < 1e-9, "{spent}");
    }
}
