//! sled's blob files and the fsync they need (see [`BlobSync`]).

/// sled 0.34 writes any log item larger than a quarter segment (128 KiB: a
/// file chunk, or a consolidated tree node of large values) to its own file
/// under `blobs/`, named by its log sequence number, and never fsyncs it.
/// After a power loss sled's recovery stops at a reference to a torn blob
/// (dropping everything logged after it), and silently skips a record whose
/// blob file is missing (taking it for a blob deleted long ago), which keeps
/// half of a transaction. So each group commit, after sled's flush, fsyncs
/// the blob files, and only then makes the log durable (see `commit.rs`):
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
pub(crate) struct BlobSync {
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
    pub(crate) fn open(dir: std::path::PathBuf) -> std::io::Result<BlobSync> {
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
    pub(crate) fn after_flush(&mut self) -> std::io::Result<()> {
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
