//! The node's only access to sled.
//!
//! Every tree is reached through a typed accessor here. Writes that another
//! node relies on are followed by [`Store::durable`], which joins a group
//! commit: one background task flushes sled for every waiter that registered
//! before the flush began (sled's concurrent `flush_async` can deadlock, so
//! nothing else ever flushes).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::model::*;

/// Store failures. Any of them means the operation did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record could not be decoded: {0}")]
    Codec(#[from] postcard::Error),
    #[error("store flush failed: {0}")]
    Flush(String),
    #[error("{0}")]
    Rejected(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("domain types always serialise")
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    Ok(postcard::from_bytes(b)?)
}

fn abort<T>(e: StoreError) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn txn_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Key of a job in an outbox: next hop, priority, then arrival order, so a
/// prefix scan yields high before medium before low, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxKey {
    pub hop: [u8; 3],
    pub priority: u8,
    pub seq: u64,
}

impl OutboxKey {
    fn to_bytes(self) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..3].copy_from_slice(&self.hop);
        k[3] = self.priority;
        k[4..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    fn from_bytes(b: &[u8]) -> Self {
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

fn hop_bytes(site: &SiteCode) -> [u8; 3] {
    let mut h = [0u8; 3];
    h.copy_from_slice(site.as_bytes());
    h
}

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

/// Where the despooler puts a received job.
#[derive(Clone, Debug)]
pub enum Delivery {
    Inbox(Inbox),
    /// Route one hop on, keeping the job id.
    Forward(SiteCode),
    /// Test traffic addressed to this site.
    Probe,
    /// A chunk of a file package (destined here when `forward` is None).
    Chunk {
        index: u32,
        data: Vec<u8>,
        forward: Option<SiteCode>,
    },
}

/// What the despooler did with one received frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Despooled {
    Stored,
    Duplicate,
    Rejected(String),
}

/// A probe job recorded at its destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedProbe {
    pub job_id: Uuid,
    pub source: SiteCode,
    pub priority: Priority,
    pub arrival: u64,
    pub received_unix_us: u64,
}

/// A file package being received (or received) at this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedPackage {
    pub job_id: Uuid,
    pub package: FilePackage,
    pub source: SiteCode,
    pub dest: SiteCode,
    pub priority: Priority,
    pub created_unix_ms: u64,
    pub chunks_received: u32,
    pub complete: bool,
}

/// A CT1 that failed validation, kept rather than dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadCt1 {
    pub ct1: Ct1,
    pub reason: String,
    pub rejected_unix_ms: u64,
}

/// A severed link: persisted so it survives restarts until restored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFault {
    pub severed_unix_ms: u64,
}

/// The bootstrap package as received, with the id of the job that brought it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedBootstrap {
    pub job_id: Uuid,
    pub package: BootstrapPackage,
    pub received_unix_ms: u64,
}

type FlushWaiter = oneshot::Sender<std::result::Result<(), String>>;

struct Inner {
    db: sled::Db,
    meta: Tree,
    ct0: Tree,
    sitectrl_inbox: Tree,
    hman_inbox: Tree,
    status_inbox: Tree,
    bad: Tree,
    status: Tree,
    status_outq: Tree,
    outbox: Tree,
    failed: Tree,
    seen: Tree,
    chunks: Tree,
    packages: Tree,
    probes: Tree,
    sites: Tree,
    child_control: Tree,
    pending_ct1: Tree,
    deleted: Tree,
    logon_servers: Tree,
    links: Tree,
    faults: Tree,
    flush_tx: mpsc::UnboundedSender<FlushWaiter>,
    flushes: AtomicU64,
    /// Blob files already fsynced (see [`BlobSync`]).
    blobs: Arc<std::sync::Mutex<BlobSync>>,
    /// Probes received, kept in memory: sled counts a tree by walking it,
    /// and a count polled during a transfer would cost the transfer.
    probes_received: AtomicU64,
}

/// Handle to the node's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

const META_IDENTITY: &[u8] = b"identity";
const META_NODE_ID: &[u8] = b"node_id";
const META_BOOTSTRAP: &[u8] = b"bootstrap_package";
const META_BOOTSTRAP_STATE: &[u8] = b"bootstrap_state";
const META_DOMAIN: &[u8] = b"member_domain";
const META_FORMAT: &[u8] = b"format";
const META_UNIQUE_ID: &[u8] = b"unique_id_next";
const META_LOGON: &[u8] = b"logon_install";
const META_IDS_FROZEN: &[u8] = b"ids_frozen";
const STORE_FORMAT: u32 = 1;

