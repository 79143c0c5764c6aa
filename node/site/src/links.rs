//! The link registry: one entry per neighbouring site, with its wake-up
//! signal and what its sender reports. The lowest layer of the transport:
//! the sender, the scheduler and the despooler all reach links through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use sms_types::*;

pub use sms_types::link::LinkState as LinkStatus;

/// Shared state of one link: its wake-up signal and what the sender reports.
pub struct Link {
    pub to: SiteCode,
    pub wake: Notify,
    state: Mutex<(LinkStatus, String)>,
    /// Frames this node's despooler refused from this neighbour.
    pub refused: AtomicU64,
    /// Jobs delivered over this link since start.
    pub sent: AtomicU64,
    /// File chunk bytes handed to the stream since start, resends included.
    pub chunk_bytes_sent: AtomicU64,
    /// Frames (jobs, or chunks of a package) handed to the stream since
    /// start, resends included.
    pub frames_sent: AtomicU64,
    /// Frames the receiver acknowledged (durable there) since start.
    pub frames_acked: AtomicU64,
    /// Bytes handed to the stream since start (payload sizes; chunks
    /// exactly, other jobs approximately), resends included.
    pub bytes_sent: AtomicU64,
    /// Smoothed time from a frame going out to its acknowledgement, in
    /// microseconds (0: nothing acknowledged yet).
    pub round_trip_us: AtomicU64,
    /// Times this link's sender failed and was started again.
    pub sender_restarts: AtomicU64,
}

impl Link {
    pub(crate) fn new(to: SiteCode) -> Self {
        Link {
            to,
            wake: Notify::new(),
            state: Mutex::new((LinkStatus::Idle, String::new())),
            refused: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            chunk_bytes_sent: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_acked: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            round_trip_us: AtomicU64::new(0),
            sender_restarts: AtomicU64::new(0),
        }
    }

    pub fn set_state(&self, s: LinkStatus, detail: impl Into<String>) {
        *self.state.lock().expect("link lock") = (s, detail.into());
    }

    /// Counts a frame of `bytes` handed to the stream.
    pub(crate) fn sent_frame(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts an acknowledged frame, with the smoothed round trip after it.
    pub(crate) fn acked_frame(&self, round_trip: std::time::Duration) {
        self.frames_acked.fetch_add(1, Ordering::Relaxed);
        self.round_trip_us
            .store(round_trip.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn state(&self) -> (LinkStatus, String) {
        self.state.lock().expect("link lock").clone()
    }
}

/// The per-node link registry.
#[derive(Default)]
pub struct Links {
    pub(crate) links: Mutex<HashMap<SiteCode, Arc<Link>>>,
    /// Frames refused from sites that are not neighbours at all.
    pub refused_strangers: AtomicU64,
    /// Resent frames the despooler recognised and did not deliver again.
    pub duplicates: AtomicU64,
    /// Connections the acceptor closed at once: over the node's limit of
    /// open connections, in all or from one address.
    pub connections_refused: AtomicU64,
    /// Calls answered RESOURCE_EXHAUSTED because their connection made
    /// too many a second.
    pub calls_refused: AtomicU64,
    /// Frames per despooled batch and how many were stored (for metrics).
    pub despooled: DespoolStats,
    /// How far each neighbour's clock is ahead of ours (ms), as of its last
    /// link handshake here.
    skew: Mutex<HashMap<SiteCode, i64>>,
    /// When a refusal was last reported as a status message, by kind.
    reported: Mutex<HashMap<String, u64>>,
}

/// What the despooler took in: the size of every batch (its count and sum
/// give batch and frame rates) and the frames stored (not duplicates or
/// refusals).
#[derive(Debug)]
pub struct DespoolStats {
    pub batch_frames: sms_types::stats::Histogram,
    pub stored: AtomicU64,
}

impl Default for DespoolStats {
    fn default() -> Self {
        DespoolStats {
            batch_frames: sms_types::stats::Histogram::new(sms_types::stats::BATCH_BOUNDS),
            stored: AtomicU64::new(0),
        }
    }
}

impl Links {
    /// Every link this node has, sorted by site code.
    pub fn links(&self) -> Vec<Arc<Link>> {
        let mut v: Vec<Arc<Link>> = self
            .links
            .lock()
            .expect("links lock")
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.to.cmp(&b.to));
        v
    }

    pub fn link(&self, to: &SiteCode) -> Option<Arc<Link>> {
        self.links.lock().expect("links lock").get(to).cloned()
    }

    /// Rate-limits refusal reports to one a minute per `key`, so a
    /// misconfigured neighbour cannot flood the status system.
    pub fn should_report(&self, key: &str) -> bool {
        let now = now_ms();
        let mut r = self.reported.lock().expect("reported lock");
        match r.get(key) {
            Some(t) if now.saturating_sub(*t) < 60_000 => false,
            _ => {
                r.insert(key.to_string(), now);
                true
            }
        }
    }

    /// Records a neighbour's clock against ours from its handshake.
    pub fn record_skew(&self, from: &SiteCode, their_ms: u64, our_ms: u64) {
        let skew = their_ms as i64 - our_ms as i64;
        self.skew
            .lock()
            .expect("skew lock")
            .insert(from.clone(), skew);
    }

    /// How far `to`'s clock is ahead of ours (negative: behind), if known.
    pub fn skew(&self, to: &SiteCode) -> Option<i64> {
        self.skew.lock().expect("skew lock").get(to).copied()
    }

    /// Wakes the sender of a link, if it exists.
    pub fn wake(&self, to: &SiteCode) {
        if let Some(l) = self.link(to) {
            l.wake.notify_one();
        }
    }
}
