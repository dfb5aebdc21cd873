//! The command line: `parkhub serve`, `parkhub token create|list|revoke`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::app::{ServeConfig, TlsFiles, serve_with_store};
use crate::http::limits::RateLimit;
use crate::principals::{Role, store as principals};
use crate::setup;
use crate::store::{Store, StoreOptions};

#[derive(Debug, Parser)]
#[command(
    name = "parkhub",
    version,
    about = "The central system of a parking operator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Create, list or revoke bearer tokens directly in the database.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Subscribe to the TransactionMonitor WebSocket and print each frame as a line.
    Monitor(MonitorArgs),
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The service's address.
    #[arg(long, env = "PARKHUB_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A provider's (its events) or the operator's (all events) token.
    #[arg(long, env = "PARKHUB_TOKEN", hide_env_values = true)]
    pub token: String,
    /// `explicit`: acknowledge each event after printing it.
    #[arg(long, default_value = "auto")]
    pub ack: String,
    #[arg(long, default_value = "default")]
    pub subscription: String,
    /// Replay from just after this EventID (or `oldest` / `latest`).
    #[arg(long)]
    pub after: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArg {
    /// `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long = "database",
        env = "PARKHUB_DATABASE_URL",
        default_value = "sqlite://parkhub.db",
        hide_env_values = true
    )]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PARKHUB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub database: DatabaseArg,
    /// Also create lot 12 and a demo provider, and print ready-to-paste curl lines.
    #[arg(long)]
    pub demo: bool,
    /// Seconds after which a request is abandoned with 408.
    #[arg(long, env = "PARKHUB_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// Most database connections held at once.
    #[arg(long, env = "PARKHUB_MAX_CONNECTIONS", default_value_t = 16)]
    pub max_connections: u32,
    /// Seconds between Heartbeat frames on TransactionMonitor sockets.
    #[arg(long, env = "PARKHUB_HEARTBEAT_INTERVAL", default_value_t = 30)]
    pub heartbeat_interval: u64,
    /// Days events are kept for subscribers that are away.
    #[arg(long, env = "PARKHUB_EVENT_RETENTION_DAYS", default_value_t = 30)]
    pub event_retention_days: u64,
    /// Minutes the rights memory keeps rights that ended: a check about an earlier
    /// instant reads the database.
    #[arg(
        long,
        env = "PARKHUB_RIGHTS_MEMORY_KEEP_MINUTES",
        default_value_t = 120
    )]
    pub rights_memory_keep_minutes: u64,
    /// Requests per second per token (and bursts of as many); beyond it, 429 with
    /// Retry-After. 0 turns the limit off.
    #[arg(long, env = "PARKHUB_RATE_LIMIT", default_value_t = 300)]
    pub rate_limit: u32,
    /// Open TransactionMonitor sockets per principal.
    #[arg(long, env = "PARKHUB_MAX_SOCKETS_PER_PRINCIPAL", default_value_t = 100)]
    pub max_sockets_per_principal: usize,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "PARKHUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PARKHUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a principal (if needed) and a new token for it; prints the token last.
    Create {
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Revoke a token by its id (from `token list`).
    Revoke {
        #[arg(long)]
        id: i64,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Token(command) => token(command).await,
        Command::Monitor(args) => monitor(args).await,
    }
}

async fn monitor(args: MonitorArgs) -> anyhow::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let base = args.url.trim_end_matches('/').replacen("http", "ws", 1);
    let mut url = format!(
        "{base}/api/TransactionMonitor?ack={}&subscription={}",
        args.ack, args.subscription
    );
    if let Some(after) = &args.after {
        url.push_str(&format!("&after={after}"));
    }
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", args.token).parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("could not subscribe at {url}"))?;
    eprintln!("subscribed to {base}/api/TransactionMonitor; waiting for events (Ctrl-C stops)");
    while let Some(message) = socket.next().await {
        match message? {
            Message::Text(text) => {
                println!("{text}");
                if args.ack == "explicit"
                    && let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text)
                    && let Some(id) = frame.get("EventID").and_then(|v| v.as_str())
                {
                    let ack = serde_json::json!({ "Ack": id }).to_string();
                    socket.send(Message::Text(ack.into())).await?;
                }
            }
            Message::Close(frame) => {
                eprintln!("closed by the server: {frame:?}");
                break;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ServeConfig::new(args.database.url);
    config.request_timeout = Duration::from_secs(args.request_timeout.max(1));
    config.heartbeat_interval = Duration::from_secs(args.heartbeat_interval.max(1));
    config.event_retention = Duration::from_secs(args.event_retention_days.max(1) * 24 * 3600);
    config.rights_memory_keep =
        Duration::from_secs(args.rights_memory_keep_minutes.saturating_mul(60));
    config.rate_limit = RateLimit::per_second(args.rate_limit);
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        // Read now, so a bad certificate stops the start before anything is printed.
        config.tls = Some(TlsFiles::load(cert, key).await?);
    }
    config.max_sockets_per_principal = args.max_sockets_per_principal.max(1);
    config.store = StoreOptions {
        max_connections: args.max_connections.max(1),
        ..StoreOptions::default()
    };
    let store = Store::open(&config.database_url, &config.store).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let operator_token = setup::ensure_operator_token(&store).await?;
    let demo_token = if args.demo {
        Some(setup::demo(&store).await?)
    } else {
        None
    };
    print!(
        "{}",
        setup::welcome_text(
            &setup::base_url(addr, config.tls.is_some()),
            operator_token.as_deref(),
            demo_token.as_ref()
        )
    );
    serve_with_store(store, config, listener, shutdown_signal()).await
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            role,
            name,
            database,
        } => {
            let store = Store::open(&database.url, &StoreOptions::default()).await?;
            let principal = principals::find_or_create(&store, role, name.trim()).await?;
            let (info, secret) = principals::issue_token(&store, principal.id).await?;
            eprintln!(
                "token {} for {} '{}' (principal {}); shown only this once:",
                info.id, role, principal.name, principal.id
            );
            println!("{secret}");
            store.close().await;
        }
        TokenCommand::List { database } => {
            let store = Store::open(&database.url, &StoreOptions::default()).await?;
            println!(
                "{:>6}  {:>9}  {:<18}  {:<27}  revoked",
                "id", "principal", "hint", "created"
            );
            for t in principals::list_tokens(&store, None).await? {
                println!(
                    "{:>6}  {:>9}  {:<18}  {:<27}  {}",
                    t.id,
                    t.principal_id,
                    t.hint,
                    t.created_at.to_string(),
                    t.revoked_at
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into())
                );
            }
            store.close().await;
        }
        TokenCommand::Revoke { id, database } => {
            let store = Store::open(&database.url, &StoreOptions::default()).await?;
            let found = principals::revoke_token(&store, None, id).await?;
            store.close().await;
            anyhow::ensure!(found, "no token with id {id}");
            println!("token {id} revoked");
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received: finishing requests in flight");
}