impl Store {
    /// Opens (or creates) the database under `dir` and starts its group-commit
    /// task on the current tokio runtime.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            // Only the group-commit task flushes (see module docs).
            .flush_every_ms(None)
            .open()?;
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
                return Err(StoreError::Rejected(format!(
                    "data dir holds store format {other}; this build reads format {STORE_FORMAT}"
                )))
            }
        }
        let t = |name: &str| db.open_tree(name);
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let probes = t("probes")?;
        let probes_received = AtomicU64::new(probes.len() as u64);
        let inner = Arc::new(Inner {
            meta: t("meta")?,
            ct0: t("ct0")?,
            sitectrl_inbox: t("inbox.sitectrl")?,
            hman_inbox: t("inbox.hman")?,
            status_inbox: t("inbox.status")?,
            bad: t("bad")?,
            status: t("status")?,
            status_outq: t("status.outq")?,
            outbox: t("outbox")?,
            failed: t("failed")?,
            seen: t("despool.seen")?,
            chunks: t("chunks")?,
            packages: t("packages")?,
            probes,
            sites: t("hman.sites")?,
            child_control: t("hman.control")?,
            pending_ct1: t("hman.pending_ct1")?,
            deleted: t("hman.deleted")?,
            logon_servers: t("logon.servers")?,
            links: t("link_faults")?,
            faults: t("faults")?,
            db,
            flush_tx,
            flushes: AtomicU64::new(0),
            probes_received,
            blobs: Arc::new(std::sync::Mutex::new(
                BlobSync::open(dir.join("blobs")).map_err(|e| {
                    StoreError::Flush(format!("syncing sled's blob files at open: {e}"))
                })?,
            )),
        });
        tokio::spawn(group_commit(Arc::downgrade(&inner), flush_rx));
        Ok(Store { inner })
    }

    /// Waits until every write made before this call is on disk. Many callers
    /// share one flush.
    pub async fn durable(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .flush_tx
            .send(tx)
            .map_err(|_| StoreError::Flush("group commit stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Flush("group commit stopped".into()))?
            .map_err(StoreError::Flush)
    }

    /// Number of flushes performed (one per group commit batch).
    pub fn flush_count(&self) -> u64 {
        self.inner.flushes.load(Ordering::Relaxed)
    }

    /// Synchronous final flush for shutdown.
    pub fn flush_now(&self) -> Result<()> {
        flush_all(&self.inner.db, &self.inner.blobs).map_err(StoreError::Flush)
    }

    fn next_seq(&self) -> Result<u64> {
        Ok(self.inner.db.generate_id()?)
    }

    /// Writes `value` at `key`, or removes the key when there is none.
    fn put_or_remove<T: Serialize>(tree: &Tree, key: &[u8], value: Option<&T>) -> Result<()> {
        match value {
            Some(v) => tree.insert(key, enc(v))?,
            None => tree.remove(key)?,
        };
        Ok(())
    }

    fn get<T: DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>> {
        match tree.get(key)? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    // ---- identity -------------------------------------------------------

    /// This node's permanent id, created on first use.
    pub fn node_id(&self) -> Result<Uuid> {
        if let Some(id) = Self::get(&self.inner.meta, META_NODE_ID)? {
            return Ok(id);
        }
        let id = Uuid::now_v7();
        self.inner.meta.insert(META_NODE_ID, enc(&id))?;
        Ok(id)
    }

    pub fn identity(&self) -> Result<Option<Identity>> {
        Self::get(&self.inner.meta, META_IDENTITY)
    }

    pub fn set_identity(&self, id: &Identity) -> Result<()> {
        self.inner.meta.insert(META_IDENTITY, enc(id))?;
        Ok(())
    }

    /// Installs the central primary: identity and CT0 serial 1 in one step.
    pub fn install_site(&self, id: &Identity, ct0: &SiteControl) -> Result<()> {
        (&self.inner.meta, &self.inner.ct0)
            .transaction(|(meta, ct0t)| {
                if meta.get(META_IDENTITY)?.is_some() {
                    return abort(StoreError::Rejected(
                        "this node is already installed".into(),
                    ));
                }
                meta.insert(META_IDENTITY, enc(id))?;
                ct0t.insert(&ct0.serial.to_be_bytes(), enc(ct0))?;
                Ok(())
            })
            .map_err(txn_err)
    }

    pub fn member_domain(&self) -> Result<Option<String>> {
        Self::get(&self.inner.meta, META_DOMAIN)
    }

    pub fn set_member_domain(&self, domain: &str) -> Result<()> {
        self.inner
            .meta
            .insert(META_DOMAIN, enc(&domain.to_string()))?;
        Ok(())
    }

    // ---- bootstrap ------------------------------------------------------

    pub fn bootstrap_package(&self) -> Result<Option<ReceivedBootstrap>> {
        Self::get(&self.inner.meta, META_BOOTSTRAP)
    }

    /// Records a received package; refuses a second one. Returns false when
    /// this very job was already recorded (a resend).
    /// `reinstall`: the site is installed and its parent runs the install
    /// again; accepted unless an install is running.
    pub fn accept_bootstrap(&self, pkg: &ReceivedBootstrap, reinstall: bool) -> Result<bool> {
        self.inner
            .meta
            .transaction(|meta| {
                if meta.get(META_IDENTITY)?.is_some() && !reinstall {
                    return abort(StoreError::Rejected(
                        "this node is already installed".into(),
                    ));
                }
                if let Some(existing) = meta.get(META_BOOTSTRAP)? {
                    let existing: ReceivedBootstrap =
                        dec(&existing).map_err(ConflictableTransactionError::Abort)?;
                    if existing.job_id == pkg.job_id {
                        // A resend of the same job: accept idempotently.
                        return Ok(false);
                    }
                    let failed = match meta.get(META_BOOTSTRAP_STATE)? {
                        Some(s) => matches!(
                            dec::<BootstrapState>(&s)
                                .map_err(ConflictableTransactionError::Abort)?,
                            BootstrapState::Failed { .. }
                        ),
                        None => false,
                    };
                    let complete = match meta.get(META_BOOTSTRAP_STATE)? {
                        Some(s) => matches!(
                            dec::<BootstrapState>(&s)
                                .map_err(ConflictableTransactionError::Abort)?,
                            BootstrapState::Complete
                        ),
                        None => true,
                    };
                    // A failed install may be replaced by a new one; a
                    // finished one may be run again.
                    let replaceable = failed || (reinstall && complete);
                    if !replaceable {
                        return abort(StoreError::Rejected(format!(
                            "this node is already installing site {}",
                            existing.package.site_code
                        )));
                    }
                }
                meta.insert(META_BOOTSTRAP, enc(pkg))?;
                meta.insert(
                    META_BOOTSTRAP_STATE,
                    enc(&BootstrapState::Running { completed_phase: 0 }),
                )?;
                Ok(true)
            })
            .map_err(txn_err)
    }

    pub fn bootstrap_state(&self) -> Result<Option<BootstrapState>> {
        Self::get(&self.inner.meta, META_BOOTSTRAP_STATE)
    }

    pub fn set_bootstrap_state(&self, s: &BootstrapState) -> Result<()> {
        self.inner.meta.insert(META_BOOTSTRAP_STATE, enc(s))?;
        Ok(())
    }

    // ---- site control ---------------------------------------------------

    /// The current site control image (highest serial).
    pub fn ct0(&self) -> Result<Option<SiteControl>> {
        match self.inner.ct0.last()? {
            Some((_, v)) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    pub fn ct0_at(&self, serial: u64) -> Result<Option<SiteControl>> {
        Self::get(&self.inner.ct0, &serial.to_be_bytes())
    }

    /// Serials kept in the CT0 history, oldest first.
    pub fn ct0_serials(&self) -> Result<Vec<u64>> {
        self.inner
            .ct0
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&k);
                Ok(u64::from_be_bytes(b))
            })
            .collect()
    }

    /// Applies a CT1 taken from the inbox: the new CT0 and the inbox removal
    /// happen together, and only if `new_ct0.serial` is exactly one past the
    /// current serial. The Site Configuration Manager is the only writer of
    /// CT0, so the check cannot race.
    pub fn apply_ct1(&self, inbox_key: u64, new_ct0: &SiteControl) -> Result<()> {
        let current = self.ct0()?.map(|c| c.serial).unwrap_or(0);
        if new_ct0.serial != current + 1 {
            return Err(StoreError::Rejected(format!(
                "serial {} does not follow the current serial {current}",
                new_ct0.serial
            )));
        }
        (&self.inner.ct0, &self.inner.sitectrl_inbox)
            .transaction(|(ct0t, inbox)| {
                ct0t.insert(&new_ct0.serial.to_be_bytes(), enc(new_ct0))?;
                inbox.remove(&inbox_key.to_be_bytes())?;
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Moves a CT1 from the inbox to the bad box with its reason.
    pub fn reject_ct1(&self, inbox_key: u64, bad: &BadCt1) -> Result<()> {
        (&self.inner.sitectrl_inbox, &self.inner.bad)
            .transaction(|(inbox, badt)| {
                inbox.remove(&inbox_key.to_be_bytes())?;
                badt.insert(&inbox_key.to_be_bytes(), enc(bad))?;
                Ok(())
            })
            .map_err(txn_err)
    }

    pub fn bad_ct1s(&self) -> Result<Vec<BadCt1>> {
        self.inner.bad.iter().values().map(|v| dec(&v?)).collect()
    }

    // ---- inboxes --------------------------------------------------------

    fn inbox_tree(&self, inbox: Inbox) -> &Tree {
        match inbox {
            Inbox::SiteControl => &self.inner.sitectrl_inbox,
            Inbox::Hierarchy => &self.inner.hman_inbox,
            Inbox::Status => &self.inner.status_inbox,
        }
    }

    /// Drops a job into a local inbox (no transfer), e.g. the central site's
    /// own CT2 to its own Hierarchy Manager.
    pub fn put_inbox(&self, inbox: Inbox, job: &Job) -> Result<u64> {
        let seq = self.next_seq()?;
        self.inbox_tree(inbox).insert(seq.to_be_bytes(), enc(job))?;
        Ok(seq)
    }

    /// Jobs waiting in an inbox, oldest first.
    pub fn inbox_items(&self, inbox: Inbox, limit: usize) -> Result<Vec<(u64, Job)>> {
        self.inbox_tree(inbox)
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
        self.inbox_tree(inbox).remove(key.to_be_bytes())?;
        Ok(())
    }

    pub fn inbox_len(&self, inbox: Inbox) -> usize {
        self.inbox_tree(inbox).len()
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
        self.inner.outbox.insert(key.to_bytes(), enc(job))?;
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
        self.inner
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
        Self::get(&self.inner.outbox, &key.to_bytes())
    }

    /// Whether a CT2 of `site` is still waiting in the outbox for `hop`.
    pub fn ct2_queued(&self, hop: &SiteCode, site: &SiteCode) -> Result<bool> {
        let prefix = [hop.as_bytes(), &[Priority::High as u8]].concat();
        for v in self.inner.outbox.scan_prefix(prefix).values() {
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
            self.inner.outbox.remove(k.to_bytes())?;
        }
        Ok(())
    }

    pub fn outbox_update(&self, key: OutboxKey, job: &Job) -> Result<()> {
        self.inner.outbox.insert(key.to_bytes(), enc(job))?;
        Ok(())
    }

    /// Moves a job whose retries are exhausted to the failed box.
    pub fn outbox_fail(&self, key: OutboxKey, failed: &FailedJob) -> Result<()> {
        (&self.inner.outbox, &self.inner.failed)
            .transaction(|(ob, fb)| {
                ob.remove(&key.to_bytes())?;
                fb.insert(&key.to_bytes(), enc(failed))?;
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Whether anything is queued for `hop` (without counting it all).
    pub fn outbox_has(&self, hop: &SiteCode) -> bool {
        self.inner
            .outbox
            .scan_prefix(hop.as_bytes())
            .next()
            .is_some()
    }

    pub fn outbox_len(&self, hop: &SiteCode) -> usize {
        self.inner.outbox.scan_prefix(hop.as_bytes()).count()
    }

    pub fn failed_len(&self, hop: &SiteCode) -> usize {
        self.inner.failed.scan_prefix(hop.as_bytes()).count()
    }

    pub fn failed_jobs(&self, hop: &SiteCode) -> Result<Vec<FailedJob>> {
        self.inner
            .failed
            .scan_prefix(hop.as_bytes())
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    /// Puts every failed job for `hop` back in its outbox with fresh retries.
    pub fn retry_failed(&self, hop: &SiteCode) -> Result<usize> {
        let keys: Vec<sled::IVec> = self
            .inner
            .failed
            .scan_prefix(hop.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for k in &keys {
            (&self.inner.outbox, &self.inner.failed)
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
        for tree in [&self.inner.outbox, &self.inner.failed] {
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

    // ---- file package chunks ----------------------------------------------

    fn chunk_key(id: &Uuid, index: u32) -> [u8; 20] {
        let mut k = [0u8; 20];
        k[..16].copy_from_slice(id.as_bytes());
        k[16..].copy_from_slice(&index.to_be_bytes());
        k
    }

    /// Stores the chunks of a package this node originates, and its job.
    /// Chunks first, job last: a crash in between leaves chunks without a
    /// job, which [`Store::drop_orphan_chunks`] frees at the next start.
    pub fn enqueue_file(&self, hop: &SiteCode, job: &Job, chunks: Vec<Vec<u8>>) -> Result<()> {
        for (i, c) in chunks.into_iter().enumerate() {
            self.inner
                .chunks
                .insert(Self::chunk_key(&job.id, i as u32), c)?;
        }
        self.enqueue(hop, job)?;
        Ok(())
    }

    /// Frees chunks that belong to no queued, failed or received package.
    /// Returns the number of packages whose chunks were dropped.
    pub fn drop_orphan_chunks(&self) -> Result<usize> {
        let mut owners = std::collections::HashSet::new();
        for tree in [&self.inner.outbox, &self.inner.failed] {
            for v in tree.iter().values() {
                let v = v?;
                let job = if std::ptr::eq(tree, &self.inner.failed) {
                    dec::<FailedJob>(&v)?.job
                } else {
                    dec::<Job>(&v)?
                };
                if matches!(job.payload, Payload::File(_)) {
                    owners.insert(job.id);
                }
            }
        }
        for k in self.inner.packages.iter().keys() {
            if let Ok(id) = Uuid::from_slice(&k?) {
                owners.insert(id);
            }
        }
        let mut orphans = std::collections::HashSet::new();
        for k in self.inner.chunks.iter().keys() {
            let k = k?;
            if let Ok(id) = Uuid::from_slice(&k[..16]) {
                if !owners.contains(&id) {
                    orphans.insert(id);
                }
            }
        }
        for id in &orphans {
            self.drop_chunks(id)?;
        }
        Ok(orphans.len())
    }

    pub fn chunk(&self, id: &Uuid, index: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .inner
            .chunks
            .get(Self::chunk_key(id, index))?
            .map(|v| v.to_vec()))
    }

    /// Frees the chunks of a package once it has left this node for good.
    pub fn drop_chunks(&self, id: &Uuid) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.inner.chunks.scan_prefix(id.as_bytes()).keys() {
            batch.remove(k?);
        }
        self.inner.chunks.apply_batch(batch)?;
        Ok(())
    }

    pub fn packages(&self) -> Result<Vec<ReceivedPackage>> {
        self.inner
            .packages
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn package(&self, id: &Uuid) -> Result<Option<ReceivedPackage>> {
        Self::get(&self.inner.packages, id.as_bytes())
    }

    // ---- despooler --------------------------------------------------------

    /// Persists, deduplicates and delivers a batch of received jobs in one
    /// transaction: a job is either fully delivered and remembered, or not
    /// at all. The caller acknowledges after [`Store::durable`].
    pub fn despool(&self, batch: &[(Job, Delivery)]) -> Result<Vec<Despooled>> {
        let i = &self.inner;
        let trees = (
            &i.seen,
            &i.sitectrl_inbox,
            &i.hman_inbox,
            &i.status_inbox,
            &i.outbox,
            &i.probes,
            &i.chunks,
            &i.packages,
        );
        let out = trees
            .transaction(|(seen, sc, hm, st, ob, pr, ch, pk)| {
                let mut out = Vec::with_capacity(batch.len());
                for (job, delivery) in batch {
                    let outcome = despool_one(job, delivery, seen, [sc, hm, st], ob, pr, ch, pk)?;
                    out.push(outcome);
                }
                Ok(out)
            })
            .map_err(txn_err)?;
        Ok(out)
    }

    /// Counts probes stored by [`Store::despool`], once they are durable
    /// (a count polled during a transfer then includes the last flush).
    pub fn probes_durable(&self, n: usize) {
        self.inner
            .probes_received
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn probe_count(&self) -> usize {
        self.inner.probes_received.load(Ordering::Relaxed) as usize
    }

    /// Every received probe, with its payload's size.
    pub fn probes(&self) -> Result<Vec<(ReceivedProbe, usize)>> {
        self.inner
            .probes
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                let (rec, rest) = postcard::take_from_bytes::<ReceivedProbe>(&v)?;
                Ok((rec, rest.len()))
            })
            .collect()
    }

    /// Drops status messages created before `before_ms` (oldest first, by
    /// their time-ordered key). Returns how many.
    pub fn prune_status(&self, before_ms: u64) -> Result<usize> {
        let mut n = 0;
        for kv in self.inner.status.iter() {
            let (k, v) = kv?;
            let m: StatusMessage = dec(&v)?;
            if m.time_unix_ms >= before_ms {
                break;
            }
            self.inner.status.remove(k)?;
            n += 1;
        }
        Ok(n)
    }

    /// Forgets delivered job ids recorded before `before_ms`: a sender
    /// resends only within moments of a broken stream.
    pub fn prune_seen(&self, before_ms: u64) -> Result<usize> {
        let mut n = 0;
        for kv in self.inner.seen.iter() {
            let (k, v) = kv?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[..8.min(v.len())]);
            if u64::from_be_bytes(b) < before_ms {
                self.inner.seen.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of job ids the despooler remembers.
    pub fn seen_len(&self) -> usize {
        self.inner.seen.len()
    }

    // ---- status messages ----------------------------------------------------

    /// Stores messages at this site and, when `replicate`, queues them for
    /// the parent; keyed by uid, so a repeat is harmless.
    pub fn store_status(&self, msgs: &[StatusMessage], replicate: bool) -> Result<()> {
        (&self.inner.status, &self.inner.status_outq)
            .transaction(|(st, oq)| {
                for m in msgs {
                    let fresh = st.insert(m.uid.as_bytes(), enc(m))?.is_none();
                    if replicate && fresh {
                        // The queue holds uids only: the message is in `status`.
                        oq.insert(m.uid.as_bytes(), &[] as &[u8])?;
                    }
                }
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Takes received status batches out of the inbox and stores their
    /// messages, atomically.
    pub fn despool_status(
        &self,
        inbox_keys: &[u64],
        msgs: &[StatusMessage],
        replicate: bool,
    ) -> Result<()> {
        (
            &self.inner.status,
            &self.inner.status_outq,
            &self.inner.status_inbox,
        )
            .transaction(|(st, oq, inbox)| {
                for m in msgs {
                    let fresh = st.insert(m.uid.as_bytes(), enc(m))?.is_none();
                    if replicate && fresh {
                        // The queue holds uids only: the message is in `status`.
                        oq.insert(m.uid.as_bytes(), &[] as &[u8])?;
                    }
                }
                for k in inbox_keys {
                    inbox.remove(&k.to_be_bytes())?;
                }
                Ok(())
            })
            .map_err(txn_err)
    }

    /// Messages waiting to be replicated to the parent, oldest first.
    /// Whether any message waits to be replicated.
    pub fn status_queued(&self) -> Result<bool> {
        Ok(self.inner.status_outq.first()?.is_some())
    }

    pub fn status_outq(&self, limit: usize) -> Result<Vec<StatusMessage>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for k in self.inner.status_outq.iter().keys() {
            if out.len() == limit {
                break;
            }
            let k = k?;
            match self.inner.status.get(&k)? {
                Some(v) => out.push(dec(&v)?),
                // Pruned by retention before it could be sent: nothing to send.
                None => {
                    self.inner.status_outq.remove(&k)?;
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
        (&self.inner.outbox, &self.inner.status_outq)
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
        for v in self.inner.status.range(start..).values() {
            let m: StatusMessage = dec(&v?)?;
            if site.is_some_and(|s| &m.site_code != s) || id.is_some_and(|i| m.id != i) {
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
        for v in self.inner.status.iter().values().rev() {
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
        for v in self.inner.status.iter().values().rev() {
            let m: StatusMessage = dec(&v?)?;
            if site.is_some_and(|s| &m.site_code != s) || id.is_some_and(|i| m.id != i) {
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

    // ---- hierarchy manager --------------------------------------------------

    pub fn sites(&self) -> Result<Vec<SiteRecord>> {
        self.inner.sites.iter().values().map(|v| dec(&v?)).collect()
    }

    pub fn site(&self, code: &SiteCode) -> Result<Option<SiteRecord>> {
        Self::get(&self.inner.sites, code.as_bytes())
    }

    pub fn put_site(&self, rec: &SiteRecord) -> Result<()> {
        self.inner
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
        (&self.inner.sites, &self.inner.outbox)
            .transaction(|(sites, ob)| {
                if sites.get(rec.site_code.as_bytes())?.is_some() {
                    return abort(StoreError::Rejected(format!(
                        "site {} already exists in the hierarchy",
                        rec.site_code
                    )));
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
            &self.inner.sites,
            &self.inner.child_control,
            &self.inner.hman_inbox,
        )
            .transaction(|(sites, cc, inbox)| {
                sites.insert(rec.site_code.as_bytes(), enc(rec))?;
                cc.insert(ct2.site_code.as_bytes(), enc(ct2))?;
                inbox.remove(&inbox_key.to_be_bytes())?;
                Ok(())
            })
            .map_err(txn_err)
    }

    /// The last CT2 a descendant (or this central site) reported.
    pub fn child_ct2(&self, code: &SiteCode) -> Result<Option<Ct2>> {
        Self::get(&self.inner.child_control, code.as_bytes())
    }

    /// The last CT1 this site sent to `site` and not yet seen applied:
    /// the next change builds on it (so changes made in a row queue up
    /// instead of going stale).
    pub fn pending_ct1(&self, site: &SiteCode) -> Result<Option<Ct1>> {
        Self::get(&self.inner.pending_ct1, site.as_bytes())
    }

    pub fn set_pending_ct1(&self, site: &SiteCode, ct1: Option<&Ct1>) -> Result<()> {
        Self::put_or_remove(&self.inner.pending_ct1, site.as_bytes(), ct1)
    }

    /// Records what is kept of a site being deleted, before it is gone
    /// (never lowering a counter already kept).
    pub fn keep_deleted(&self, gone: &DeletedSite) -> Result<DeletedSite> {
        let mut g = gone.clone();
        if let Some(prev) = self.deleted_site(&gone.site_code)? {
            g.next_unique_id = g.next_unique_id.max(prev.next_unique_id);
        }
        self.inner
            .deleted
            .insert(gone.site_code.as_bytes(), enc(&g))?;
        Ok(g)
    }

    /// Whether a deinstall job for `hop` waits in its outbox (or, with
    /// `failed`, sits in the failed box).
    pub fn deinstall_queued(&self, hop: &SiteCode, failed: bool) -> Result<bool> {
        let tree = if failed {
            &self.inner.failed
        } else {
            &self.inner.outbox
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
        Self::get(&self.inner.deleted, code.as_bytes())
    }

    /// Removes a child site from the site list, remembering what a
    /// re-created site keeps; its leftover outbox jobs move to the failed box.
    pub fn remove_site(&self, gone: &DeletedSite) -> Result<usize> {
        let code = &gone.site_code;
        let keys: Vec<sled::IVec> = self
            .inner
            .outbox
            .scan_prefix(code.as_bytes())
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for k in &keys {
            (&self.inner.outbox, &self.inner.failed)
                .transaction(|(ob, fb)| {
                    if let Some(v) = ob.remove(k)? {
                        let job: Job = dec(&v).map_err(ConflictableTransactionError::Abort)?;
                        if matches!(job.payload, Payload::Deinstall(_) | Payload::Bootstrap(_)) {
                            // Meaningless now, and harmful if retried later
                            // against a site re-created with this code.
                            return Ok(());
                        }
                        let f = FailedJob {
                            job,
                            reason: format!("site {code} was deleted"),
                            failed_unix_ms: now_ms(),
                        };
                        fb.insert(k, enc(&f))?;
                    }
                    Ok(())
                })
                .map_err(txn_err)?;
        }
        // Failed deinstall or bootstrap jobs of the site go too.
        let stale: Vec<sled::IVec> = self
            .inner
            .failed
            .scan_prefix(code.as_bytes())
            .filter_map(|kv| kv.ok())
            .filter(|(_, v)| {
                dec::<FailedJob>(v)
                    .map(|f| matches!(f.job.payload, Payload::Deinstall(_) | Payload::Bootstrap(_)))
                    .unwrap_or(false)
            })
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            self.inner.failed.remove(k)?;
        }
        let trees = (
            &self.inner.sites,
            &self.inner.child_control,
            &self.inner.deleted,
            &self.inner.pending_ct1,
            &self.inner.links,
        );
        trees
            .transaction(|(sites, cc, del, pend, links)| {
                sites.remove(code.as_bytes())?;
                cc.remove(code.as_bytes())?;
                pend.remove(code.as_bytes())?;
                links.remove(code.as_bytes())?;
                del.insert(code.as_bytes(), enc(gone))?;
                Ok(())
            })
            .map_err(txn_err)?;
        Ok(keys.len())
    }

    // ---- logon servers and SMS unique IDs -------------------------------------

    fn logon_key(domain: &str, server: &str) -> Vec<u8> {
        [
            domain.to_ascii_lowercase().as_bytes(),
            &[0],
            server.as_bytes(),
        ]
        .concat()
    }

    pub fn logon_records(&self) -> Result<Vec<LogonRecord>> {
        self.inner
            .logon_servers
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn put_logon_record(&self, r: &LogonRecord) -> Result<()> {
        self.inner
            .logon_servers
            .insert(Self::logon_key(&r.domain, &r.server), enc(r))?;
        Ok(())
    }

    pub fn remove_logon_record(&self, domain: &str, server: &str) -> Result<()> {
        self.inner
            .logon_servers
            .remove(Self::logon_key(domain, server))?;
        Ok(())
    }

    /// The site's next SMS unique ID (never below `floor`, the CT0's value).
    pub fn next_unique_id(&self, floor: u64) -> Result<u64> {
        Ok(Self::get::<u64>(&self.inner.meta, META_UNIQUE_ID)?
            .unwrap_or(0)
            .max(floor)
            .max(1))
    }

    /// Takes the next `size` IDs of the site's counter. Flush before
    /// handing the range out: a range is never given twice.
    pub fn allocate_range(&self, size: u64, floor: u64) -> Result<(u64, u64)> {
        // Atomic: concurrent callers (stage 3 installs, range requests)
        // never get the same range.
        let next = self.inner.meta.update_and_fetch(META_UNIQUE_ID, |old| {
            let cur = old
                .and_then(|b| postcard::from_bytes::<u64>(b).ok())
                .unwrap_or(0);
            Some(enc(&(cur.max(floor).max(1) + size)))
        })?;
        let end: u64 = dec(&next.expect("just written"))?;
        Ok((end - size, end))
    }

    /// Set when the parent starts deleting this site: no more ID ranges.
    pub fn ids_frozen(&self) -> Result<bool> {
        Ok(self.inner.meta.get(META_IDS_FROZEN)?.is_some())
    }

    pub fn freeze_ids(&self) -> Result<()> {
        self.inner.meta.insert(META_IDS_FROZEN, &[1u8])?;
        Ok(())
    }

    pub fn logon_install(&self) -> Result<Option<LogonInstall>> {
        Self::get(&self.inner.meta, META_LOGON)
    }

    pub fn set_logon_install(&self, l: Option<&LogonInstall>) -> Result<()> {
        Self::put_or_remove(&self.inner.meta, META_LOGON, l)
    }

    // ---- link faults and injected faults --------------------------------------

    pub fn link_fault(&self, to: &SiteCode) -> Result<Option<LinkFault>> {
        Self::get(&self.inner.links, to.as_bytes())
    }

    pub fn set_link_fault(&self, to: &SiteCode, fault: Option<&LinkFault>) -> Result<()> {
        Self::put_or_remove(&self.inner.links, to.as_bytes(), fault)
    }

    pub fn faults(&self) -> Result<Vec<Fault>> {
        self.inner
            .faults
            .iter()
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    pub fn set_fault(&self, fault: &Fault) -> Result<()> {
        self.inner.faults.insert(fault.name(), enc(fault))?;
        Ok(())
    }

    pub fn clear_fault(&self, name: &str) -> Result<bool> {
        Ok(self.inner.faults.remove(name)?.is_some())
    }
}

#[allow(clippy::too_many_arguments)]
fn despool_one(
    job: &Job,
    delivery: &Delivery,
    seen: &TransactionalTree,
    inboxes: [&TransactionalTree; 3],
    outbox: &TransactionalTree,
    probes: &TransactionalTree,
    chunks: &TransactionalTree,
    packages: &TransactionalTree,
) -> std::result::Result<Despooled, ConflictableTransactionError<StoreError>> {
    let id = job.id.as_bytes();
    if let Delivery::Chunk {
        index,
        data,
        forward,
    } = delivery
    {
        let Payload::File(pkg) = &job.payload else {
            return Ok(Despooled::Rejected(
                "chunk frame without a file package".into(),
            ));
        };
        let mut rec: ReceivedPackage = match packages.get(id)? {
            Some(v) => dec(&v).map_err(ConflictableTransactionError::Abort)?,
            None => ReceivedPackage {
                job_id: job.id,
                package: pkg.clone(),
                source: job.source.clone(),
                dest: job.dest.clone(),
                priority: job.priority,
                created_unix_ms: job.created_unix_ms,
                chunks_received: 0,
                complete: false,
            },
        };
        if *index < rec.chunks_received {
            return Ok(Despooled::Duplicate);
        }
        if *index > rec.chunks_received {
            return Ok(Despooled::Rejected(format!(
                "chunk {index} of package {} arrived before chunk {}",
                job.id, rec.chunks_received
            )));
        }
        chunks.insert(&Store::chunk_key(&job.id, *index), data.as_slice())?;
        rec.chunks_received += 1;
        if rec.chunks_received == pkg.chunk_count {
            rec.complete = true;
            if let Some(hop) = forward {
                let key = OutboxKey {
                    hop: hop_bytes(hop),
                    priority: job.priority as u8,
                    seq: outbox.generate_id()?,
                };
                outbox.insert(&key.to_bytes(), enc(job))?;
            }
        }
        packages.insert(id, enc(&rec))?;
        return Ok(Despooled::Stored);
    }
    // Checked before the job is remembered as seen: a refused job must not
    // turn its resend into a "duplicate".
    if matches!(delivery, Delivery::Probe) && !matches!(job.payload, Payload::Probe(_)) {
        return Ok(Despooled::Rejected(
            "a probe delivery must carry a probe".into(),
        ));
    }
    // One write that also tells whether the id was already there. A
    // repeat refreshes the time it is remembered from, which only keeps
    // it longer.
    if seen.insert(id, &now_ms().to_be_bytes())?.is_some() {
        return Ok(Despooled::Duplicate);
    }
    match delivery {
        Delivery::Inbox(inbox) => {
            let tree = match inbox {
                Inbox::SiteControl => inboxes[0],
                Inbox::Hierarchy => inboxes[1],
                Inbox::Status => inboxes[2],
            };
            let seq = tree.generate_id()?;
            tree.insert(&seq.to_be_bytes(), enc(job))?;
        }
        Delivery::Forward(hop) => {
            let key = OutboxKey {
                hop: hop_bytes(hop),
                priority: job.priority as u8,
                seq: outbox.generate_id()?,
            };
            outbox.insert(&key.to_bytes(), enc(job))?;
        }
        Delivery::Probe => {
            let arrival = probes.generate_id()?;
            let rec = ReceivedProbe {
                job_id: job.id,
                source: job.source.clone(),
                priority: job.priority,
                arrival,
                received_unix_us: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(0),
            };
            // The payload is kept too, as any delivered job's is: the
            // record, then the raw bytes (records written before payloads
            // were kept simply end after the record).
            let mut value = enc(&rec);
            if let Payload::Probe(data) = &job.payload {
                value.extend_from_slice(data);
            }
            probes.insert(&arrival.to_be_bytes(), value)?;
        }
        Delivery::Chunk { .. } => unreachable!("handled above"),
    }
    Ok(Despooled::Stored)
}

/// sled 0.34 writes any log item larger than a quarter segment (128 KiB: a
/// file chunk, or a consolidated tree node of large values) to its own file
/// under `blobs/`, named by its log sequence number, and never fsyncs it,
/// while its log flush makes the reference durable. After a power loss sled's
/// recovery stops at a reference to a torn blob, dropping everything logged
/// after it. So each group commit, after the log flush and before anyone is
/// told the writes are durable, fsyncs the blob files:
///
/// - The flush waits for every log reservation made before it began, and a
///   blob file is created after its reservation; so every blob a flushed
///   record refers to is complete and listed when the flush returns.
/// - A file listed then may also belong to a later write still being written.
///   It is fsynced now and again at the next commit, and only counts as
///   synced after that second pass (by which time that commit's flush has
///   waited for its write). Re-syncing a clean file costs next to nothing.
/// - A crash between the flush and the fsyncs loses only what this commit
///   had not yet acknowledged.
struct BlobSync {
    dir: std::path::PathBuf,
    /// Fsynced after a flush that waited for their writes: done.
    synced: std::collections::HashSet<std::ffi::OsString>,
    /// Fsynced once, possibly while still being written: sync again.
    seen_once: std::collections::HashSet<std::ffi::OsString>,
}

/// fsyncs run side by side at most this many at a time.
const BLOB_SYNC_THREADS: usize = 8;

impl BlobSync {
    /// Syncs every blob file already there (a previous run may have died
    /// before syncing some), so each commit only looks at new ones.
    fn open(dir: std::path::PathBuf) -> std::io::Result<BlobSync> {
        let mut b = BlobSync {
            dir,
            synced: Default::default(),
            seen_once: Default::default(),
        };
        b.after_flush()?;
        // Nothing is being written yet: what was just synced is complete.
        b.synced.extend(b.seen_once.drain());
        Ok(b)
    }

    /// Called after each log flush; see the type's documentation.
    fn after_flush(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = std::collections::HashSet::new();
        let mut todo = vec![];
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced.contains(&name) {
                todo.push((name.clone(), entry.path()));
            }
            present.insert(name);
        }
        // Forget files sled has collected.
        self.synced.retain(|n| present.contains(n));
        if todo.is_empty() {
            self.seen_once.clear();
            return Ok(());
        }
        for group in todo.chunks(BLOB_SYNC_THREADS) {
            std::thread::scope(|s| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|(_, path)| s.spawn(move || sync_file(path)))
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("fsync thread panicked"))
            })?;
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        let mut seen_now = std::collections::HashSet::new();
        for (name, _) in todo {
            if self.seen_once.contains(&name) {
                self.synced.insert(name);
            } else {
                seen_now.insert(name);
            }
        }
        self.seen_once = seen_now;
        Ok(())
    }
}

/// fsyncs one file; one that sled collected meanwhile needs nothing.
fn sync_file(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Flushes sled's log, then syncs its blob files (see [`BlobSync`]).
fn flush_all(db: &sled::Db, blobs: &std::sync::Mutex<BlobSync>) -> std::result::Result<(), String> {
    // One commit at a time, so no pass lists files before another's flush.
    let mut blobs = blobs.lock().expect("blob sync lock");
    db.flush().map_err(|e| e.to_string())?;
    blobs
        .after_flush()
        .map_err(|e| format!("syncing sled's blob files: {e}"))
}

/// The group-commit loop: waits for one request, gathers every request that
/// queued up meanwhile, flushes once, and releases them all.
async fn group_commit(inner: std::sync::Weak<Inner>, mut rx: mpsc::UnboundedReceiver<FlushWaiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let Some(inner) = inner.upgrade() else { break };
        let db = inner.db.clone();
        let blobs = inner.blobs.clone();
        let res = tokio::task::spawn_blocking(move || flush_all(&db, &blobs))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        inner.flushes.fetch_add(1, Ordering::Relaxed);
        drop(inner);
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> SiteCode {
        s.parse().unwrap()
    }

    fn probe_job(p: Priority) -> Job {
        Job::new(code("S01"), code("PRI"), p, Payload::Probe(vec![1, 2, 3]))
    }

    #[tokio::test]
    async fn outbox_orders_by_priority_then_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let hop = code("PRI");
        let low = probe_job(Priority::Low);
        let high = probe_job(Priority::High);
        let med = probe_job(Priority::Medium);
        store.enqueue(&hop, &low).unwrap();
        store.enqueue(&hop, &high).unwrap();
        store.enqueue(&hop, &med).unwrap();
        store.durable().await.unwrap();
        let mut order = vec![];
        for p in Priority::ALL {
            for (_, j) in store.outbox_scan(&hop, p, None, 10).unwrap() {
                order.push(j.id);
            }
        }
        assert_eq!(order, vec![high.id, med.id, low.id]);
        assert_eq!(store.outbox_hops().unwrap(), vec![hop.clone()]);
        assert_eq!(store.outbox_len(&hop), 3);
    }

    #[tokio::test]
    async fn despool_deduplicates_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let job = probe_job(Priority::Medium);
        {
            let store = Store::open(dir.path()).unwrap();
            let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
            assert_eq!(out, vec![Despooled::Stored]);
            let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
            assert_eq!(out, vec![Despooled::Duplicate]);
            store.durable().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let out = store.despool(&[(job.clone(), Delivery::Probe)]).unwrap();
        assert_eq!(out, vec![Despooled::Duplicate]);
        assert_eq!(store.probes().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn many_waiters_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tasks = vec![];
        for _ in 0..200 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.enqueue(&code("PRI"), &probe_job(Priority::Low)).unwrap();
                s.durable().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(store.flush_count() >= 1);
        assert!(store.flush_count() <= 200);
        assert_eq!(store.outbox_len(&code("PRI")), 200);
    }

    #[tokio::test]
    async fn old_status_messages_and_job_ids_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let msg = |t: u64| StatusMessage {
            uid: uuid::Builder::from_unix_timestamp_millis(t, &[7; 10]).into_uuid(),
            id: 1,
            severity: Severity::Informational,
            site_code: code("PRI"),
            component: "c".into(),
            machine: "m".into(),
            time_unix_ms: t,
            insertion_strings: vec![],
            text: "t".into(),
        };
        store
            .store_status(&[msg(1_000), msg(2_000), msg(3_000)], false)
            .unwrap();
        assert_eq!(store.prune_status(2_500).unwrap(), 2);
        let left = store.status_messages(None, None, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].time_unix_ms, 3_000);
        store
            .despool(&[(probe_job(Priority::Low), Delivery::Probe)])
            .unwrap();
        assert_eq!(store.prune_seen(now_ms() - 60_000).unwrap(), 0);
        assert_eq!(store.prune_seen(now_ms() + 1).unwrap(), 1);
        assert_eq!(store.seen_len(), 0);
    }

    #[tokio::test]
    async fn chunks_must_arrive_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pkg = FilePackage {
            name: "p".into(),
            total_size: 2,
            chunk_count: 2,
            sha256: vec![],
        };
        let job = Job::new(code("S01"), code("PRI"), Priority::Low, Payload::File(pkg));
        let chunk = |i: u32| Delivery::Chunk {
            index: i,
            data: vec![i as u8],
            forward: None,
        };
        let r = store.despool(&[(job.clone(), chunk(1))]).unwrap();
        assert!(matches!(r[0], Despooled::Rejected(_)));
        let r = store
            .despool(&[
                (job.clone(), chunk(0)),
                (job.clone(), chunk(0)),
                (job.clone(), chunk(1)),
            ])
            .unwrap();
        assert_eq!(
            r,
            vec![Despooled::Stored, Despooled::Duplicate, Despooled::Stored]
        );
        assert!(store.package(&job.id).unwrap().unwrap().complete);
    }
}
