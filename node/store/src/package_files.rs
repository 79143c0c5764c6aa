//! File package chunks as plain files beside sled, under `<store>/packages/
//! <job id>/<chunk index>`.
//!
//! They used to be sled values, and sled 0.34 never gave their space back:
//! a value over 128 KiB is a blob file whose removal sled defers until the
//! log segment that points at it fills up, which a log of small records
//! rarely does, and forgets entirely at a restart (ten 20 MiB packages left
//! about 650 MiB behind at every hop). A file removed is space returned.
//!
//! Durability follows the group commit: a chunk file is written and listed
//! as unsynced before the sled record that counts it; the commit fsyncs
//! every listed file and directory after sled's flush and before the log's
//! `fdatasync` (see `commit.rs`), so a durable record never points at a
//! chunk a power cut can take back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

pub(crate) struct PackageFiles {
    dir: PathBuf,
    /// Files and directories written since the last commit's sync.
    unsynced: Mutex<Vec<PathBuf>>,
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
            unsynced: Mutex::new(Vec::new()),
        })
    }

    fn package_dir(&self, id: &Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn chunk_path(&self, id: &Uuid, index: u32) -> PathBuf {
        self.package_dir(id).join(index.to_string())
    }

    /// Writes (or rewrites) one chunk; it is durable after the next commit.
    pub(crate) fn write(&self, id: &Uuid, index: u32, data: &[u8]) -> std::io::Result<()> {
        let pdir = self.package_dir(id);
        let mut unsynced = Vec::with_capacity(2);
        if !pdir.exists() {
            std::fs::create_dir_all(&pdir)?;
            // The package's directory entry lives in the packages directory.
            unsynced.push(self.dir.clone());
        }
        let path = self.chunk_path(id, index);
        let mut f = std::fs::File::create(&path)?;
        f.write_all(data)?;
        unsynced.push(path);
        // A new name in the package directory must survive too.
        unsynced.push(pdir);
        self.unsynced
            .lock()
            .expect("unsynced list lock")
            .extend(unsynced);
        Ok(())
    }

    pub(crate) fn read(&self, id: &Uuid, index: u32) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.chunk_path(id, index)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn exists(&self, id: &Uuid, index: u32) -> bool {
        self.chunk_path(id, index).exists()
    }

    /// Bytes held for one package.
    pub(crate) fn size(&self, id: &Uuid) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.package_dir(id)) else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Removes a package's chunks and makes the removal durable at once
    /// (the directory fsynced), so the space is back now and stays back.
    pub(crate) fn remove(&self, id: &Uuid) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.package_dir(id)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Ids of every package with chunks here.
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

    /// Proves chunk files can be written again: a chunk-sized file written,
    /// synced and removed.
    pub(crate) fn probe(&self) -> std::io::Result<()> {
        let path = self.dir.join(".write-probe");
        let res = std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&vec![0u8; 1 << 20]).and_then(|_| f.sync_data()));
        let _ = std::fs::remove_file(&path);
        res
    }

    /// Called by the commit after sled's flush and before the log's sync:
    /// fsyncs what was written since the last call.
    pub(crate) fn sync_written(&self) -> std::io::Result<()> {
        let todo = std::mem::take(&mut *self.unsynced.lock().expect("unsynced list lock"));
        // Files before the directories that name them.
        let (mut dirs, mut files): (Vec<_>, Vec<_>) = todo.into_iter().partition(|p| p.is_dir());
        for v in [&mut files, &mut dirs] {
            v.sort();
            v.dedup();
        }
        let list: Vec<PathBuf> = files.into_iter().chain(dirs).collect();
        for (i, p) in list.iter().enumerate() {
            let r = if p.is_dir() {
                sync_dir(p)
            } else {
                std::fs::File::open(p).and_then(|f| f.sync_data())
            };
            match r {
                Ok(()) => {}
                // Freed meanwhile: nothing left to make durable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Keep the rest for the next commit, which fails until
                    // they are synced.
                    self.unsynced
                        .lock()
                        .expect("unsynced list lock")
                        .extend(list[i..].iter().cloned());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

fn sync_dir(p: &Path) -> std::io::Result<()> {
    std::fs::File::open(p)?.sync_all()
}
