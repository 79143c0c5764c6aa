//! The Hierarchy Manager's site records, written under one lock.
//!
//! Phase reports, CT2s, a child that moved, a one-shot fault being cleared:
//! each is a read-modify-write of one record, and they arrive on different
//! tasks. Every such write goes through [`SiteRecords`] so that none of
//! them is lost to another that read the record before it was written.

use tokio::sync::{Mutex, MutexGuard};

use sms_store::Store;
use sms_types::*;

/// The lock that serialises every read-modify-write of site records.
#[derive(Default)]
pub struct SiteRecords {
    lock: Mutex<()>,
}

/// Held while a caller reads and rewrites records (and whatever must change
/// with them) as one step.
pub type RecordsGuard<'a> = MutexGuard<'a, ()>;

impl SiteRecords {
    /// Takes the lock for a change spanning several records or reads.
    pub async fn lock(&self) -> RecordsGuard<'_> {
        self.lock.lock().await
    }

    /// Reads the record of `code` and applies `change` under the lock; the
    /// record is written back only when `change` says it changed. Returns
    /// the record as it is afterwards, or None when there is none.
    pub async fn update(
        &self,
        store: &Store,
        code: &SiteCode,
        change: impl FnOnce(&mut SiteRecord) -> bool,
    ) -> sms_store::Result<Option<SiteRecord>> {
        let _g = self.lock.lock().await;
        update_locked(store, code, change)
    }
}

/// [`SiteRecords::update`] for a caller that already holds the lock.
pub fn update_locked(
    store: &Store,
    code: &SiteCode,
    change: impl FnOnce(&mut SiteRecord) -> bool,
) -> sms_store::Result<Option<SiteRecord>> {
    let Some(mut rec) = store.site(code)? else {
        return Ok(None);
    };
    if change(&mut rec) {
        store.put_site(&rec)?;
    }
    Ok(Some(rec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(code: &str) -> SiteRecord {
        SiteRecord {
            site_code: code.parse().unwrap(),
            parent_site_code: Some("PRI".parse().unwrap()),
            kind: SiteKind::Secondary,
            server: "127.0.0.1:1".into(),
            status: SiteStatus::Pending,
            status_changed_unix_ms: 0,
            serial: 0,
            link_secret: "s".into(),
            sever_link_mid_bootstrap: true,
        }
    }

    /// The lost-update race of the old code: one task moves the server
    /// address (a child that restarted elsewhere), another advances the
    /// status (a phase report), a third bumps the serial (a CT2), all at
    /// once and many times. Under the lock every change survives.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_site(&record("S01")).unwrap();
        let recs = Arc::new(SiteRecords::default());
        let code: SiteCode = "S01".parse().unwrap();
        let tc = sms_runtime::TaskCenter::new();
        let mut tasks = vec![];
        for i in 0..3u64 {
            let (recs, store, code) = (recs.clone(), store.clone(), code.clone());
            tasks.push(tc.spawn(format!("writer {i}"), async move {
                for n in 1..=200u64 {
                    recs.update(&store, &code, |r| {
                        match i {
                            0 => r.server = format!("127.0.0.1:{n}"),
                            1 => r.status_changed_unix_ms = n,
                            _ => r.serial = n,
                        }
                        true
                    })
                    .await
                    .unwrap();
                    tokio::task::yield_now().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let r = store.site(&code).unwrap().unwrap();
        assert_eq!(r.server, "127.0.0.1:200");
        assert_eq!(r.status_changed_unix_ms, 200);
        assert_eq!(r.serial, 200);
    }

    #[tokio::test]
    async fn unchanged_records_are_not_written_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let recs = SiteRecords::default();
        let code: SiteCode = "S02".parse().unwrap();
        assert!(recs
            .update(&store, &code, |_| true)
            .await
            .unwrap()
            .is_none());
        store.put_site(&record("S02")).unwrap();
        let got = recs
            .update(&store, &code, |r| {
                r.serial = 9;
                false
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.serial, 9, "the caller sees its change");
        assert_eq!(
            store.site(&code).unwrap().unwrap().serial,
            0,
            "but it was not written"
        );
    }
}
