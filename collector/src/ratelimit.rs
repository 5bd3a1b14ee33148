//! Token buckets keyed by who asks: agents' Reports and Enrolls (`crate::ingest`)
//! and web logins (`crate::web`).

use std::collections::HashMap;
use std::sync::Mutex;

/// A token bucket per key (an agent, a source address): `rate` requests a second on
/// average, `burst` at once. Buckets that have filled up again are forgotten when
/// the map holds `max_keys`, in one sweep a second at most, and never makes every
/// request scan the map. The map never holds more than `max_keys`: if the sweep
/// leaves it full, the half least recently used is forgotten; between sweeps a key
/// it cannot hold is refused (a flood of made-up keys costs no memory).
#[derive(Debug)]
pub struct RateLimit<K> {
    rate_per_ms: f64,
    burst: f64,
    max_keys: usize,
    buckets: Mutex<Buckets<K>>,
}

/// Each key's bucket (tokens, last instant), and the instant of the last sweep.
type Buckets<K> = (HashMap<K, (f64, i64)>, i64);

/// The least time between two sweeps of full buckets.
const SWEEP_EVERY_MS: i64 = 1_000;

impl<K: std::hash::Hash + Eq + Clone> RateLimit<K> {
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        RateLimit::bounded(rate_per_second, burst, 1_000_000)
    }

    /// As [`RateLimit::new`], holding at most `max_keys` keys.
    pub fn bounded(rate_per_second: f64, burst: u32, max_keys: usize) -> Self {
        RateLimit {
            rate_per_ms: rate_per_second / 1000.0,
            burst: f64::from(burst.max(1)),
            max_keys: max_keys.max(2),
            buckets: Mutex::new((HashMap::new(), i64::MIN)),
        }
    }

    /// How many keys it holds now (its memory).
    pub fn keys_held(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .len()
    }

    /// Whether `key`'s bucket holds a token at `now_ms`, without taking it (for
    /// limits that charge only failures: check first, [`RateLimit::take`] on failure).
    pub fn has_token(&self, key: &K, now_ms: i64) -> bool {
        if self.rate_per_ms <= 0.0 {
            return true;
        }
        let guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.get(key).is_none_or(|(tokens, last)| {
            let elapsed = now_ms.saturating_sub(*last).max(0) as f64;
            (tokens + elapsed * self.rate_per_ms).min(self.burst) >= 1.0
        })
    }

    /// Takes one token from `key`'s bucket; false if it is empty.
    pub fn take(&self, key: K, now_ms: i64) -> bool {
        if self.rate_per_ms <= 0.0 {
            return true;
        }
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (map, swept) = &mut *guard;
        if map.len() >= self.max_keys && now_ms.saturating_sub(*swept) >= SWEEP_EVERY_MS {
            *swept = now_ms;
            let (rate, burst) = (self.rate_per_ms, self.burst);
            map.retain(|_, (tokens, last)| {
                *tokens + now_ms.saturating_sub(*last).max(0) as f64 * rate < burst
            });
            if map.len() >= self.max_keys {
                // Still full of live buckets: forget the least recently used half.
                let mut by_age: Vec<(i64, K)> = map
                    .iter()
                    .map(|(k, (_, last))| (*last, k.clone()))
                    .collect();
                let half = by_age.len() / 2;
                by_age.select_nth_unstable_by_key(half, |(last, _)| *last);
                for (_, k) in &by_age[..half.max(1)] {
                    map.remove(k);
                }
            }
        }
        if map.len() >= self.max_keys && !map.contains_key(&key) {
            return false;
        }
        let (tokens, last) = map.entry(key).or_insert((self.burst, now_ms));
        let elapsed = now_ms.saturating_sub(*last).max(0) as f64;
        *tokens = (*tokens + elapsed * self.rate_per_ms).min(self.burst);
        *last = now_ms.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_forgets_full_buckets_when_it_holds_too_many_keys() {
        let limit = RateLimit::bounded(1.0, 1, 2);
        assert!(limit.take(1, 0));
        assert!(limit.take(2, 10));
        // Both buckets are empty: the least recently used (key 1) makes room.
        assert!(limit.take(3, 20));
        assert_eq!(limit.keys_held(), 2);
        assert!(!limit.take(2, 20), "key 2's own bucket still counts");
        // A second later keys 2 and 3 are full again and are dropped before key 4
        // is added.
        assert!(limit.take(4, 1_100));
        assert_eq!(limit.keys_held(), 1);
        assert!(!limit.take(4, 1_100), "key 4's own bucket still counts");
    }

    #[test]
    fn a_flood_of_made_up_keys_keeps_memory_flat() {
        let limit = RateLimit::bounded(1.0 / 60.0, 5, 1_000);
        let mut refused = 0;
        for i in 0..100_000u32 {
            // A hundred new names a millisecond, each failing once.
            if !limit.take(format!("made-up-{i}"), i64::from(i / 100)) {
                refused += 1;
            }
            assert!(
                limit.keys_held() <= 1_000,
                "{} keys after {i}",
                limit.keys_held()
            );
        }
        assert!(refused > 0, "a key it cannot hold is refused");
        // A real user who starts now still gets a bucket once a sweep made room.
        assert!(limit.take("zhangsan".into(), 2_000));
    }

    #[test]
    fn has_token_looks_without_taking() {
        let limit = RateLimit::new(1.0, 2);
        assert!(limit.has_token(&1, 0), "an unknown key has a full bucket");
        for _ in 0..5 {
            assert!(limit.has_token(&1, 0));
        }
        assert!(limit.take(1, 0) && limit.take(1, 0));
        assert!(!limit.has_token(&1, 0));
        assert!(!limit.has_token(&1, 999));
        assert!(limit.has_token(&1, 1_000), "refilled after a second");
    }

    #[test]
    fn rate_limit_sweeps_at_most_once_a_second() {
        let limit = RateLimit::bounded(1.0, 1, 3);
        for key in 1..=3 {
            assert!(limit.take(key, 0));
        }
        // Full at 0: the sweep made room for key 4 by forgetting key 1.
        assert!(limit.take(4, 0));
        assert_eq!(limit.keys_held(), 3);
        // At 500 ms no sweep runs: a new key it cannot hold is refused, a known one
        // is served.
        assert!(!limit.take(5, 500));
        assert_eq!(limit.keys_held(), 3);
        // At 1,000 ms keys 2-4 are full again and go.
        assert!(limit.take(5, 1_000));
        assert_eq!(limit.keys_held(), 1);
    }
}
