//! Assembling the service: state, router, middleware, and `serve`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::events::EventBus;
use crate::http::AppError;
use crate::http::limits::{RateLimit, RateLimiter, SocketLimiter};
use crate::http::middleware::{self, REQUEST_ID_HEADER};
use crate::ops::metrics::Metrics;
use crate::store::{Store, StoreOptions};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the HTTP service behaves; the database is configured by [`Store`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database_url: String,
    pub store: StoreOptions,
    /// A request still running after this long is abandoned with 408.
    pub request_timeout: Duration,
    /// How often an idle TransactionMonitor socket gets a Heartbeat frame.
    pub heartbeat_interval: Duration,
    /// How long events are kept for subscribers that are away.
    pub event_retention: Duration,
    /// How often events past their retention are removed.
    pub retention_interval: Duration,
    /// A subscriber whose buffer stays full this long is disconnected (its events stay queued).
    pub slow_consumer_timeout: Duration,
    /// Frames buffered per socket.
    pub socket_buffer: usize,
    /// Plates in check records, tickets and stays older than this are pseudonymised.
    pub plate_retention: Duration,
    /// How often that is done.
    pub privacy_interval: Duration,
    /// How far back the rights memory keeps rights that ended: a check about an
    /// earlier instant (less the lot's grace) reads the database.
    pub rights_memory_keep: Duration,
    /// Requests per second per token (`None`: no limit).
    pub rate_limit: Option<RateLimit>,
    /// Open TransactionMonitor sockets per principal.
    pub max_sockets_per_principal: usize,
    /// Serve HTTPS with this certificate and key (plain HTTP when `None`).
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and private key in PEM files, read and checked.
#[derive(Clone)]
pub struct TlsFiles {
    config: axum_server::tls_rustls::RustlsConfig,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsFiles")
    }
}

impl TlsFiles {
    pub async fn load(
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        // rustls needs one process-wide crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| {
                format!(
                    "could not use the TLS certificate {} with the key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        Ok(Self { config })
    }
}

impl ServeConfig {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            store: StoreOptions::default(),
            request_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(30),
            event_retention: Duration::from_secs(30 * 24 * 3600),
            retention_interval: Duration::from_secs(3600),
            slow_consumer_timeout: Duration::from_secs(10),
            socket_buffer: 256,
            plate_retention: Duration::from_secs(90 * 24 * 3600),
            privacy_interval: Duration::from_secs(3600),
            rights_memory_keep: Duration::from_secs(2 * 3600),
            rate_limit: None,
            max_sockets_per_principal: 100,
            tls: None,
        }
    }
}

/// What every handler can reach: one shared allocation, since axum clones the state for every
/// request and every middleware layer (a dozen reference counts each time, when it was a
/// struct of handles).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServeConfig>,
    pub events: EventBus,
    pub rate_limiter: Arc<RateLimiter>,
    pub sockets: SocketLimiter,
    pub breaker: Arc<crate::http::breaker::Breaker>,
    pub check_log: crate::rights::log::CheckLog,
    /// Lists of valid plates decided lately, for the pages after the first.
    pub plate_lists: Arc<crate::rights::snapshot::Snapshots>,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "parkhub",
        description = "The central system of a parking operator: short-time tickets, permits, \
                       barrier car parks, parking rights and live transaction events."
    ),
    tags(
        (name = "tickets", description = "Short-time tickets pushed by mobile-payment providers"),
        (name = "admin", description = "Operator set-up: lots, providers, tokens"),
        (name = "permits", description = "Tenants giving permits to their people (the permit seed)"),
        (name = "permits-admin", description = "Operator set-up of tenants, permit definitions, allocations, end users"),
        (name = "carparks", description = "Barrier car parks: rates, equipment, identifiers, entries and exits"),
        (name = "events", description = "The TransactionMonitor WebSocket"),
        (name = "rights", description = "Parking rights for enforcement, and the check log"),
        (name = "console", description = "What the operator console needs: per-lot figures, searches, occupancy over time"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

/// The router and the OpenAPI document of exactly the routes it serves.
pub fn router(state: AppState) -> (Router, OpenApi) {
    use utoipa::OpenApi as _;
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::ops::routes())
        .merge(crate::lots::admin::routes())
        .merge(crate::principals::admin::routes())
        .merge(crate::principals::rotation::routes())
        .merge(crate::tickets::routes())
        .merge(crate::permits::routes())
        .merge(crate::carparks::routes())
        .merge(crate::events::socket::routes())
        .merge(crate::events::connect::routes())
        .merge(crate::console::routes())
        .merge(crate::rights::routes())
        .split_for_parts();
    crate::http::openapi::add_shared_responses(&mut doc);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let access = Arc::new(crate::http::openapi::access_table(&doc));
    let spec = Arc::new(doc.clone());
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let app = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        )
        .fallback(|| async { AppError::NotFound("no such endpoint".into()) })
        // Router::layer wraps what is already there: the last layer added runs first.
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), access),
            crate::http::auth::authorize,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::breaker::fail_fast,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::record_metrics,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    route = %middleware::route_of(request),
                    method = %request.method(),
                    request_id = %id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .with_state(state);
    (app, doc)
}

