//! Rate limits keyed by user, room or client address: `governor`'s keyed GCRA
//! buckets, with a bound on how many keys are kept.
//!
//! A key that clients choose (an address, a username) would otherwise grow the map
//! without bound; a key refilled to its full burst is the same as no key, so the
//! periodic prune forgets those. When the map is full of keys still in use, new
//! attempts are refused (fail closed) rather than let in unchecked.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

/// How often a full limiter may sweep its map for refilled keys; sweeping on every
/// refused attempt would turn a flood into O(keys) work per request.
const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Why an attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This key's bucket is empty: a token comes back after the wait.
    Wait(Duration),
    /// The limiter holds as many keys as allowed, all still in use.
    Full,
}

impl Refusal {
    /// How long a client should wait before trying again.
    pub fn retry_after(self) -> Duration {
        match self {
            Refusal::Wait(wait) => wait,
            Refusal::Full => FULL_SWEEP_INTERVAL,
        }
    }
}

/// A token bucket per key: `burst` tokens, one more every `period`; at most
/// `max_keys` keys.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    max_keys: usize,
    /// When the map was last swept because it was full (ms since `epoch`).
    last_sweep_ms: AtomicU64,
    epoch: Instant,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `burst` attempts at once, refilled at `burst` per `window`.
    pub fn per_window(burst: u32, window: Duration, max_keys: usize) -> Self {
        let period = window / burst.max(1);
        Self::with_period(period, burst, max_keys)
    }

    /// `burst` attempts at once, then one every `period`.
    pub fn with_period(period: Duration, burst: u32, max_keys: usize) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        // A zero period (only from a nonsensical config) becomes the shortest one.
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            max_keys: max_keys.max(1),
            last_sweep_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Takes a token for `key`.
    pub fn take(&self, key: &K) -> Result<(), Refusal> {
        if self.limiter.len() >= self.max_keys && !self.sweep_when_full() {
            return Err(Refusal::Full);
        }
        self.limiter.check_key(key).map_err(|not_until| {
            Refusal::Wait(not_until.wait_time_from(self.limiter.clock().now()))
        })
    }

    /// Sweeps a full map at most once per [`FULL_SWEEP_INTERVAL`]; whether there is
    /// room now.
    fn sweep_when_full(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= FULL_SWEEP_INTERVAL.as_millis() as u64
            && self
                .last_sweep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
        self.limiter.len() < self.max_keys
    }

    /// Forgets the keys whose buckets have refilled: they are the same as no key.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// The key of a client address: an IPv4 address, or the /64 network of an IPv6
/// one (a single host usually holds a whole /64, so its addresses are one client).
pub fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limit = KeyedLimit::with_period(Duration::from_millis(500), 3, 100);
        for _ in 0..3 {
            assert!(limit.take(&"a").is_ok());
        }
        match limit.take(&"a") {
            Err(Refusal::Wait(wait)) => {
                assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500))
            }
            other => panic!("expected a wait, got {other:?}"),
        }
        assert!(limit.take(&"b").is_ok(), "keys are independent");
    }

    #[test]
    fn keys_are_bounded() {
        let limit = KeyedLimit::per_window(1, Duration::from_secs(3600), 2);
        assert!(limit.take(&1).is_ok());
        assert!(limit.take(&2).is_ok());
        assert_eq!(limit.take(&3), Err(Refusal::Full));
        assert_eq!(limit.len(), 2);
    }

    #[test]
    fn ipv6_hosts_are_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "10.1.2.3".parse::<IpAddr>().expect("ip")
        );
    }
}
