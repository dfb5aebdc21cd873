use clap::Parser;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than the system's malloc: the service allocates and frees many small
/// buffers per request on several threads, where glibc's malloc spent about a tenth of the
/// service's time (consolidating free chunks); with jemalloc a ticket cost about a fifth less
/// service CPU in the benchmark's back-to-back pairs (BENCHMARKS.md). How soon it gives memory back is
/// set at build time, in .cargo/config.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PARKHUB_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = parkhub::cli::Cli::parse();
    match parkhub::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("parkhub: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
