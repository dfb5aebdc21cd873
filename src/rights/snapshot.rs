//! The plates allowed at a place at one instant, kept for a while after they are decided.
//!
//! A handheld that must work offline pages through a lot's valid plates. Deciding the list
//! takes seconds for a lot of a million plates, and the total is part of every page, so each
//! page used to decide the whole lot again — and a plate could move between pages while a
//! device paged. Now the first page's list is kept for [`KEPT_FOR`] under its place and
//! instant: the pages asked with the `at` the first page answered come from that one list.
//! Each instance keeps its own lists (another instance decides once for itself); at most
//! [`MOST`] are held, so a burst of distinct instants costs decisions, never memory, and a
//! list is freed a moment after it goes stale. Devices asking for the same list at once
//! (a shift starting) wait for one decision.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::OnceCell;

use crate::http::AppError;
use crate::store::cache::TtlMap;

/// How long a decided list answers further pages.
pub const KEPT_FOR: Duration = Duration::from_secs(60);
/// The most lists held at once.
pub const MOST: usize = 4;

/// Plates in normal form, sorted and distinct, in one buffer: 1.1 million plates of nine
/// characters take about 19 MB this way, about 44 MB as separate strings.
#[derive(Debug, Default)]
pub struct PlateList {
    text: String,
    ends: Vec<usize>,
}

impl PlateList {
    /// From plates already sorted and distinct (a `BTreeSet`'s order).
    pub fn from_sorted<'a>(plates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut list = Self::default();
        for plate in plates {
            list.text.push_str(plate);
            list.ends.push(list.text.len());
        }
        list.text.shrink_to_fit();
        list.ends.shrink_to_fit();
        list
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// At most `limit` plates from the `offset`-th on.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<String> {
        let last = offset.saturating_add(limit).min(self.len());
        (offset..last)
            .map(|i| {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                self.text[start..self.ends[i]].to_owned()
            })
            .collect()
    }
}

/// The lists decided lately, by what was asked: a lot (`false`) or a zone (`true`), its id,
/// and the instant in Unix microseconds.
pub type Key = (bool, i64, i64);

/// A list being decided, or decided: requests for the same key wait for one decision.
type Slot = Arc<OnceCell<Arc<PlateList>>>;

/// Lists kept for [`KEPT_FOR`] from when they were first asked for.
pub struct Snapshots(TtlMap<Key, Slot>);

impl Default for Snapshots {
    fn default() -> Self {
        Self(TtlMap::holding(KEPT_FOR, MOST))
    }
}

impl Snapshots {
    /// The list kept for `key`, or the one `decide` makes. Requests for a key that arrive
    /// while its list is being decided wait for that decision rather than each reading the
    /// whole lot (seconds of work for a large one); if it fails, the next request decides.
    pub async fn get_or_decide<F, Fut>(
        self: &Arc<Self>,
        key: Key,
        decide: F,
    ) -> Result<Arc<PlateList>, AppError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PlateList, AppError>>,
    {
        let (slot, new) = self.0.get_or_insert_with(key, Slot::default);
        if new {
            self.forget_when_stale();
        }
        slot.get_or_try_init(|| async { decide().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// Frees the lists once they are stale even if no request comes to find out.
    fn forget_when_stale(self: &Arc<Self>) {
        let snapshots = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(KEPT_FOR + Duration::from_secs(1)).await;
            if let Some(snapshots) = snapshots.upgrade() {
                snapshots.0.forget_stale();
            }
        });
    }
}

/// `now` to the whole second: the instant a list answers when none is asked for, so the `at`
/// a page shows (to the second) asks for the very same list again.
pub fn this_second(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_the_list_in_order() {
        let list = PlateList::from_sorted(["AB1", "CD22", "EF333"]);
        assert_eq!(list.len(), 3);
        assert_eq!(list.page(0, 2), vec!["AB1", "CD22"]);
        assert_eq!(list.page(2, 2), vec!["EF333"]);
        assert!(list.page(3, 2).is_empty());
        assert!(list.page(usize::MAX, usize::MAX).is_empty(), "no overflow");
    }

    #[test]
    fn this_second_drops_the_fraction() {
        let at: Timestamp = "2026-03-29T00:59:59.999999Z".parse().unwrap();
        assert_eq!(this_second(at).to_string(), "2026-03-29T00:59:59Z");
    }
}
