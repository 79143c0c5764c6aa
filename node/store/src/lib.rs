//! The node's only access to sled.
//!
//! Every tree is reached through a typed accessor here. Writes that another
//! node relies on are followed by [`Store::durable`], which joins a group
//! commit: one thread flushes sled for every waiter that registered before
//! the flush began (sled's concurrent `flush_async` can deadlock, so nothing
//! else ever flushes), then `fdatasync`s sled's log (sled's own flush uses
//! `sync_file_range`, which a power cut can undo), fsyncs the store
//! directory when its entries changed and fsyncs new blob files; only then
//! are the waiters released. File packages are files beside sled, one per
//! package (`package_files.rs`), synced by the same commit before the log.
//!
//! A failed write (a full disk) marks the store failed until it can write
//! again, reopening sled if sled poisoned itself (see `Cell`).
//!
//! One file per family of trees; a component that must change several
//! families at once gets one method here that does it in one sled
//! transaction. The store keeps no domain rules and no operator-facing text:
//! refusals come back as typed [`StoreError`] variants (or as decisions the
//! caller passed in), and the components word them.

mod blob_sync;
mod commit;
mod faults;
mod keys;
mod log_sync;
mod logon;
mod meta;
mod mp;
mod package_files;
mod packages;
mod queues;
mod received;
mod site_control;
mod sites;
mod status;
#[cfg(test)]
mod tests;
mod trust;
#[cfg(test)]
mod trust_tests;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Tree;
use tokio::sync::oneshot;

pub use keys::OutboxKey;
pub use queues::Inbox;
pub use received::{Delivery, Despooled};
pub use sms_types::records::*;

use blob_sync::BlobSync;
use log_sync::LogSync;
use package_files::PackageFiles;
use sms_types::*;

/// What every family file needs.
mod prelude {
    pub(crate) use crate::keys::hop_bytes;
    pub(crate) use crate::{abort, dec, enc, txn_err, Result, Store, StoreError};
    pub(crate) use crate::{Inbox, OutboxKey};
    pub(crate) use crate::{
        META_BOOTSTRAP, META_BOOTSTRAP_STATE, META_DOMAIN, META_IDENTITY, META_IDS_FROZEN,
        META_LOGON, META_MP, META_NODE_ID, META_UNIQUE_ID,
    };
    pub(crate) use sled::transaction::{ConflictableTransactionError, TransactionalTree};
    pub(crate) use sled::{Transactional, Tree};
    pub(crate) use sms_types::records::*;
    pub(crate) use sms_types::*;
    pub(crate) use std::sync::atomic::Ordering;
    pub(crate) use uuid::Uuid;
}

/// Store failures. Any of them means the operation did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record could not be decoded: {0}")]
    Codec(#[from] postcard::Error),
    #[error("store flush failed: {0}")]
    Flush(String),
    /// A file beside sled (a package chunk) could not be written or read.
    #[error("store file: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed to write and is being reopened (see
    /// [`Store::write_failure`]); nothing can be stored until it is.
    #[error("the store cannot write: {0}")]
    Unavailable(String),
    /// The data dir was written by a build with another store format.
    #[error("data dir holds store format {found}; this build reads format {expected}")]
    Format { found: u32, expected: u32 },
    /// Another process (or a store not yet closed) holds the data dir.
    #[error("the store in {0} is in use by another process (is another sms-node running on this data dir?)")]
    Locked(String),
    /// The node already holds a site install.
    #[error("already installed")]
    AlreadyInstalled,
    /// A CT0 must follow the current serial exactly.
    #[error("serial {proposed} does not follow the current serial {current}")]
    SerialGap { current: u64, proposed: u64 },
    /// The caller handed the store something that does not add up (a
    /// package whose bytes do not match its description).
    #[error("{0}")]
    Invalid(String),
    /// A child site with this code is already recorded.
    #[error("site {0} already exists")]
    SiteExists(SiteCode),
    /// The caller's rule refused a bootstrap package (see
    /// [`Store::accept_bootstrap`]).
    #[error("{0}")]
    BootstrapRefused(BootstrapRefusal),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// The disk or the store failed, not the data: nothing about the
    /// record that was being written is wrong, and writing it again once
    /// the disk recovers will work. A receiver answers such a failure with
    /// "cannot store now", which its sender waits out without failing jobs.
    pub fn is_storage_fault(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(sled::Error::Io(_))
                | StoreError::Sled(sled::Error::ReportableBug(_))
                | StoreError::Flush(_)
                | StoreError::Io(_)
                | StoreError::Unavailable(_)
        )
    }
}

