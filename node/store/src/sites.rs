//! The Hierarchy Manager's trees: site records, child CT2s, pending CT1s, deleted sites.

#[allow(unused_imports)]
use crate::prelude::*;

impl Store {
    pub fn sites(&self) -> Result<Vec<SiteRecord>> {
        self.inner()?
            .sites
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn site(&self, code: &SiteCode) -> Result<Option<SiteRecord>> {
        Self::get(&self.inner()?.sites, code.as_bytes())
    }

    pub fn put_site(&self, rec: &SiteRecord) -> Result<()> {
        self.inner()?
            .sites
            .insert(rec.site_code.as_bytes(), enc(rec))?;
        Ok(())
    }

    /// Records a new child site and queues its bootstrap job together: either
    /// both exist after a crash or neither does.
    pub fn create_child(&self, rec: &SiteRecord, bootstrap_job: &Job) -> Result<()> {
        let key = OutboxKey {
            hop: hop_bytes(&rec.site_code),
            priority: bootstrap_job.priority as u8,
            seq: self.next_seq()?,
        };
        (&self.inner()?.sites, &self.inner()?.outbox)
            .transaction(|(sites, ob)| {
                if sites.get(rec.site_code.as_bytes())?.is_some() {
                    return abort(StoreError::SiteExists(rec.site_code.clone()));
                }
                sites.insert(rec.site_code.as_bytes(), enc(rec))?;
                ob.insert(&key.to_bytes(), enc(bootstrap_job))?;
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Applies a child's CT2: its control copy and its site record together,
    /// and takes the CT2 out of the Hierarchy Manager's inbox.
    pub fn accept_ct2(&self, inbox_key: u64, rec: &SiteRecord, ct2: &Ct2) -> Result<()> {
        (
            &self.inner()?.sites,
            &self.inner()?.child_control,
            &self.inner()?.hman_inbox,
        )
            .transaction(|(sites, cc, inbox)| {
                sites.insert(rec.site_code.as_bytes(), enc(rec))?;
                cc.insert(ct2.site_code.as_bytes(), enc(ct2))?;
                inbox.remove(&inbox_key.to_be_bytes())?;
                Ok(())
            })
            .map_err(txn_err)
    }

    /// When `code` last reported here and whether it is stale (None: no
    /// report seen since this was first kept).
    pub fn site_report(&self, code: &SiteCode) -> Result<Option<SiteReport>> {
        Self::get(&self.inner()?.reports, code.as_bytes())
    }

    pub fn put_site_report(&self, code: &SiteCode, report: &SiteReport) -> Result<()> {
        self.inner()?.reports.insert(code.as_bytes(), enc(report))?;
        Ok(())
    }

    /// The last CT2 a descendant (or this central site) reported.
    pub fn child_ct2(&self, code: &SiteCode) -> Result<Option<Ct2>> {
        Self::get(&self.inner()?.child_control, code.as_bytes())
    }

    /// The last CT1 this site sent to `site` and not yet seen applied:
    /// the next change builds on it (so changes made in a row queue up
    /// instead of going stale).
    pub fn pending_ct1(&self, site: &SiteCode) -> Result<Option<Ct1>> {
        Self::get(&self.inner()?.pending_ct1, site.as_bytes())
    }

    pub fn set_pending_ct1(&self, site: &SiteCode, ct1: Option<&Ct1>) -> Result<()> {
        Self::put_or_remove(&self.inner()?.pending_ct1, site.as_bytes(), ct1)
    }

    /// Records what is kept of a site being deleted, before it is gone
    /// (never lowering a counter already kept).
    pub fn keep_deleted(&self, gone: &DeletedSite) -> Result<DeletedSite> {
        let mut g = gone.clone();
        if let Some(prev) = self.deleted_site(&gone.site_code)? {
            g.next_unique_id = g.next_unique_id.max(prev.next_unique_id);
        }
        self.inner()?
            .deleted
            .insert(gone.site_code.as_bytes(), enc(&g))?;
        Ok(g)
    }

    /// Whether a deinstall job for `hop` waits in its outbox (or, with
    /// `failed`, sits in the failed box).
    pub fn deinstall_queued(&self, hop: &SiteCode, failed: bool) -> Result<bool> {
        let tree = if failed {
            &self.inner()?.failed
        } else {
            &self.inner()?.outbox
        };
        for v in tree.scan_prefix(hop.as_bytes()).values() {
            let v = v?;
            let payload = if failed {
                dec::<FailedJob>(&v)?.job.payload
            } else {
                dec::<Job>(&v)?.payload
            };
            if matches!(payload, Payload::Deinstall(_)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn deleted_site(&self, code: &SiteCode) -> Result<Option<DeletedSite>> {
        Self::get(&self.inner()?.deleted, code.as_bytes())
    }

    /// Removes a child site from the site list, remembering what a
    /// re-created site keeps (never lowering a counter already kept). The
    /// caller's `leftover` rule decides each of the site's queued and
    /// failed jobs: `Some(reason)` moves a queued job to the failed box with
    /// that reason (a failed one stays), `None` drops it. Returns how many
    /// queued jobs there were.
    pub fn remove_site(
        &self,
        gone: &DeletedSite,
        leftover: impl Fn(&Job) -> Option<String>,
    ) -> Result<usize> {
        let code = &gone.site_code;
        let keys: Vec<sled::IVec> = self
            .inner()?
            .outbox
            .scan_prefix(code.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for k in &keys {
            (&self.inner()?.outbox, &self.inner()?.failed)
                .transaction(|(ob, fb)| {
                    if let Some(v) = ob.remove(k)? {
                        let job: Job = dec(&v).map_err(ConflictableTransactionError::Abort)?;
                        if let Some(reason) = leftover(&job) {
                            let f = FailedJob {
                                job,
                                reason,
                                failed_unix_ms: now_ms(),
                            };
                            fb.insert(k, enc(&f))?;
                        }
                    }
                    Ok(())
                })
                .map_err(txn_err)?;
        }
        let dropped: Vec<sled::IVec> = self
            .inner()?
            .failed
            .scan_prefix(code.as_bytes())
            .filter_map(|kv| kv.ok())
            .filter(|(_, v)| {
                dec::<FailedJob>(v)
                    .map(|f| leftover(&f.job).is_none())
                    .unwrap_or(false)
            })
            .map(|(k, _)| k)
            .collect();
        for k in dropped {
            self.inner()?.failed.remove(k)?;
        }
        let trees = (
            &self.inner()?.sites,
            &self.inner()?.child_control,
            &self.inner()?.deleted,
            &self.inner()?.pending_ct1,
            &self.inner()?.links,
            &self.inner()?.reports,
        );
        trees
            .transaction(|(sites, cc, del, pend, links, reports)| {
                sites.remove(code.as_bytes())?;
                reports.remove(code.as_bytes())?;
                cc.remove(code.as_bytes())?;
                pend.remove(code.as_bytes())?;
                links.remove(code.as_bytes())?;
                let mut kept = gone.clone();
                if let Some(prev) = del.get(code.as_bytes())? {
                    let prev: DeletedSite =
                        dec(&prev).map_err(ConflictableTransactionError::Abort)?;
                    kept.next_unique_id = kept.next_unique_id.max(prev.next_unique_id);
                }
                del.insert(code.as_bytes(), enc(&kept))?;
                Ok(())
            })
            .map_err(txn_err)?;
        Ok(keys.len())
    }
}
