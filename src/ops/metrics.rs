//! Prometheus metrics, one registry per running service (so tests never share counters).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    plate_lists: Counter,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("parkhub");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        let plate_lists = Counter::default();
        registry.register(
            "valid_plate_lists_decided",
            "valid-plates lists decided, each from the rights of a whole lot or zone",
            plate_lists.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            plate_lists,
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the checks answered from the rights memory and those that read the database.
    pub fn count_rights_sources(
        &self,
        from_memory: Counter,
        from_database: Counter,
        plates_held: Gauge,
        plates_unknown: Gauge,
        loads: Counter,
    ) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(
                "rights_memory_plates",
                "plates the rights memory holds rights for",
                plates_held,
            );
            registry.register(
                "rights_memory_unknown_plates",
                "plates whose rights changed, read again by the first check that asks (or in bulk once many are)",
                plates_unknown,
            );
            registry.register(
                "rights_memory_loads",
                "times the rights memory was loaded whole: at start, after more changes than it reads plate by plate, when too many plates would be left to read again, or after a change shared by many plates",
                loads,
            );
            registry.register(
                "rights_answered_from_memory",
                "rights looked up in the rights memory (one per lot a check asks about)",
                from_memory,
            );
            registry.register(
                "rights_read_from_database",
                "rights looked up in the database: the memory was loading, behind, or did not keep the instant asked about",
                from_database,
            );
        }
    }

    /// Counts group commit's batches and the writes they held.
    pub fn count_write_batches(&self, counts: &crate::store::BatchCounts) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(
                "write_batches",
                "write batches group commit ran, each one transaction and one commit",
                counts.batches.clone(),
            );
            registry.register(
                "write_batch_jobs",
                "writes in those batches: ticket upserts, and on SQLite the check log's flushes",
                counts.jobs.clone(),
            );
            registry.register(
                "write_batch_duration_seconds",
                "how long each of those batches took the database, from its first statement until its commit (with SQLite's fsync) returned",
                counts.seconds.clone(),
            );
        }
    }

    /// Shows the check log's rows waiting for its plate index (see `rights::log`).
    pub fn count_check_log(&self, to_index: Gauge) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(
                "check_log_rows_to_index",
                "parking-right checks written while checks were busy and not yet in the plate index (found by plate all the same)",
                to_index,
            );
        }
    }

    /// A valid-plates list was decided (not taken from the kept ones).
    pub fn plate_list_decided(&self) {
        self.plate_lists.inc();
    }

    pub fn render(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .map_err(|_| anyhow::anyhow!("metrics registry lock poisoned"))?;
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}