/// How long opening waits for the data dir's lock: a store dropped a moment
/// ago (a node restarted in the same process) releases it only when sled's
/// background writer ends. Another process holding it gets a clear error.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// sled reports a held lock either as WouldBlock or wrapped in an error of
/// kind Other ("could not acquire lock on ..."): both mean another handle
/// (an exiting process, a store still closing) holds it, so opening waits.
pub(crate) fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

fn open_db(dir: &Path) -> Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            // Only the group-commit thread flushes (see module docs).
            .flush_every_ms(None)
            .open();
        let locked = is_lock_held;
        match opened {
            Err(sled::Error::Io(e)) if locked(&e) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if locked(&e) => {
                return Err(StoreError::Locked(dir.display().to_string()))
            }
            other => return Ok(other?),
        }
    }
}

/// Opens the database and its trees, checking the store format.
pub(crate) fn open_inner(dir: &Path) -> Result<Inner> {
    let db = open_db(dir)?;
    let format: Option<u32> = match db.get(META_FORMAT)? {
        Some(v) => Some(dec(&v)?),
        None => None,
    };
    match format {
        None => {
            db.insert(META_FORMAT, enc(&STORE_FORMAT))?;
        }
        Some(STORE_FORMAT) => {}
        Some(other) => {
            return Err(StoreError::Format {
                found: other,
                expected: STORE_FORMAT,
            })
        }
    }
    let t = |name: &str| db.open_tree(name);
    Ok(Inner {
        meta: t("meta")?,
        ct0: t("ct0")?,
        sitectrl_inbox: t("inbox.sitectrl")?,
        hman_inbox: t("inbox.hman")?,
        status_inbox: t("inbox.status")?,
        bad: t("bad")?,
        status: t("status")?,
        status_outq: t("status.outq")?,
        status_arrival: t("status.arrival")?,
        outbox: t("outbox")?,
        failed: t("failed")?,
        seen: t("despool.seen")?,
        packages: t("packages")?,
        packages_completed: t("packages.completed")?,
        probes: t("probes")?,
        sites: t("hman.sites")?,
        child_control: t("hman.control")?,
        pending_ct1: t("hman.pending_ct1")?,
        deleted: t("hman.deleted")?,
        reports: t("hman.reports")?,
        logon_servers: t("logon.servers")?,
        mp_records: t("mp.records")?,
        mp_access: t("mp.access")?,
        mp_clients: t("mp.clients")?,
        links: t("link_faults")?,
        faults: t("faults")?,
        trust: t("trust")?,
        tokens: t("trust.tokens")?,
        revoked: t("trust.revoked")?,
        issued: t("trust.issued")?,
        disk: Mutex::new(commit::DiskSync {
            log: LogSync::open(dir.to_path_buf())
                .map_err(|e| StoreError::Flush(format!("syncing sled's log at open: {e}")))?,
            blobs: BlobSync::open(dir.join("blobs")).map_err(|e| {
                StoreError::Flush(format!("syncing sled's blob files at open: {e}"))
            })?,
        }),
        db,
    })
}

pub(crate) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("domain types always serialise")
}

pub(crate) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    Ok(postcard::from_bytes(b)?)
}

pub(crate) fn abort<T>(
    e: StoreError,
) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

pub(crate) fn txn_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// One open sled database and its trees. Replaced whole when the store is
/// reopened after a write failure (see [`Cell`]).
pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    pub(crate) meta: Tree,
    pub(crate) ct0: Tree,
    pub(crate) sitectrl_inbox: Tree,
    pub(crate) hman_inbox: Tree,
    pub(crate) status_inbox: Tree,
    pub(crate) bad: Tree,
    pub(crate) status: Tree,
    pub(crate) status_outq: Tree,
    /// (arrival time here, uid) of every stored status message: retention
    /// goes by this site's clock, never by the reporting site's.
    pub(crate) status_arrival: Tree,
    pub(crate) outbox: Tree,
    pub(crate) failed: Tree,
    pub(crate) seen: Tree,
    pub(crate) packages: Tree,
    /// (completed here, by this site's clock) of every package whose
    /// destination is this site: what the retention policy goes by.
    pub(crate) packages_completed: Tree,
    pub(crate) probes: Tree,
    pub(crate) sites: Tree,
    pub(crate) child_control: Tree,
    pub(crate) pending_ct1: Tree,
    pub(crate) deleted: Tree,
    /// When each site below last reported here, and whether it is stale.
    pub(crate) reports: Tree,
    pub(crate) logon_servers: Tree,
    /// The site's management points and their install state, by server.
    pub(crate) mp_records: Tree,
    /// The site database's access group: node ids of management points.
    pub(crate) mp_access: Tree,
    /// Registered clients: hardware id -> SMS unique ID.
    pub(crate) mp_clients: Tree,
    pub(crate) links: Tree,
    pub(crate) faults: Tree,
    /// This node's key and chain, a primary's certificate authority.
    pub(crate) trust: Tree,
    /// Join tokens this node issued.
    pub(crate) tokens: Tree,
    /// Certificate serials this node revoked.
    pub(crate) revoked: Tree,
    /// Certificates this node renewed, by holder: (label, 0, serial).
    pub(crate) issued: Tree,
    /// The log, directory and blob-file syncs each commit ends with.
    pub(crate) disk: Mutex<commit::DiskSync>,
}

