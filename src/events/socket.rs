//! `GET /api/TransactionMonitor`: the WebSocket on which providers (their identifiers' events)
//! and operators (all events) receive TransactionStarted / TransactionCompleted, oldest first,
//! from their subscription's stored position, then live, with no gap or duplicate at the
//! hand-over: backlog and live events come from one cursor over the outbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::connect::SocketCaller;
use super::{frames, store};
use crate::app::AppState;
use crate::http::error::ErrorBody;
use crate::http::{AppError, FieldErrors, Principal, QueryMap};
use crate::principals::Role;

/// The subscriber could not keep up; its events stay queued.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// The resume point is unknown or older than the retained events.
pub const CLOSE_RESUME_POINT_GONE: u16 = 4410;
const BATCH: i64 = 500;
const PERSIST: Duration = Duration::from_millis(250);
/// A single frame that cannot be written for this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(transaction_monitor))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    /// Delivered once written to the open socket (the vendor's behaviour).
    Auto,
    /// Delivered once the client sends `{"Ack":"<EventID>"}` (cumulative).
    Explicit,
}

/// Where the client asked to start.
#[derive(Debug, Clone)]
enum Resume {
    Subscription,
    After(String),
    Oldest,
    Latest,
}

struct Params {
    ack: AckMode,
    subscription: String,
    start: Resume,
}

fn params(query: &QueryMap) -> Result<Params, AppError> {
    let mut errors = FieldErrors::new();
    let ack = match query.get("ack") {
        None | Some("auto") => AckMode::Auto,
        Some("explicit") => AckMode::Explicit,
        Some(_) => {
            errors.add("ack", "must be auto or explicit");
            AckMode::Auto
        }
    };
    let subscription = query.get("subscription").unwrap_or("default").to_owned();
    if subscription.is_empty()
        || subscription.len() > 64
        || !subscription
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        errors.add(
            "subscription",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        );
    }
    let start = match query.get("after") {
        None => Resume::Subscription,
        Some("oldest") => Resume::Oldest,
        Some("latest") => Resume::Latest,
        Some(id) if !id.is_empty() && id.len() <= 100 => Resume::After(id.to_owned()),
        Some(_) => {
            errors.add("after", "must be an EventID, 'oldest' or 'latest'");
            Resume::Subscription
        }
    };
    errors.into_result()?;
    Ok(Params {
        ack,
        subscription,
        start,
    })
}

/// Subscribe to transaction events (WebSocket upgrade).
///
/// Frames: TransactionStarted, TransactionCompleted (the seed's fields plus `EventType`),
/// `{"Heartbeat":"..."}` every 30 s, and `{"Error":"...","Message":"..."}` before a close
/// with code 4410 (resume point unknown or expired) or 4008 (too slow; events stay queued).
/// With `ack=explicit`, send `{"Ack":"<EventID>"}` (cumulative).
#[utoipa::path(get, path = "/api/TransactionMonitor", tag = "events",
    params(
        ("ack" = Option<String>, Query, description = "`auto` (default): delivered once written; `explicit`: once acknowledged"),
        ("subscription" = Option<String>, Query, description = "the consumer's name (default `default`); each keeps its own position"),
        ("after" = Option<String>, Query, description = "replay from just after this EventID; or `oldest` / `latest` (settled before the 101: every event committed after it is sent)"),
        ("ticket" = Option<String>, Query, description = "instead of the Authorization header (browsers): a connect ticket from POST /api/v1/ws-tickets"),
    ),
    responses(
        (status = 101, description = "switching to the WebSocket protocol"),
        (status = 401, description = "missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "not a provider or operator", body = ErrorBody),
        (status = 422, description = "invalid query parameter", body = ErrorBody),
        (status = 429, description = "too many requests, or too many open sockets for this principal", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn transaction_monitor(
    State(state): State<AppState>,
    SocketCaller(who): SocketCaller,
    query: QueryMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    who.require(&[Role::Provider, Role::Operator])?;
    let params = params(&query)?;
    let permit = state.sockets.acquire(who.id)?;
    // Where the socket starts is settled before the 101, so `after=latest` means every event
    // committed once the client holds its socket, not once the socket's task got round to
    // asking (events committed in between were never sent).
    let start = start_position(&state, &who, &params).await?;
    // Subscribers send little (acks): small buffers keep an idle socket cheap.
    let upgrade = upgrade.read_buffer_size(1024).write_buffer_size(0);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _permit = permit;
        if let Err(err) = run(socket, state, who, params, start).await {
            tracing::warn!(error = %err, "TransactionMonitor socket ended with an error");
        }
    }))
}