/// Opens the database (running migrations) and serves until `shutdown` resolves.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::open(&config.database_url, &config.store).await?;
    serve_with_store(store, config, listener, shutdown).await
}

/// Serves an already opened database until `shutdown` resolves, then finishes what is in flight.
pub async fn serve_with_store(
    store: Store,
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (events, mut sockets_done) = EventBus::new(stop_rx);
    crate::events::bus::spawn_listener(&store, events.clone());
    crate::events::bus::spawn_poller(&store, events.clone());
    crate::events::spawn_retention(
        store.clone(),
        events.clone(),
        config.event_retention,
        config.retention_interval,
    );
    crate::rights::privacy::spawn(
        store.clone(),
        events.clone(),
        config.plate_retention,
        config.privacy_interval,
    );
    crate::tickets::store::counts::spawn_folding(&store, events.shutdown());
    store.caches().rights.clone().spawn(
        store.clone(),
        config.rights_memory_keep,
        events.shutdown(),
    );
    let rate_limiter = Arc::new(RateLimiter::new(config.rate_limit));
    spawn_forget_idle(rate_limiter.clone(), events.shutdown());
    let metrics = Arc::new(Metrics::new());
    let rights = &store.caches().rights;
    metrics.count_rights_sources(
        rights.from_memory.clone(),
        rights.from_database.clone(),
        rights.plates_held.clone(),
        rights.plates_unknown.clone(),
        rights.loads.clone(),
    );
    metrics.count_write_batches(store.batch_counts());
    let to_index = prometheus_client::metrics::gauge::Gauge::default();
    metrics.count_check_log(to_index.clone());
    let state = AppState(Arc::new(Shared {
        store: store.clone(),
        metrics,
        sockets: SocketLimiter::new(config.max_sockets_per_principal),
        breaker: Arc::default(),
        check_log: crate::rights::log::CheckLog::spawn(store.clone(), to_index),
        plate_lists: Default::default(),
        config: Arc::new(config),
        events,
        rate_limiter,
    }));
    let check_log = state.check_log.clone();
    let tls = state.config.tls.clone();
    let (app, _) = router(state);
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "parkhub listening");
    // On shutdown, open sockets are told to close first, so the server can drain.
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    match tls {
        None => {
            // Served as a made service: a Router served as is rebuilds every route (clones of
            // all their layered services) for each connection it accepts, which made a burst of
            // new connections cost the accepting thread about a third of a millisecond each.
            axum::serve(listener, app.into_make_service())
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Some(tls) => {
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(None);
            });
            axum_server::from_tcp_rustls(listener.into_std()?, tls.config)?
                .handle(handle)
                .serve(app.into_make_service())
                .await?
        }
    }
    // Upgraded sockets outlive their HTTP connections: let them say goodbye before the
    // database goes away.
    if tokio::time::timeout(Duration::from_secs(10), sockets_done.recv())
        .await
        .is_err()
    {
        tracing::warn!("some sockets did not close within 10 s");
    }
    if tokio::time::timeout(Duration::from_secs(10), check_log.sync())
        .await
        .is_err()
    {
        tracing::warn!("the check log was not written within 10 s");
    }
    store.close().await;
    tracing::info!("parkhub stopped");
    Ok(())
}

/// Once a minute until shutdown, forgets rate-limit state of tokens that went quiet.
fn spawn_forget_idle(limiter: Arc<RateLimiter>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => limiter.forget_idle(),
                _ = crate::events::bus::stopping(&mut shutdown) => break,
            }
        }
    });
}