/// What outlives a reopen: the open database (swapped whole), the package
/// files, the group commit's channel and counters, and the failure state.
///
/// sled 0.34 poisons itself on its first failed write (a full disk): it
/// keeps the error and returns it from every later write and flush until
/// the database is opened again. So a store that fails to write is marked
/// failed (the node reports not-serving, receivers answer "cannot store
/// now"), and the group-commit thread reopens it once the failure has
/// been quiet a moment, then proves it can write before clearing it.
pub(crate) struct Cell {
    pub(crate) dir: std::path::PathBuf,
    /// None only while a reopen is under way.
    current: RwLock<Option<Arc<Inner>>>,
    pub(crate) files: PackageFiles,
    flush_tx: Mutex<std::sync::mpsc::Sender<commit::FlushWaiter>>,
    pub(crate) flushes: AtomicU64,
    /// Probes received, kept in memory: sled counts a tree by walking it,
    /// and a count polled during a transfer would cost the transfer.
    pub(crate) probes_received: AtomicU64,
    pub(crate) failure: Mutex<Option<Failure>>,
    /// Reopens so far: a commit asked for before a reopen cannot vouch for
    /// writes made on the database it replaced.
    pub(crate) reopens: AtomicU64,
    /// How long each group commit took (seconds), and how many callers it
    /// released: read by the node's metrics.
    pub(crate) commit_seconds: sms_types::stats::Histogram,
    pub(crate) commit_waiters: sms_types::stats::Histogram,
    /// Tests: the next write probe of the open database fails, as it does
    /// on a sled that poisoned itself.
    #[cfg(test)]
    pub(crate) test_poisoned: std::sync::atomic::AtomicBool,
}

/// Why the store cannot write, and since when.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) reason: String,
    pub(crate) since: Instant,
}

impl Cell {
    pub(crate) fn current(&self) -> Option<Arc<Inner>> {
        self.current.read().expect("store lock").clone()
    }

    pub(crate) fn set_current(&self, inner: Option<Arc<Inner>>) -> Option<Arc<Inner>> {
        std::mem::replace(&mut *self.current.write().expect("store lock"), inner)
    }

    pub(crate) fn failure(&self) -> Option<Failure> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Marks the store failed (keeping the first failure's time).
    pub(crate) fn fail(&self, reason: &str) {
        let mut f = self.failure.lock().expect("failure lock");
        match f.as_mut() {
            Some(f) => f.reason = reason.to_string(),
            None => {
                *f = Some(Failure {
                    reason: reason.to_string(),
                    since: Instant::now(),
                });
                // Wake the commit thread (it may be waiting for a commit
                // that never comes): it drives the recovery from now on.
                let (wake, _) = oneshot::channel();
                let _ = self
                    .flush_tx
                    .lock()
                    .expect("flush channel lock")
                    .send((0, wake));
            }
        }
    }
}

/// Handle to the node's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) cell: Arc<Cell>,
}

pub(crate) const META_IDENTITY: &[u8] = b"identity";
pub(crate) const META_NODE_ID: &[u8] = b"node_id";
pub(crate) const META_BOOTSTRAP: &[u8] = b"bootstrap_package";
pub(crate) const META_BOOTSTRAP_STATE: &[u8] = b"bootstrap_state";
pub(crate) const META_DOMAIN: &[u8] = b"member_domain";
const META_FORMAT: &[u8] = b"format";
pub(crate) const META_UNIQUE_ID: &[u8] = b"unique_id_next";
pub(crate) const META_LOGON: &[u8] = b"logon_install";
pub(crate) const META_MP: &[u8] = b"mp_install";
pub(crate) const META_IDS_FROZEN: &[u8] = b"ids_frozen";
/// 2: an address carries its keepalive (postcard has no optional trailing
/// fields, so every stored site control, CT1 and CT2 changed shape); 3:
/// signed CT1s and CT2s; 4: package chunks are files beside sled; 5: one
/// file per package (a package's chunk size is part of its description); 6:
/// site control lists management points; 7: site control carries status
/// filter rules.
const STORE_FORMAT: u32 = 7;
/// Written and flushed to prove a reopened store can write again.
pub(crate) const META_WRITE_PROBE: &[u8] = b"write_probe";

