//! The real `parkhub` binary as a child process: start it, wait until ready, stop it with
//! SIGTERM or SIGKILL, and the token CLI.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_parkhub");

/// A running `parkhub serve` with everything it printed so far.
pub struct Service {
    pub child: Child,
    pub output: Arc<Mutex<String>>,
    pub base: String,
}

impl Service {
    pub async fn start(database_url: &str, extra: &[&str]) -> Self {
        Self::start_logging(database_url, extra, "warn", Stdio::inherit()).await
    }

    /// Starts it with `PARKHUB_LOG=filter`, its log (stderr) going to `log`.
    pub async fn start_logging(
        database_url: &str,
        extra: &[&str],
        filter: &str,
        log: Stdio,
    ) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database", database_url])
            .args(extra)
            .env("PARKHUB_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start parkhub");
        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let sink = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(base) = line.strip_prefix("parkhub is listening on ")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(base.trim().to_owned());
                }
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .expect("parkhub printed its address within 30 s")
            .expect("parkhub printed its address");
        let service = Self {
            child,
            output,
            base,
        };
        service.wait_ready().await;
        service
    }

    /// The listener is bound before the address is printed; wait for /readyz anyway.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("parkhub never became ready");
    }

    /// Waits until the output has everything the welcome text prints after the address.
    pub async fn output_containing(&self, needle: &str) -> String {
        for _ in 0..500 {
            let out = self.output.lock().unwrap().clone();
            if out.contains(needle) {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "output never contained {needle:?}: {}",
            self.output.lock().unwrap()
        );
    }

    pub async fn sigterm(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("parkhub stopped within 15 s of SIGTERM")
            .expect("exit status")
    }

    pub async fn kill_9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}

pub fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("PARKHUB_LOG", "warn")
        .output()
        .expect("run parkhub")
}

/// `parkhub token create` and the token it printed last.
pub fn create_token(database_url: &str, role: &str, name: &str) -> String {
    let out = cli(&[
        "token",
        "create",
        "--role",
        role,
        "--name",
        name,
        "--database",
        database_url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().expect("a line").trim().to_owned()
}
