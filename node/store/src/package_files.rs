//! The package store: one plain file per file package beside sled, at
//! `<store>/packages/<job id>`, holding exactly the package's bytes (as SMS
//! kept a package as files on the site server, not in its database).
//!
//! Chunks are written in place with positioned writes: every chunk but the
//! last has the package's chunk size, so chunk `i` sits at `i * chunk_size`.
//! sled keeps only the index and the resume point (the received package's
//! record and its count of chunks); the sender reads its chunks from here.
//!
//! Why files: sled 0.34 never gave the space of large values back (a value
//! over 128 KiB is a blob file whose removal it defers until a log segment
//! fills, and forgets at a restart), and one file per chunk cost a file
//! creation, an fsync and a directory fsync per chunk.
//!
//! Durability follows the group commit: a chunk is written and its file
//! listed as unsynced before the sled record that counts it; the commit
//! `fdatasync`s every listed file once (however many chunks of a package
//! the window brought) and the directory when a file was created, after
//! sled's flush and before the log's `fdatasync` (see `commit.rs`), so a
//! durable record never counts a chunk a power cut can take back.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

pub(crate) struct PackageFiles {
    dir: PathBuf,
    /// Package files written since the last commit's sync, and whether the
    /// directory gained a name meanwhile.
    unsynced: Mutex<Unsynced>,
}

#[derive(Default)]
struct Unsynced {
    files: BTreeSet<Uuid>,
    dir: bool,
}

impl PackageFiles {
    pub(crate) fn open(dir: PathBuf) -> std::io::Result<PackageFiles> {
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(PackageFiles {
            dir,
            unsynced: Mutex::new(Unsynced::default()),
        })
    }

    fn path(&self, id: &Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Writes bytes at `offset` of a package's file (created if new); they
    /// are durable after the next commit. Writing the same bytes again (a
    /// transaction retried, a chunk resent) changes nothing.
    pub(crate) fn write_at(&self, id: &Uuid, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let path = self.path(id);
        let created = !path.exists();
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        f.write_all_at(data, offset)?;
        let mut u = self.unsynced.lock().expect("unsynced lock");
        u.files.insert(*id);
        u.dir |= created;
        Ok(())
    }

    /// Reads `len` bytes at `offset`; None if the package has no file or
    /// the file does not reach that far (a chunk never written).
    pub(crate) fn read_at(
        &self,
        id: &Uuid,
        offset: u64,
        len: usize,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let f = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if f.metadata()?.len() < offset + len as u64 {
            return Ok(None);
        }
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)?;
        Ok(Some(buf))
    }

    /// Whether the package's file reaches the end of the range `offset..
    /// offset + len` (after a power cut, sled can keep a record whose chunk
    /// the file never received; a resend must then be written).
    pub(crate) fn holds(&self, id: &Uuid, offset: u64, len: usize) -> bool {
        std::fs::metadata(self.path(id)).is_ok_and(|m| m.len() >= offset + len as u64)
    }

    /// A package's file for reading from the start (the whole package).
    pub(crate) fn open_read(&self, id: &Uuid) -> std::io::Result<Option<File>> {
        match File::open(self.path(id)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Bytes held for one package.
    pub(crate) fn size(&self, id: &Uuid) -> u64 {
        std::fs::metadata(self.path(id)).map_or(0, |m| m.len())
    }

    /// Removes a package's file and makes the removal durable at once
    /// (the directory fsynced), so the space is back now and stays back.
    pub(crate) fn remove(&self, id: &Uuid) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => {
                self.unsynced
                    .lock()
                    .expect("unsynced lock")
                    .files
                    .remove(id);
                sync_dir(&self.dir)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Ids of every package with a file here.
    pub(crate) fn ids(&self) -> std::io::Result<Vec<Uuid>> {
        let mut out = vec![];
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            if let Some(id) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Proves package files can be written again: a chunk-sized file
    /// written, synced and removed.
    pub(crate) fn probe(&self) -> std::io::Result<()> {
        let path = self.dir.join(".write-probe");
        let res = File::create(&path)
            .and_then(|mut f| f.write_all(&vec![0u8; 1 << 20]).and_then(|_| f.sync_data()));
        let _ = std::fs::remove_file(&path);
        res
    }

    /// Called by the commit after sled's flush and before the log's sync:
    /// one `fdatasync` per package file written since the last call, then
    /// the directory if it gained a file.
    pub(crate) fn sync_written(&self) -> std::io::Result<()> {
        let todo = std::mem::take(&mut *self.unsynced.lock().expect("unsynced lock"));
        let mut files = todo.files.iter();
        let mut result = Ok(());
        for id in files.by_ref() {
            match File::open(self.path(id)).and_then(|f| f.sync_data()) {
                Ok(()) => {}
                // Freed meanwhile: nothing left to make durable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err((Some(*id), e));
                    break;
                }
            }
        }
        if result.is_ok() && todo.dir {
            if let Err(e) = sync_dir(&self.dir) {
                result = Err((None, e));
            }
        }
        match result {
            Ok(()) => Ok(()),
            Err((failed, e)) => {
                // Keep what is not synced yet for the next commit, which
                // fails until it is.
                let mut u = self.unsynced.lock().expect("unsynced lock");
                u.files.extend(failed);
                u.files.extend(files.copied());
                u.dir |= todo.dir;
                Err(e)
            }
        }
    }
}

fn sync_dir(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_land_in_place_and_read_back_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let files = PackageFiles::open(dir.path().join("packages")).unwrap();
        let id = Uuid::from_u128(0x5eed);
        files.write_at(&id, 0, b"abcd").unwrap();
        files.write_at(&id, 4, b"efgh").unwrap();
        files.write_at(&id, 8, b"ij").unwrap();
        // A resend of a chunk already there changes nothing.
        files.write_at(&id, 4, b"efgh").unwrap();
        assert_eq!(files.size(&id), 10);
        assert_eq!(files.read_at(&id, 4, 4).unwrap().unwrap(), b"efgh");
        assert_eq!(files.read_at(&id, 8, 4).unwrap(), None, "past the end");
        assert!(files.holds(&id, 8, 2) && !files.holds(&id, 8, 3));
        assert_eq!(files.ids().unwrap(), vec![id]);
        let u = files.unsynced.lock().unwrap();
        assert_eq!((u.files.len(), u.dir), (1, true), "one file to sync, once");
        drop(u);
        files.sync_written().unwrap();
        assert!(files.unsynced.lock().unwrap().files.is_empty());
        files.remove(&id).unwrap();
        assert_eq!(files.size(&id), 0);
        assert_eq!(files.read_at(&id, 0, 1).unwrap(), None);
        assert!(files.ids().unwrap().is_empty());
        files.remove(&id).unwrap();
    }
}
