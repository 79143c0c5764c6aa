//! The group commit: one flush for every waiter that registered before it,
//! and the recovery of a store that failed to write.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::blob_sync::BlobSync;
use crate::log_sync::LogSync;
use crate::package_files::PackageFiles;
use crate::{Cell, Inner};

/// Everything a commit makes durable beyond sled's own flush.
pub(crate) struct DiskSync {
    pub(crate) log: LogSync,
    pub(crate) blobs: BlobSync,
}

/// One caller waiting for its writes to be durable, with the reopen count
/// when it asked.
pub(crate) type FlushWaiter = (u64, oneshot::Sender<std::result::Result<(), String>>);

/// How long a failed store stays failed before the first reopen: a caller
/// that wrote to the failed database asks for its commit right after its
/// write, and must be told it failed, not be answered by the new one.
const QUIET_BEFORE_REOPEN: Duration = Duration::from_secs(1);
/// While failed, how often the thread wakes to try the recovery. (A sled
/// that failed on its own, writing out a full buffer, is noticed by the
/// next commit or despool, whose writes it refuses.)
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Starts the group commit on its own OS thread: a flush blocks for as long
/// as the disk takes, and must not hold an async worker meanwhile. The
/// thread ends when the store is dropped (the sending side closes).
pub(crate) fn start(cell: Weak<Cell>, rx: Receiver<FlushWaiter>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sms-group-commit".into())
        .spawn(move || group_commit(cell, rx))?;
    Ok(())
}

/// Flushes sled, syncs its new blob files (see [`BlobSync`]) and the package
/// chunk files written since the last commit, then `fdatasync`s its log
/// (see [`LogSync`]).
pub(crate) fn flush_all(inner: &Inner, files: &PackageFiles) -> std::result::Result<(), String> {
    // One commit at a time, so no pass lists files before another's flush.
    let mut disk = inner.disk.lock().expect("disk sync lock");
    inner.db.flush().map_err(|e| e.to_string())?;
    // Blob files first, then the log that points at them: sled's recovery
    // takes a record whose blob file is missing for a blob deleted long ago
    // and skips it, so a log made durable before its blobs could lose half
    // a transaction at a power cut (found by tests/powercut).
    disk.blobs
        .after_flush()
        .map_err(|e| format!("syncing sled's blob files: {e}"))?;
    // Chunk files are listed before the records that count them are
    // written, so every chunk a flushed record counts is synced here.
    files
        .sync_written()
        .map_err(|e| format!("syncing package chunk files: {e}"))?;
    disk.log
        .after_flush()
        .map_err(|e| format!("syncing sled's log: {e}"))
}

/// The group-commit loop: waits for one request, gathers every request that
/// queued up meanwhile, flushes once, and releases them all. While the
/// store is failed it answers every request with the failure and tries a
/// reopen now and then.
fn group_commit(cell: Weak<Cell>, rx: Receiver<FlushWaiter>) {
    let mut last_reopen: Option<Instant> = None;
    loop {
        // While failed, wake up now and then to try the recovery even if
        // nobody asks for a commit.
        let failed = match cell.upgrade() {
            Some(c) => c.failure().is_some(),
            None => break,
        };
        let first = if failed {
            match rx.recv_timeout(RETRY_EVERY) {
                Ok(w) => Some(w),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(w) => Some(w),
                Err(_) => break,
            }
        };
        let mut waiters: Vec<FlushWaiter> = first.into_iter().collect();
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let Some(cell) = cell.upgrade() else { break };
        if let Some(f) = cell.failure() {
            // Writes made on the failed database are not durable, whatever
            // a flush of a new one says: every waiter now gets the failure.
            let due = last_reopen.is_none_or(|t| t.elapsed() >= QUIET_BEFORE_REOPEN);
            if f.since.elapsed() >= QUIET_BEFORE_REOPEN && due {
                last_reopen = Some(Instant::now());
                try_reopen(&cell);
            }
            let reason = cell.failure().map(|f| f.reason);
            let reason = reason.unwrap_or_else(|| f.reason.clone());
            for (_, w) in waiters {
                let _ = w.send(Err(format!("the store cannot write: {reason}")));
            }
            continue;
        }
        let Some(inner) = cell.current() else {
            continue;
        };
        if waiters.is_empty() {
            continue;
        }
        let started = Instant::now();
        let res = flush_all(&inner, &cell.files);
        cell.flushes.fetch_add(1, Ordering::Relaxed);
        cell.commit_seconds.observe(started.elapsed().as_secs_f64());
        cell.commit_waiters.observe(waiters.len() as f64);
        drop(inner);
        if let Err(e) = &res {
            fail(&cell, e);
        }
        let reopens = cell.reopens.load(Ordering::SeqCst);
        for (asked_at, w) in waiters {
            let r = match &res {
                Ok(()) if asked_at != reopens => {
                    Err("the store was reopened after a write failure; write again".into())
                }
                other => other.clone(),
            };
            let _ = w.send(r);
        }
    }
}

fn fail(cell: &Cell, reason: &str) {
    if cell.failure().is_none() {
        tracing::error!(
            "the store failed to write ({reason}); the node reports not-serving and reopens the store once it can write again"
        );
    }
    cell.fail(reason);
}

/// Clears the failure once the store can write again: first a chunk-sized
/// file (while even that fails, the disk is still full and the database is
/// left as it is, its reads still answering); then sled, a record written,
/// flushed and synced. A database that cannot write is dropped and opened
/// again (sled clears its kept error only at open); one that can is kept (a
/// chunk file that hit a full disk does not poison sled).
fn try_reopen(cell: &Arc<Cell>) {
    if let Err(e) = cell.files.probe() {
        cell.fail(&format!("writing a package chunk: {e}"));
        return;
    }
    let sled_ok = cell
        .current()
        .is_some_and(|inner| write_probe(&inner, cell).is_ok());
    if !sled_ok {
        // Readers get "unavailable" for the moment the database is closed.
        let old = cell.set_current(None);
        drop(old);
        let inner = match crate::open_inner(&cell.dir) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                cell.fail(&format!("reopening the store: {e}"));
                return;
            }
        };
        cell.reopens.fetch_add(1, Ordering::SeqCst);
        let probe = write_probe(&inner, cell);
        cell.set_current(Some(inner));
        if let Err(e) = probe {
            cell.fail(&e);
            return;
        }
        tracing::warn!("the store was reopened after a failed write");
    }
    *cell.failure.lock().expect("failure lock") = None;
    tracing::warn!("the store writes again");
}

/// A small record written, flushed and synced.
fn write_probe(inner: &Inner, cell: &Cell) -> std::result::Result<(), String> {
    #[cfg(test)]
    if cell.test_poisoned.swap(false, Ordering::SeqCst) {
        return Err("test: sled keeps its write error".into());
    }
    inner
        .meta
        .insert(
            crate::META_WRITE_PROBE,
            &sms_types::now_ms().to_be_bytes()[..],
        )
        .map_err(|e| e.to_string())?;
    flush_all(inner, &cell.files)
}