impl Store {
    /// Opens (or creates) the database under `dir` and starts its
    /// group-commit thread.
    pub fn open(dir: &Path) -> Result<Store> {
        let inner = open_inner(dir)?;
        // The store directory's own name must survive a power cut too
        // (sled creates it but never syncs its parent).
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::Flush(format!("syncing {}: {e}", parent.display())))?;
        }
        let probes_received = AtomicU64::new(inner.probes.len() as u64);
        let (flush_tx, flush_rx) = std::sync::mpsc::channel();
        let cell = Arc::new(Cell {
            dir: dir.to_path_buf(),
            current: RwLock::new(Some(Arc::new(inner))),
            files: PackageFiles::open(dir.join("packages"))
                .map_err(|e| StoreError::Flush(format!("opening the package files: {e}")))?,
            flush_tx: Mutex::new(flush_tx),
            flushes: AtomicU64::new(0),
            probes_received,
            failure: Mutex::new(None),
            reopens: AtomicU64::new(0),
            commit_seconds: sms_types::stats::Histogram::new(sms_types::stats::LATENCY_BOUNDS),
            commit_waiters: sms_types::stats::Histogram::new(sms_types::stats::BATCH_BOUNDS),
            #[cfg(test)]
            test_poisoned: Default::default(),
        });
        commit::start(Arc::downgrade(&cell), flush_rx)
            .map_err(|e| StoreError::Flush(format!("cannot start the group-commit thread: {e}")))?;
        let store = Store { cell };
        store.index_unindexed_status()?;
        Ok(store)
    }

    /// The open database, or why there is none (a reopen under way).
    pub(crate) fn inner(&self) -> Result<Arc<Inner>> {
        self.cell.current().ok_or_else(|| {
            StoreError::Unavailable(
                self.cell
                    .failure()
                    .map(|f| f.reason)
                    .unwrap_or_else(|| "the store is being reopened".into()),
            )
        })
    }

    /// Why the store cannot write at the moment (None: it can). Set by a
    /// failed commit; cleared once a reopened store has written and synced
    /// a record. The node reports not-serving meanwhile.
    pub fn write_failure(&self) -> Option<String> {
        self.cell.failure().map(|f| f.reason)
    }

    /// How many times the store was reopened after a write failure.
    pub fn reopen_count(&self) -> u64 {
        self.cell.reopens.load(Ordering::Relaxed)
    }

    /// Waits until every write made before this call is on disk. Many callers
    /// share one flush.
    pub async fn durable(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let reopens = self.cell.reopens.load(Ordering::SeqCst);
        self.cell
            .flush_tx
            .lock()
            .expect("flush channel lock")
            .send((reopens, tx))
            .map_err(|_| StoreError::Flush("group commit stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Flush("group commit stopped".into()))?
            .map_err(StoreError::Flush)
    }

    /// How long group commits took (seconds), for the node's metrics.
    pub fn commit_latency(&self) -> sms_types::stats::HistogramSnapshot {
        self.cell.commit_seconds.snapshot()
    }

    /// How many callers each group commit released.
    pub fn commit_batch_sizes(&self) -> sms_types::stats::HistogramSnapshot {
        self.cell.commit_waiters.snapshot()
    }

    /// Number of flushes performed (one per group commit batch).
    pub fn flush_count(&self) -> u64 {
        self.cell.flushes.load(Ordering::Relaxed)
    }

    /// Synchronous final flush for shutdown.
    pub fn flush_now(&self) -> Result<()> {
        let inner = self.inner()?;
        commit::flush_all(&inner, &self.cell.files).map_err(StoreError::Flush)
    }

    pub(crate) fn next_seq(&self) -> Result<u64> {
        Ok(self.inner()?.db.generate_id()?)
    }

    /// Writes `value` at `key`, or removes the key when there is none.
    pub(crate) fn put_or_remove<T: Serialize>(
        tree: &Tree,
        key: &[u8],
        value: Option<&T>,
    ) -> Result<()> {
        match value {
            Some(v) => tree.insert(key, enc(v))?,
            None => tree.remove(key)?,
        };
        Ok(())
    }

    pub(crate) fn get<T: DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>> {
        match tree.get(key)? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }
}
