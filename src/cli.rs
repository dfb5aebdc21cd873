//! The command line: `parkhub serve`, `parkhub token create|list|revoke`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::app::{ServeConfig, serve_with_store};
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
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ServeConfig::new(args.database.url);
    config.request_timeout = Duration::from_secs(args.request_timeout.max(1));
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
        setup::welcome_text(addr, operator_token.as_deref(), demo_token.as_deref())
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
