//! Token buckets keyed by who asks: agents' Reports and Enrolls (`crate::ingest`)
//! and web logins (`crate::web`).

use std::collections::HashMap;
use std::sync::Mutex;

/// A token bucket per key (an agent, a source address): `rate` requests a second on
/// average, `burst` at once. Buckets that have filled up again are forgotten when
/// the map holds `max_keys`, in one sweep a second at most: a stream of new keys
/// grows it only by what arrives while its buckets refill, and never makes every
/// request scan the map.
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

impl<K: std::hash::Hash + Eq> RateLimit<K> {
    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        RateLimit {
            rate_per_ms: rate_per_second / 1000.0,
            burst: f64::from(burst.max(1)),
            max_keys: 100_000,
            buckets: Mutex::new((HashMap::new(), i64::MIN)),
        }
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
        let mut limit = RateLimit::new(1.0, 1);
        limit.max_keys = 2;
        assert!(limit.take(1, 0));
        assert!(limit.take(2, 0));
        // Both buckets are empty: nothing can be forgotten yet.
        assert!(limit.take(3, 0));
        assert_eq!(limit.buckets.lock().unwrap().0.len(), 3);
        // A second later they are full again and are dropped before key 4 is added.
        assert!(limit.take(4, 1_000));
        assert_eq!(limit.buckets.lock().unwrap().0.len(), 1);
        assert!(!limit.take(4, 1_000), "key 4's own bucket still counts");
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
        let mut limit = RateLimit::new(1.0, 1);
        limit.max_keys = 2;
        for key in 1..=3 {
            assert!(limit.take(key, 0));
        }
        // Full at 0 (swept, nothing to forget); at 500 ms no sweep runs at all.
        assert!(limit.take(5, 500));
        assert_eq!(limit.buckets.lock().unwrap().0.len(), 4);
        // At 1,000 ms keys 1-3 are full again and go; key 5 is half full and stays.
        assert!(limit.take(6, 1_000));
        assert_eq!(limit.buckets.lock().unwrap().0.len(), 2);
    }
}
