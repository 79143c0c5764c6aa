//! Exponential backoff with jitter. The `backoff` crate is unmaintained, so
//! it is named here and nowhere else: swapping it is a one-file change.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// Delays that grow from `initial` by `multiplier` up to `max`, with
/// `jitter` (0.0 to 1.0) randomisation, forever.
pub struct Backoff {
    inner: backoff::ExponentialBackoff,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, multiplier: f64, jitter: f64) -> Backoff {
        Backoff {
            inner: backoff::ExponentialBackoff {
                current_interval: initial,
                initial_interval: initial,
                max_interval: max.max(initial),
                multiplier,
                randomization_factor: jitter,
                max_elapsed_time: None,
                ..backoff::ExponentialBackoff::default()
            },
        }
    }

    /// The next delay (never ends: `max_elapsed_time` is unset).
    pub fn next_delay(&mut self) -> Duration {
        self.inner.next_backoff().unwrap_or(self.inner.max_interval)
    }

    /// Starts over from the initial delay (the thing being retried worked).
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 2.0, 0.0);
        let d: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let mut b = Backoff::new(
            Duration::from_millis(1000),
            Duration::from_secs(1),
            2.0,
            0.3,
        );
        for _ in 0..50 {
            let d = b.next_delay().as_millis();
            assert!(
                (700..=1300).contains(&d),
                "{d} ms is outside 1000 ms +- 30%"
            );
        }
    }

    #[test]
    fn a_ceiling_below_the_start_is_the_start() {
        let mut b = Backoff::new(
            Duration::from_millis(500),
            Duration::from_millis(10),
            2.0,
            0.0,
        );
        assert_eq!(b.next_delay(), Duration::from_millis(500));
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }
}
