//! Outbox keys: next hop, priority, then arrival order.

#[allow(unused_imports)]
use crate::prelude::*;

/// Key of a job in an outbox: next hop, priority, then arrival order, so a
/// prefix scan yields high before medium before low, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxKey {
    pub hop: [u8; 3],
    pub priority: u8,
    pub seq: u64,
}

impl OutboxKey {
    pub(crate) fn to_bytes(self) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..3].copy_from_slice(&self.hop);
        k[3] = self.priority;
        k[4..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Self {
        let mut hop = [0u8; 3];
        hop.copy_from_slice(&b[..3]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[4..12]);
        OutboxKey {
            hop,
            priority: b[3],
            seq: u64::from_be_bytes(seq),
        }
    }
}

pub(crate) fn hop_bytes(site: &SiteCode) -> [u8; 3] {
    let mut h = [0u8; 3];
    h.copy_from_slice(site.as_bytes());
    h
}
