//! At most one run at a time: a range refill, a bootstrap run, a load test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag that at most one [`Flight`] holds; dropping the flight frees it,
/// so an early return or a panic cannot leave it stuck.
#[derive(Clone, Default)]
pub struct SingleFlight {
    busy: Arc<AtomicBool>,
}

/// Proof that this caller runs the one flight; frees it on drop.
#[must_use = "the flight ends when this is dropped"]
pub struct Flight {
    busy: Arc<AtomicBool>,
}

impl SingleFlight {
    pub fn new() -> SingleFlight {
        SingleFlight::default()
    }

    /// Starts the flight, or None when one is already under way.
    pub fn try_begin(&self) -> Option<Flight> {
        (!self.busy.swap(true, Ordering::AcqRel)).then(|| Flight {
            busy: self.busy.clone(),
        })
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flight_at_a_time() {
        let s = SingleFlight::new();
        let f = s.try_begin().expect("first flight");
        assert!(s.is_busy());
        assert!(s.try_begin().is_none());
        drop(f);
        assert!(!s.is_busy());
        assert!(s.try_begin().is_some());
    }

    #[test]
    fn clones_share_the_flag() {
        let s = SingleFlight::new();
        let t = s.clone();
        let _f = s.try_begin().unwrap();
        assert!(t.try_begin().is_none());
    }

    #[test]
    fn a_panic_frees_the_flight() {
        let s = SingleFlight::new();
        let t = s.clone();
        let r = std::thread::spawn(move || {
            let _f = t.try_begin().unwrap();
            panic!("boom");
        })
        .join();
        assert!(r.is_err());
        assert!(s.try_begin().is_some());
    }
}
