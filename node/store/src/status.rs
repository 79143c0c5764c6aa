//! Status messages, their replication queue and retention.

#[allow(unused_imports)]
use crate::prelude::*;
use sms_types::status_rules::{Disposition, Replicate, DAY_MS, DEFAULT_RETENTION_MS};

impl Store {
    /// Stores messages at this site and, when `replicate`, queues them for
    /// the parent; keyed by uid, so a repeat is harmless.
    pub fn store_status(&self, msgs: &[StatusMessage], replicate: bool) -> Result<()> {
        self.store_status_ruled(msgs, replicate, &[]).map(drop)
    }

    /// [`Store::store_status`] with what the site's status filter rules
    /// decided for each message (`dispositions` empty: the defaults for
    /// all, else one per message). Returns, per message, whether it was new
    /// here: a repeat (a batch resent after a lost acknowledgement) changes
    /// nothing, and the caller must not act on it again.
    pub fn store_status_ruled(
        &self,
        msgs: &[StatusMessage],
        replicate: bool,
        dispositions: &[Disposition],
    ) -> Result<Vec<bool>> {
        self.store_ruled_at(msgs, replicate, dispositions, now_ms())
    }

    /// [`Store::store_status`] with the arrival time given (tests).
    #[cfg(test)]
    pub(crate) fn store_status_at(
        &self,
        msgs: &[StatusMessage],
        replicate: bool,
        arrival_ms: u64,
    ) -> Result<()> {
        self.store_ruled_at(msgs, replicate, &[], arrival_ms)
            .map(drop)
    }

    pub(crate) fn store_ruled_at(
        &self,
        msgs: &[StatusMessage],
        replicate: bool,
        dispositions: &[Disposition],
        arrival_ms: u64,
    ) -> Result<Vec<bool>> {
        (
            &self.inner()?.status,
            &self.inner()?.status_outq,
            &self.inner()?.status_arrival,
        )
            .transaction(|(st, oq, ar)| {
                // Built inside: sled may run the closure more than once.
                let mut new = Vec::with_capacity(msgs.len());
                for (i, m) in msgs.iter().enumerate() {
                    let fresh = st.insert(m.uid.as_bytes(), enc(m))?.is_none();
                    new.push(fresh);
                    if fresh {
                        let (clock, queue) = placement(dispositions.get(i), replicate, arrival_ms);
                        ar.insert(&arrival_key(clock, &m.uid), &[] as &[u8])?;
                        if let Some(v) = queue {
                            // The queue holds uids only: the message is in `status`.
                            oq.insert(m.uid.as_bytes(), v)?;
                        }
                    }
                }
                Ok(new)
            })
            .map_err(txn_err)
    }

    /// Gives every message without an arrival record one dated now (a store
    /// written before arrivals were recorded): it is then kept a full
    /// retention period from the upgrade, never dropped early.
    pub(crate) fn index_unindexed_status(&self) -> Result<()> {
        if !self.inner()?.status_arrival.is_empty() || self.inner()?.status.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        for k in self.inner()?.status.iter().keys() {
            let k = k?;
            if let Ok(uid) = Uuid::from_slice(&k) {
                self.inner()?
                    .status_arrival
                    .insert(arrival_key(now, &uid), &[] as &[u8])?;
            }
        }
        Ok(())
    }

    /// Drops status messages that arrived here before `before_ms` (by this
    /// site's clock), oldest arrival first; a message a rule keeps longer or
    /// shorter than the default counts as arriving later or earlier by the
    /// difference. Returns how many.
    pub fn prune_status(&self, before_ms: u64) -> Result<usize> {
        let end = arrival_key(before_ms, &Uuid::nil());
        let mut n = 0;
        for k in self.inner()?.status_arrival.range(..end).keys() {
            let k = k?;
            if let Ok(uid) = Uuid::from_slice(&k[8..]) {
                self.inner()?.status.remove(uid.as_bytes())?;
                self.inner()?.status_outq.remove(uid.as_bytes())?;
            }
            self.inner()?.status_arrival.remove(k)?;
            n += 1;
        }
        Ok(n)
    }

    /// Takes received status batches out of the inbox and stores their
    /// messages, atomically (`dispositions` and the answer as in
    /// [`Store::store_status_ruled`]).
    pub fn despool_status(
        &self,
        inbox_keys: &[u64],
        msgs: &[StatusMessage],
        replicate: bool,
        dispositions: &[Disposition],
    ) -> Result<Vec<bool>> {
        (
            &self.inner()?.status,
            &self.inner()?.status_outq,
            &self.inner()?.status_inbox,
            &self.inner()?.status_arrival,
        )
            .transaction(|(st, oq, inbox, ar)| {
                let now = now_ms();
                let mut new = Vec::with_capacity(msgs.len());
                for (i, m) in msgs.iter().enumerate() {
                    let fresh = st.insert(m.uid.as_bytes(), enc(m))?.is_none();
                    new.push(fresh);
                    if fresh {
                        let (clock, queue) = placement(dispositions.get(i), replicate, now);
                        ar.insert(&arrival_key(clock, &m.uid), &[] as &[u8])?;
                        if let Some(v) = queue {
                            oq.insert(m.uid.as_bytes(), v)?;
                        }
                    }
                }
                for k in inbox_keys {
                    inbox.remove(&k.to_be_bytes())?;
                }
                Ok(new)
            })
            .map_err(txn_err)
    }

