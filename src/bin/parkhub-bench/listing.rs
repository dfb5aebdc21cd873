//! Providers listing their tickets on the rights-check data (1,000,000 tickets at full scale):
//! the provider with most of them, one whose tickets are spread through the table, and one
//! whose tickets are the table's last.

use std::time::{Duration, Instant};

use parkhub::principals::Role;

use crate::drive::{Row, closed_loop};
use crate::load::PRELOAD_PROVIDERS;
use crate::{Bench, json_answer, succeeds};

/// Each listing is timed this many times; the notes give the median.
const ROUNDS: usize = 5;

impl Bench {
    pub(crate) async fn ticket_list(&self) -> anyhow::Result<Row> {
        let tickets = self.preloaded().await?.tickets;
        let path = "/api/v1/actions/tickets";
        let url = self.url(path);
        let mut notes = Vec::new();
        for name in PRELOAD_PROVIDERS {
            let token = self.token(Role::Provider, name).await?;
            // One of its plates: preloaded ticket i is for plate TK{i:07} (see load::preload).
            let plate = match name {
                "preload-spread" => 100,
                "preload-late" => tickets - 1,
                _ => 1,
            };
            let first = json_answer(self.client.get(&url).bearer_auth(&token), name).await?;
            let (total, last) = (&first["meta"]["total"], &first["meta"]["lastPage"]);
            // The page furthest from both ends: the dearest to read in id order.
            let middle = (last.as_i64().unwrap_or(1) + 1) / 2;
            let mut timings = Vec::new();
            for (what, query) in [
                ("page 1", String::new()),
                ("page 100", "?page=100".to_owned()),
                ("the middle page", format!("?page={middle}")),
                ("the last page", format!("?page={last}")),
                ("licenseNumber", format!("?licenseNumber=TK{plate:07}")),
                ("parkingLotId", "?parkingLotId=12".to_owned()),
                ("updatedSince=0", "?updatedSince=0".to_owned()),
            ] {
                let ms = self.median_ms(&format!("{url}{query}"), &token).await?;
                timings.push(format!("{what} {ms:.1}"));
            }
            notes.push(format!(
                "{name} ({total} tickets): {} ms",
                timings.join(", ")
            ));
        }
        // One client asking for the largest provider's first page again and again.
        let largest = self.token(Role::Provider, PRELOAD_PROVIDERS[0]).await?;
        let (rate, latency, errors) = closed_loop(1, self.duration, |_| {
            succeeds(self.client.get(&url).bearer_auth(&largest))
        })
        .await;
        Ok(Row {
            name: "ticket-list",
            rate,
            latency: Some(latency),
            errors,
            notes: format!(
                "GET {path}, the largest provider's page 1, 1 client; each listing's median of {ROUNDS}: {}",
                notes.join("; ")
            ),
        })
    }

    /// The median time of [`ROUNDS`] GETs of `url` as `token`, in milliseconds.
    async fn median_ms(&self, url: &str, token: &str) -> anyhow::Result<f64> {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            json_answer(self.client.get(url).bearer_auth(token), url).await?;
            times.push(started.elapsed());
        }
        times.sort();
        Ok(times
            .get(ROUNDS / 2)
            .copied()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
            * 1000.0)
    }
}