enum Outgoing {
    Frame { text: String, seq: Option<i64> },
    Close { code: u16, reason: &'static str },
}

/// Owns the socket's sending half: writes frames, records the last event written, closes.
/// A requested abort (slow consumer) skips whatever is still queued: once the frame being
/// written is through, the close frame goes next.
async fn writer(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Outgoing>,
    written: Arc<AtomicI64>,
    abort: oneshot::Receiver<(u16, &'static str)>,
) {
    let mut abort = Some(abort);
    loop {
        let outgoing = tokio::select! {
            biased;
            Some((code, reason)) = aborted(&mut abort) => Outgoing::Close { code, reason },
            next = frames.recv() => match next {
                Some(outgoing) => outgoing,
                None => return,
            },
        };
        match outgoing {
            Outgoing::Frame { text, seq } => {
                let sent = tokio::time::timeout(
                    WRITE_TIMEOUT,
                    sink.send(Message::Text(Utf8Bytes::from(text))),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
                if let Some(seq) = seq {
                    written.fetch_max(seq, Ordering::SeqCst);
                }
            }
            Outgoing::Close { code, reason } => {
                let _ =
                    tokio::time::timeout(WRITE_TIMEOUT, close_frame(&mut sink, code, reason)).await;
                return;
            }
        }
    }
}

/// Resolves with the abort request; never resolves once the requester is gone without one.
async fn aborted(
    abort: &mut Option<oneshot::Receiver<(u16, &'static str)>>,
) -> Option<(u16, &'static str)> {
    match abort {
        Some(receiver) => match receiver.await {
            Ok(request) => Some(request),
            Err(_) => {
                *abort = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

async fn close_frame(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &'static str,
) -> Result<(), axum::Error> {
    sink.send(Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    })))
    .await
}

struct Connection {
    frames: mpsc::Sender<Outgoing>,
    abort: Option<oneshot::Sender<(u16, &'static str)>>,
    send_timeout: Duration,
}

enum Sent {
    Ok,
    /// The writer is gone (the socket closed).
    Gone,
}

impl Connection {
    /// Queues a frame; a subscriber whose buffer stays full for the send timeout is cut off.
    async fn send(&mut self, text: String, seq: Option<i64>) -> Sent {
        match tokio::time::timeout(
            self.send_timeout,
            self.frames.send(Outgoing::Frame { text, seq }),
        )
        .await
        {
            Ok(Ok(())) => Sent::Ok,
            Ok(Err(_)) => Sent::Gone,
            Err(_) => {
                tracing::info!("TransactionMonitor subscriber too slow; disconnecting");
                if let Some(abort) = self.abort.take() {
                    let _ = abort.send((CLOSE_SLOW_CONSUMER, "slow consumer: events stay queued"));
                }
                Sent::Gone
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = self.frames.send(Outgoing::Close { code, reason }).await;
    }

    async fn refuse(&mut self, error: &str, message: &str, code: u16, reason: &'static str) {
        if let Sent::Ok = self.send(frames::error(error, message), None).await {
            self.close(code, reason).await;
        }
    }
}

/// Where a socket starts: just after this event number, or refused with an Error frame and a
/// close (the resume point is unknown or gone).
enum Start {
    At(i64),
    Refused {
        error: &'static str,
        message: String,
        reason: &'static str,
    },
}

/// The subscription's position (created if new), or the one the client asked for, which
/// then becomes the subscription's position.
async fn start_position(
    state: &AppState,
    who: &Principal,
    params: &Params,
) -> Result<Start, AppError> {
    let provider = (who.role == Role::Provider).then_some(who.id);
    let pruned = store::pruned_through(&state.store).await?;
    let (stored, new) =
        store::subscription(&state.store, who.id, &params.subscription, pruned).await?;
    let cursor = match &params.start {
        Resume::Subscription => stored,
        Resume::Oldest => pruned,
        Resume::Latest => store::latest(&state.store).await?,
        Resume::After(event_id) => match store::seq_of(&state.store, event_id, provider).await? {
            Some(seq) => seq,
            None => {
                return Ok(Start::Refused {
                    error: "resume_point_unknown",
                    message: format!(
                        "no event {event_id} is retained for you: it never existed or is older than the retention period; reconnect with after=oldest to accept the gap"
                    ),
                    reason: "resume point unknown",
                });
            }
        },
    };
    if cursor < pruned && !new {
        return Ok(Start::Refused {
            error: "resume_point_expired",
            message: "events after your position were removed by retention; reconnect with after=oldest to accept the gap".into(),
            reason: "resume point expired",
        });
    }
    if !matches!(params.start, Resume::Subscription) {
        store::reset_position(&state.store, who.id, &params.subscription, cursor).await?;
    }
    Ok(Start::At(cursor))
}

async fn run(
    socket: WebSocket,
    state: AppState,
    who: Principal,
    params: Params,
    start: Start,
) -> Result<(), AppError> {
    let config = state.config.clone();
    let provider = (who.role == Role::Provider).then_some(who.id);
    let (sink, mut stream) = socket.split();
    let (frames_tx, frames_rx) = mpsc::channel(config.socket_buffer.max(1));
    let (abort_tx, abort_rx) = oneshot::channel();
    let written = Arc::new(AtomicI64::new(0));
    let writer = tokio::spawn(writer(sink, frames_rx, written.clone(), abort_rx));
    let mut conn = Connection {
        frames: frames_tx,
        abort: Some(abort_tx),
        send_timeout: config.slow_consumer_timeout,
    };
    let mut cursor = match start {
        Start::At(cursor) => cursor,
        Start::Refused {
            error,
            message,
            reason,
        } => {
            conn.refuse(error, &message, CLOSE_RESUME_POINT_GONE, reason)
                .await;
            return finish(writer, conn).await;
        }
    };
    written.store(cursor, Ordering::SeqCst);
    let mut acked = cursor;
    // In auto mode the position follows what was written, saved in the background so that a
    // busy writer connection never holds up the frames.
    let persister = (params.ack == AckMode::Auto).then(|| {
        spawn_persister(
            state.store.clone(),
            who.id,
            params.subscription.clone(),
            written.clone(),
            cursor,
        )
    });

    let mut latest = state.events.subscribe();
    let mut shutdown = state.events.shutdown();
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + config.heartbeat_interval,
        config.heartbeat_interval,
    );

    // Every event up to `seen` has been looked at (and sent, if it is this subscriber's). What
    // follows comes from the bus when this process committed it, else from the database
    // (another instance's events, announced by NOTIFY or by the bus's once-a-second poll).
    let mut seen = cursor;
    let mut ask_database = true;
    'serve: loop {
        let from_bus = if ask_database {
            None
        } else {
            state.events.since_settled(seen).await
        };
        let (events, full) = match from_bus {
            Some((events, through)) => {
                seen = through;
                let mine = events
                    .iter()
                    .filter(|e| provider.is_none() || e.provider_id == provider)
                    .map(|e| (e.seq, e.payload.clone()))
                    .collect::<Vec<_>>();
                (mine, false)
            }
            None => {
                let fetched = store::fetch_after(&state.store, seen, provider, BATCH).await?;
                seen = fetched.through;
                let full = fetched.events.len() as i64 == BATCH;
                let events = fetched.events.into_iter().map(|e| (e.seq, e.payload));
                (events.collect(), full)
            }
        };
        for (seq, payload) in events {
            match conn.send(payload, Some(seq)).await {
                Sent::Ok => cursor = seq,
                Sent::Gone => break 'serve,
            }
        }
        ask_database = full;
        if full {
            continue;
        }
        tokio::select! {
            _ = latest.changed() => {}
            _ = heartbeat.tick() => {
                if let Sent::Gone = conn.send(frames::heartbeat(Timestamp::now()), None).await {
                    break 'serve;
                }
            }
            message = stream.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break 'serve,
                Some(Ok(Message::Text(text))) => {
                    match ack_of(&text) {
                        Some(event_id) if params.ack == AckMode::Explicit => {
                            match store::seq_of(&state.store, &event_id, provider).await? {
                                Some(seq) if seq <= cursor => {
                                    if seq > acked {
                                        store::save_position(&state.store, who.id, &params.subscription, seq).await?;
                                        acked = seq;
                                    }
                                }
                                _ => {
                                    let message = format!("{event_id} is not an event sent to you on this connection");
                                    if let Sent::Gone = conn.send(frames::error("unknown_ack", &message), None).await {
                                        break 'serve;
                                    }
                                }
                            }
                        }
                        _ => {
                            let message = "only {\"Ack\":\"<EventID>\"} frames are understood, with ack=explicit";
                            if let Sent::Gone = conn.send(frames::error("unexpected_frame", message), None).await {
                                break 'serve;
                            }
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = super::bus::stopping(&mut shutdown) => {
                conn.close(1001, "server shutting down").await;
                break 'serve;
            }
        }
    }
    drop(conn);
    let _ = writer.await;
    if let Some((stop, persisting)) = persister {
        let _ = stop.send(());
        let _ = persisting.await;
    }
    Ok(())
}

/// Saves the written position every [`PERSIST`] and once more when told to stop.
fn spawn_persister(
    store: crate::store::Store,
    principal: i64,
    subscription: String,
    written: Arc<AtomicI64>,
    mut saved: i64,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            let last = tokio::select! {
                _ = tokio::time::sleep(PERSIST) => false,
                _ = &mut stopped => true,
            };
            let done = written.load(Ordering::SeqCst);
            if done > saved {
                match store::save_position(&store, principal, &subscription, done).await {
                    Ok(()) => saved = done,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not save a subscription's position; will retry")
                    }
                }
            }
            if last {
                return;
            }
        }
    });
    (stop, task)
}

async fn finish(writer: tokio::task::JoinHandle<()>, conn: Connection) -> Result<(), AppError> {
    drop(conn);
    let _ = writer.await;
    Ok(())
}

fn ack_of(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("Ack")?.as_str().map(str::to_owned)
}
