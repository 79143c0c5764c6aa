//! What sled's own flush leaves undone on Linux, done after every flush.
//!
//! sled 0.34 makes its log durable with `sync_file_range` (sled issue 1452),
//! which writes the pages but neither flushes the disk's write cache nor
//! the file's metadata: after a power cut an acknowledged write can be gone.
//! So after each flush the log file gets an `fdatasync`, and when the store
//! directory's entries changed (sled renamed a snapshot into place, created
//! the blob directory) the directory is fsynced too, so the new names
//! survive. Only then are waiters told their writes are durable.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;

pub(crate) struct LogSync {
    /// sled's log file (`<dir>/db`), kept open for `fdatasync`.
    log: File,
    dir: PathBuf,
    /// The store directory's entries as of the last directory fsync.
    entries: BTreeSet<OsString>,
}

impl LogSync {
    /// Opens the log and syncs the directory once (a previous run may have
    /// died before its last rename was durable).
    pub(crate) fn open(dir: PathBuf) -> std::io::Result<LogSync> {
        let log = File::open(dir.join("db"))?;
        let mut s = LogSync {
            log,
            dir,
            entries: BTreeSet::new(),
        };
        s.log.sync_all()?;
        s.sync_dir_if_changed()?;
        Ok(s)
    }

    /// After a flush: the log's data (and size) to the disk, then the
    /// directory if its entries changed.
    pub(crate) fn after_flush(&mut self) -> std::io::Result<()> {
        self.log.sync_data()?;
        self.sync_dir_if_changed()
    }

    fn sync_dir_if_changed(&mut self) -> std::io::Result<()> {
        let now = std::fs::read_dir(&self.dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<BTreeSet<_>>>()?;
        if now != self.entries {
            File::open(&self.dir)?.sync_all()?;
            self.entries = now;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_the_directory_only_when_its_entries_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"log").unwrap();
        let mut s = LogSync::open(dir.path().to_path_buf()).unwrap();
        assert!(s.entries.contains(&OsString::from("db")));
        s.after_flush().unwrap();
        std::fs::write(dir.path().join("snap.00A"), b"x").unwrap();
        s.after_flush().unwrap();
        assert!(s.entries.contains(&OsString::from("snap.00A")));
        std::fs::remove_file(dir.path().join("snap.00A")).unwrap();
        s.after_flush().unwrap();
        assert!(!s.entries.contains(&OsString::from("snap.00A")));
    }

    #[test]
    fn a_store_without_a_log_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LogSync::open(dir.path().to_path_buf()).is_err());
    }
}
