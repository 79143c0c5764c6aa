//! The group commit: one flush for every waiter that registered before it.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, Weak};

use tokio::sync::oneshot;

use crate::blob_sync::BlobSync;
use crate::log_sync::LogSync;
use crate::Inner;

/// Everything a commit makes durable beyond sled's own flush.
pub(crate) struct DiskSync {
    pub(crate) log: LogSync,
    pub(crate) blobs: BlobSync,
}

/// One caller waiting for its writes to be durable.
pub(crate) type FlushWaiter = oneshot::Sender<std::result::Result<(), String>>;

/// Starts the group commit on its own OS thread: a flush blocks for as long
/// as the disk takes, and must not hold an async worker meanwhile. The
/// thread ends when the store is dropped (the sending side closes).
pub(crate) fn start(inner: Weak<Inner>, rx: Receiver<FlushWaiter>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sms-group-commit".into())
        .spawn(move || group_commit(inner, rx))?;
    Ok(())
}

/// Flushes sled, syncs its new blob files (see [`BlobSync`]), then
/// `fdatasync`s its log (see [`LogSync`]).
pub(crate) fn flush_all(db: &sled::Db, disk: &Mutex<DiskSync>) -> std::result::Result<(), String> {
    // One commit at a time, so no pass lists files before another's flush.
    let mut disk = disk.lock().expect("disk sync lock");
    db.flush().map_err(|e| e.to_string())?;
    // Blob files first, then the log that points at them: sled's recovery
    // takes a record whose blob file is missing for a blob deleted long ago
    // and skips it, so a log made durable before its blobs could lose half
    // a transaction at a power cut (found by tests/powercut).
    disk.blobs
        .after_flush()
        .map_err(|e| format!("syncing sled's blob files: {e}"))?;
    disk.log
        .after_flush()
        .map_err(|e| format!("syncing sled's log: {e}"))
}

/// The group-commit loop: waits for one request, gathers every request that
/// queued up meanwhile, flushes once, and releases them all.
fn group_commit(inner: Weak<Inner>, rx: Receiver<FlushWaiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let Some(inner) = inner.upgrade() else { break };
        let res = flush_all(&inner.db, &inner.disk);
        inner.flushes.fetch_add(1, Ordering::Relaxed);
        drop(inner);
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}
