//! The TransactionMonitor scenarios: how soon a committed event reaches its subscriber, how
//! fast a backlog is replayed, and what idle sockets cost in memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parkhub::principals::{Role, store as principals};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Bench;
use crate::drive::{BusyMeter, Row, histogram, open_loop};
use crate::load::{queue_events, register_plates};

impl Bench {
    pub(crate) async fn event_latency(&self) -> anyhow::Result<Row> {
        let provider = self.token(Role::Provider, "latency").await?;
        let gate = self.token(Role::Equipment, "latency-gate").await?;
        let rate = 1000.0;
        let n = (rate * self.duration.as_secs_f64()) as u64;
        // register the plates in bulk (SQL), then subscribe
        register_plates(&self.store, &self.provider_id("latency").await?, "EV", n).await?;
        let mut socket = self.subscribe(&provider, "?after=latest").await?;
        let arrivals: Arc<Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
        let reader = {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    let now = Instant::now();
                    if let Ok(text) = message.to_text()
                        && let Ok(frame) = serde_json::from_str::<Value>(text)
                        && let Some(id) = frame.get("EventID").and_then(Value::as_str)
                    {
                        arrivals.lock().await.insert(id.to_owned(), now);
                    }
                }
            })
        };
        let acks: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let url = self.url("/api/v1/carparks/entries");
        let healthz = self.url("/healthz");
        let (_, errors) = open_loop(&self.client, rate, self.duration, &healthz, |i| {
            let body = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": format!("EV{i:07}"), "ticketType": 4});
            let request = self.client.post(&url).bearer_auth(&gate).json(&body);
            let acks = acks.clone();
            async move {
                let Ok(response) = request.send().await else { return false };
                let done = Instant::now();
                let ok = response.status().is_success();
                if let Ok(body) = response.json::<Value>().await
                    && let Some(id) = body.get("eventId").and_then(Value::as_str)
                {
                    acks.lock().await.push((id.to_owned(), done));
                }
                ok
            }
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        reader.abort();
        let arrivals = arrivals.lock().await;
        let mut latency = histogram();
        let mut missing = 0;
        for (id, acked) in acks.lock().await.iter() {
            match arrivals.get(id) {
                Some(arrived) => {
                    let us = arrived.saturating_duration_since(*acked).as_micros() as u64;
                    latency.record(us.max(1)).ok();
                }
                None => missing += 1,
            }
        }
        Ok(Row {
            name: "event-latency",
            rate,
            latency: Some(latency),
            errors: errors + missing,
            notes: format!(
                "entries at {rate:.0}/s; time from the 2xx to the frame; {missing} frames missing"
            ),
        })
    }

    async fn provider_id(&self, provider: &str) -> anyhow::Result<i64> {
        Ok(
            principals::find_or_create(&self.store, Role::Provider, provider)
                .await?
                .id,
        )
    }

    async fn subscribe(
        &self,
        token: &str,
        query: &str,
    ) -> anyhow::Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let url = format!(
            "{}/api/TransactionMonitor{query}",
            self.base.replacen("http", "ws", 1)
        );
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        Ok(tokio_tungstenite::connect_async(request).await?.0)
    }

    pub(crate) async fn event_replay(&self) -> anyhow::Result<Row> {
        let count = ((100_000.0 * self.scale) as i64).max(100);
        let provider = self.token(Role::Provider, "replay").await?;
        let provider_id = self.provider_id("replay").await?;
        queue_events(&self.store, provider_id, count).await?;
        let started = Instant::now();
        let mut socket = self.subscribe(&provider, "").await?;
        let mut received = 0;
        while received < count {
            match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                Ok(Some(Ok(message))) if message.is_text() => {
                    if !message.to_text().unwrap_or("").contains("Heartbeat") {
                        received += 1;
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(Row {
            name: "event-replay",
            rate: received as f64 / secs,
            latency: None,
            errors: (count - received) as u64,
            notes: format!("{received} queued events delivered in {secs:.2} s (events/s)"),
        })
    }

    pub(crate) async fn idle_sockets(&self) -> anyhow::Result<Row> {
        let count = ((10_000.0 * self.scale) as usize).max(10);
        let before = self.server_rss_kib();
        let provider = self.token(Role::Provider, "idle").await?;
        let mut sockets = Vec::with_capacity(count);
        let mut failed = 0u64;
        for chunk in 0..count.div_ceil(200) {
            let n = 200.min(count - chunk * 200);
            let opened = futures_util::future::join_all(
                (0..n).map(|_| self.subscribe(&provider, "?after=latest&subscription=idle")),
            )
            .await;
            for socket in opened {
                match socket {
                    Ok(s) => sockets.push(s),
                    Err(err) => {
                        // Say why the first one failed: a count alone cannot be chased.
                        if failed == 0 {
                            eprintln!("idle-sockets: a socket did not open: {err:#}");
                        }
                        failed += 1;
                    }
                }
            }
        }
        // How busy the machine is while they all wait (the service, and PostgreSQL's server).
        let cores = BusyMeter::start();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = cores.busy();
        let loaded = self.server_rss_kib();
        let row = Row {
            name: "idle-sockets",
            rate: sockets.len() as f64,
            latency: None,
            errors: failed,
            notes: format!(
                "{} sockets open: server RSS {:.1} MiB ({:.1} MiB before they opened; {:.1} MiB idle at start), {idle} while they idle; req/s column = sockets",
                sockets.len(),
                loaded as f64 / 1024.0,
                before as f64 / 1024.0,
                self.idle_rss_kib as f64 / 1024.0
            ),
        };
        drop(sockets);
        Ok(row)
    }
}
