//! The group commit: one flush for every waiter that registered before it.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, Weak};

use tokio::sync::oneshot;

use crate::blob_sync::BlobSync;
use crate::Inner;

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

/// Flushes sled's log, then syncs its blob files (see [`BlobSync`]).
pub(crate) fn flush_all(db: &sled::Db, blobs: &Mutex<BlobSync>) -> std::result::Result<(), String> {
    // One commit at a time, so no pass lists files before another's flush.
    let mut blobs = blobs.lock().expect("blob sync lock");
    db.flush().map_err(|e| e.to_string())?;
    blobs
        .after_flush()
        .map_err(|e| format!("syncing sled's blob files: {e}"))
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
        let res = flush_all(&inner.db, &inner.blobs);
        inner.flushes.fetch_add(1, Ordering::Relaxed);
        drop(inner);
        for w in waiters {
            let _ = w.send(res.clone());
        }
    }
}