    /// Messages waiting to be replicated to the parent, oldest first.
    /// Whether any message waits to be replicated.
    pub fn status_queued(&self) -> Result<bool> {
        Ok(self.inner()?.status_outq.first()?.is_some())
    }

    pub fn status_outq(&self, limit: usize) -> Result<Vec<StatusMessage>> {
        Ok(self
            .status_outq_prio(limit)?
            .into_iter()
            .map(|(m, _)| m)
            .collect())
    }

    /// [`Store::status_outq`] with each message's priority when a status
    /// filter rule chose one (None: the Status Manager chooses).
    pub fn status_outq_prio(&self, limit: usize) -> Result<Vec<(StatusMessage, Option<Priority>)>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for kv in self.inner()?.status_outq.iter() {
            if out.len() == limit {
                break;
            }
            let (k, v) = kv?;
            let prio = v
                .first()
                .and_then(|p| Priority::ALL.get(*p as usize).copied());
            match self.inner()?.status.get(&k)? {
                Some(m) => out.push((dec(&m)?, prio)),
                // Pruned by retention before it could be sent: nothing to send.
                None => {
                    self.inner()?.status_outq.remove(&k)?;
                }
            }
        }
        Ok(out)
    }

    /// Turns queued messages into one job for the parent, atomically.
    pub fn replicate_status(
        &self,
        hop: &SiteCode,
        job: &Job,
        msgs: &[StatusMessage],
    ) -> Result<()> {
        let seq = self.next_seq()?;
        let key = OutboxKey {
            hop: hop_bytes(hop),
            priority: job.priority as u8,
            seq,
        };
        (&self.inner()?.outbox, &self.inner()?.status_outq)
            .transaction(|(ob, oq)| {
                ob.insert(&key.to_bytes(), enc(job))?;
                for m in msgs {
                    oq.remove(m.uid.as_bytes())?;
                }
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Messages stored after `after` (by uid), oldest first, filtered.
    pub fn status_after(
        &self,
        after: &Uuid,
        site: Option<&SiteCode>,
        id: Option<u32>,
        limit: usize,
    ) -> Result<Vec<StatusMessage>> {
        let mut start = after.as_bytes().to_vec();
        start.push(0);
        let mut out = Vec::new();
        for v in self.inner()?.status.range(start..).values() {
            let m: StatusMessage = dec(&v?)?;
            if !selected(&m, site, id) {
                continue;
            }
            out.push(m);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// (errors, warnings) per site among messages created since `since_ms`.
    pub fn recent_severity_counts(
        &self,
        since_ms: u64,
    ) -> Result<std::collections::HashMap<SiteCode, (u32, u32)>> {
        let mut out: std::collections::HashMap<SiteCode, (u32, u32)> = Default::default();
        for v in self.inner()?.status.iter().values().rev() {
            let m: StatusMessage = dec(&v?)?;
            if m.time_unix_ms < since_ms {
                break;
            }
            let e = out.entry(m.site_code.clone()).or_default();
            match m.severity {
                Severity::Error => e.0 += 1,
                Severity::Warning => e.1 += 1,
                Severity::Informational => {}
            }
        }
        Ok(out)
    }

    /// Status messages, newest last, filtered.
    pub fn status_messages(
        &self,
        site: Option<&SiteCode>,
        id: Option<u32>,
        limit: usize,
    ) -> Result<Vec<StatusMessage>> {
        let mut out = Vec::new();
        for v in self.inner()?.status.iter().values().rev() {
            let m: StatusMessage = dec(&v?)?;
            if !selected(&m, site, id) {
                continue;
            }
            out.push(m);
            if out.len() >= limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }
}

/// The filter of the status queries: this site's messages (if one is
/// named), with this id (if one is given).
fn selected(m: &StatusMessage, site: Option<&SiteCode>, id: Option<u32>) -> bool {
    site.is_none_or(|s| &m.site_code == s) && id.is_none_or(|i| m.id == i)
}

/// Where a fresh message goes: the time its retention is counted from
/// (its arrival, moved by the difference between a rule's keep period and
/// the default, so one hourly prune serves every period) and its entry in
/// the parent's queue (None: not replicated; empty: the Status Manager
/// picks the priority; one byte: the priority a rule chose).
fn placement(
    d: Option<&Disposition>,
    replicate: bool,
    arrival_ms: u64,
) -> (u64, Option<&'static [u8]>) {
    const PRIORITY: [&[u8]; 3] = [&[0], &[1], &[2]];
    let d = d.copied().unwrap_or_default();
    let clock = match d.keep_days {
        Some(days) => (arrival_ms + days as u64 * DAY_MS).saturating_sub(DEFAULT_RETENTION_MS),
        None => arrival_ms,
    };
    let queue = match (replicate, d.replicate) {
        (false, _) | (true, Some(Replicate::Never)) => None,
        (true, None) => Some(&[] as &[u8]),
        (true, Some(Replicate::At(p))) => Some(PRIORITY[p as usize]),
    };
    (clock, queue)
}

/// Key of the arrival index: arrival time (big-endian, so keys sort by it),
/// then the message's uid.
fn arrival_key(arrival_ms: u64, uid: &Uuid) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&arrival_ms.to_be_bytes());
    k[8..].copy_from_slice(uid.as_bytes());
    k
}
