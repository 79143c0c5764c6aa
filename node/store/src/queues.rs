//! Inboxes, outboxes and the failed box: where jobs wait for a component or a link.

#[allow(unused_imports)]
use crate::prelude::*;

/// The inboxes components read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbox {
    /// CT1s for the Site Configuration Manager.
    SiteControl,
    /// CT2s for the Hierarchy Manager.
    Hierarchy,
    /// Status batches for the Status Manager.
    Status,
}

impl Store {
    fn inbox_tree(&self, inbox: Inbox) -> Result<Tree> {
        let i = self.inner()?;
        Ok(match inbox {
            Inbox::SiteControl => i.sitectrl_inbox.clone(),
            Inbox::Hierarchy => i.hman_inbox.clone(),
            Inbox::Status => i.status_inbox.clone(),
        })
    }

    /// Drops a job into a local inbox (no transfer), e.g. the central site's
    /// own CT2 to its own Hierarchy Manager.
    pub fn put_inbox(&self, inbox: Inbox, job: &Job) -> Result<u64> {
        let seq = self.next_seq()?;
        self.inbox_tree(inbox)?
            .insert(seq.to_be_bytes(), enc(job))?;
        Ok(seq)
    }

    /// Jobs waiting in an inbox, oldest first.
    pub fn inbox_items(&self, inbox: Inbox, limit: usize) -> Result<Vec<(u64, Job)>> {
        self.inbox_tree(inbox)?
            .iter()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&k);
                Ok((u64::from_be_bytes(b), dec(&v)?))
            })
            .collect()
    }

    pub fn inbox_remove(&self, inbox: Inbox, key: u64) -> Result<()> {
        self.inbox_tree(inbox)?.remove(key.to_be_bytes())?;
        Ok(())
    }

    pub fn inbox_len(&self, inbox: Inbox) -> usize {
        self.inbox_tree(inbox).map_or(0, |t| t.len())
    }

    // ---- outboxes -------------------------------------------------------

    /// Queues a job for its next hop. Call [`Store::durable`] before telling
    /// anyone it is queued.
    pub fn enqueue(&self, hop: &SiteCode, job: &Job) -> Result<OutboxKey> {
        let key = OutboxKey {
            hop: hop_bytes(hop),
            priority: job.priority as u8,
            seq: self.next_seq()?,
        };
        self.inner()?.outbox.insert(key.to_bytes(), enc(job))?;
        Ok(key)
    }

    /// Jobs for `hop` at `priority` queued after `after`, oldest first.
    pub fn outbox_scan(
        &self,
        hop: &SiteCode,
        priority: Priority,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(OutboxKey, Job)>> {
        let start = OutboxKey {
            hop: hop_bytes(hop),
            priority: priority as u8,
            seq: after.map(|s| s.saturating_add(1)).unwrap_or(0),
        };
        let end = OutboxKey {
            hop: hop_bytes(hop),
            priority: priority as u8,
            seq: u64::MAX,
        };
        self.inner()?
            .outbox
            .range(start.to_bytes()..=end.to_bytes())
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((OutboxKey::from_bytes(&k), dec(&v)?))
            })
            .collect()
    }

    /// The job at exactly `key`, if still queued.
    pub fn outbox_get(&self, key: OutboxKey) -> Result<Option<Job>> {
        Self::get(&self.inner()?.outbox, &key.to_bytes())
    }

    /// Whether a CT2 of `site` is still waiting in the outbox for `hop`.
    pub fn ct2_queued(&self, hop: &SiteCode, site: &SiteCode) -> Result<bool> {
        let prefix = [hop.as_bytes(), &[Priority::High as u8]].concat();
        for v in self.inner()?.outbox.scan_prefix(prefix).values() {
            if let Payload::Ct2(c) = dec::<Job>(&v?)?.payload {
                if &c.site_code == site {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Removes acknowledged jobs. Not flushed on purpose: if the removal is
    /// lost in a crash the job is resent and the receiver drops the duplicate.
    /// Plain removes, not a batch: a batch takes sled's global write lock,
    /// which would queue behind a running flush.
    pub fn outbox_remove(&self, keys: &[OutboxKey]) -> Result<()> {
        for k in keys {
            self.inner()?.outbox.remove(k.to_bytes())?;
        }
        Ok(())
    }

    pub fn outbox_update(&self, key: OutboxKey, job: &Job) -> Result<()> {
        self.inner()?.outbox.insert(key.to_bytes(), enc(job))?;
        Ok(())
    }

    /// Moves a job whose retries are exhausted to the failed box.
    pub fn outbox_fail(&self, key: OutboxKey, failed: &FailedJob) -> Result<()> {
        (&self.inner()?.outbox, &self.inner()?.failed)
            .transaction(|(ob, fb)| {
                ob.remove(&key.to_bytes())?;
                fb.insert(&key.to_bytes(), enc(failed))?;
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Whether anything is queued for `hop` (without counting it all).
    pub fn outbox_has(&self, hop: &SiteCode) -> bool {
        self.inner()
            .is_ok_and(|i| i.outbox.scan_prefix(hop.as_bytes()).next().is_some())
    }

    pub fn outbox_len(&self, hop: &SiteCode) -> usize {
        self.inner()
            .map_or(0, |i| i.outbox.scan_prefix(hop.as_bytes()).count())
    }

    pub fn failed_len(&self, hop: &SiteCode) -> usize {
        self.inner()
            .map_or(0, |i| i.failed.scan_prefix(hop.as_bytes()).count())
    }

    pub fn failed_jobs(&self, hop: &SiteCode) -> Result<Vec<FailedJob>> {
        self.inner()?
            .failed
            .scan_prefix(hop.as_bytes())
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    /// Puts every failed job for `hop` back in its outbox with fresh retries.
    pub fn retry_failed(&self, hop: &SiteCode) -> Result<usize> {
        let keys: Vec<sled::IVec> = self
            .inner()?
            .failed
            .scan_prefix(hop.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for k in &keys {
            (&self.inner()?.outbox, &self.inner()?.failed)
                .transaction(|(ob, fb)| {
                    if let Some(v) = fb.remove(k)? {
                        let mut f: FailedJob =
                            dec(&v).map_err(ConflictableTransactionError::Abort)?;
                        f.job.attempts = 0;
                        ob.insert(k, enc(&f.job))?;
                    }
                    Ok(())
                })
                .map_err(txn_err)?;
        }
        Ok(keys.len())
    }

    /// Hops that have queued or failed jobs (so their senders are started).
    pub fn outbox_hops(&self) -> Result<Vec<SiteCode>> {
        let mut hops = std::collections::BTreeSet::new();
        for tree in [&self.inner()?.outbox, &self.inner()?.failed] {
            let mut cursor: Option<Vec<u8>> = None;
            loop {
                let next = match &cursor {
                    None => tree.first()?,
                    Some(c) => tree.range(c.clone()..).next().transpose()?,
                };
                let Some((k, _)) = next else { break };
                let code = String::from_utf8_lossy(&k[..3]).to_string();
                if let Ok(c) = code.parse::<SiteCode>() {
                    hops.insert(c);
                }
                // Skip to the first key after this hop's prefix.
                let mut after = k[..3].to_vec();
                after.push(0xff);
                after.extend_from_slice(&[0xff; 9]);
                cursor = Some(after);
            }
        }
        Ok(hops.into_iter().collect())
    }
}
