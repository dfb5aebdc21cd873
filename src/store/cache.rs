//! What nearly every request reads and almost nothing writes — the principal behind a token,
//! a lot — kept in memory for a moment, so a request does not spend a database round trip on
//! it each time.
//!
//! A change made through this process clears the entries it touches at once. A change made
//! elsewhere (another instance, the `parkhub` command line) is seen after at most [`FRESH_FOR`]:
//! a revoked token stops working, and an edited lot is seen, within that time on every
//! instance. Absent things are never kept, so a new token or lot works at once everywhere.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry is trusted without asking the database again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// The most entries one map holds; when it is full it starts over (a flood of distinct keys
/// costs queries, never memory).
const MAX_ENTRIES: usize = 10_000;

/// A map whose entries are good for a while.
pub struct TtlMap<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    fresh_for: Duration,
    most: usize,
}

impl<K: Hash + Eq, V: Clone> TtlMap<K, V> {
    pub fn new(fresh_for: Duration) -> Self {
        Self::holding(fresh_for, MAX_ENTRIES)
    }

    /// One that holds at most `most` entries (for large values).
    pub fn holding(fresh_for: Duration, most: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            fresh_for,
            most: most.max(1),
        }
    }

    /// The value kept for `key`, if it is fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.fresh_for).then(|| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        if self.fresh_for.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            self.make_room(&mut entries);
            entries.insert(key, (value, Instant::now()));
        }
    }

    /// The fresh value for `key`, or a new one from `make`, kept (true when it is new): under
    /// one lock, so callers asking at once for the same key all get the same value.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> (V, bool) {
        let Ok(mut entries) = self.entries.lock() else {
            return (make(), true);
        };
        if let Some((value, at)) = entries.get(&key)
            && at.elapsed() < self.fresh_for
        {
            return (value.clone(), false);
        }
        let value = make();
        if !self.fresh_for.is_zero() {
            self.make_room(&mut entries);
            entries.insert(key, (value.clone(), Instant::now()));
        }
        (value, true)
    }

    /// Before an insert into a full map: drops the stale entries, and if that is not enough,
    /// everything.
    fn make_room(&self, entries: &mut HashMap<K, (V, Instant)>) {
        if entries.len() >= self.most {
            self.drop_stale(entries);
        }
        if entries.len() >= self.most {
            entries.clear();
        }
    }

    fn drop_stale(&self, entries: &mut HashMap<K, (V, Instant)>) {
        entries.retain(|_, (_, at)| at.elapsed() < self.fresh_for);
    }

    /// Forgets the entries that are no longer fresh.
    pub fn forget_stale(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.drop_stale(&mut entries);
        }
    }

    /// Forgets everything (after a change through this process).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let map = TtlMap::new(Duration::from_millis(50));
        map.put("a", 1);
        assert_eq!(map.get(&"a"), Some(1));
        assert_eq!(map.get(&"b"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(map.get(&"a"), None, "stale after its time");
        map.put("a", 2);
        map.clear();
        assert_eq!(map.get(&"a"), None, "cleared");
    }

    #[test]
    fn a_full_map_starts_over() {
        let map = TtlMap::new(Duration::from_secs(60));
        for n in 0..MAX_ENTRIES + 1 {
            map.put(n, n);
        }
        assert_eq!(map.get(&MAX_ENTRIES), Some(MAX_ENTRIES));
        assert_eq!(map.get(&0), None);
    }

    #[test]
    fn a_full_map_drops_stale_entries_first() {
        let map = TtlMap::holding(Duration::from_millis(50), 2);
        map.put("old", 1);
        std::thread::sleep(Duration::from_millis(60));
        map.put("a", 2);
        map.put("b", 3);
        assert_eq!((map.get(&"a"), map.get(&"b")), (Some(2), Some(3)));
        map.put("c", 4);
        assert_eq!(map.get(&"c"), Some(4));
        assert_eq!(
            map.entries.lock().map(|e| e.len()).ok(),
            Some(1),
            "full: started over"
        );
    }

    #[test]
    fn get_or_insert_keeps_the_first_value_while_fresh() {
        let map = TtlMap::holding(Duration::from_millis(50), 2);
        assert_eq!(map.get_or_insert_with("a", || 1), (1, true));
        assert_eq!(map.get_or_insert_with("a", || 2), (1, false));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            map.get_or_insert_with("a", || 3),
            (3, true),
            "stale: replaced"
        );
        assert_eq!(map.get(&"a"), Some(3));
    }

    #[test]
    fn zero_keeps_nothing() {
        let map = TtlMap::new(Duration::ZERO);
        map.put(1, 1);
        assert_eq!(map.get(&1), None);
    }
}
