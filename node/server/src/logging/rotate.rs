//! A log file that rotates by size: `NAME.log` is the file written,
//! `NAME.log.1` the one before it, up to `NAME.log.KEEP`, the oldest kept.
//!
//! Written here rather than taken from a crate: the size-rotating crates
//! looked at (file-rotate, rolling-file, logroller) pull in chrono and a
//! compressor, and file-rotate silently discards what is written while its
//! file cannot be opened; a site's logs must never lose a line.
//!
//! One writer owns the file (the `tracing-appender` worker thread of its
//! log), so rotation needs no lock; every `write` is one whole event, and a
//! rotation happens only between two writes, so no line is ever split
//! across two files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The name of rotated file `n` of the log at `path` (`n` = 0 is the file
/// being written).
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// See the module documentation.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// None only after a failed reopen; the next write tries again.
    file: Option<File>,
    /// Bytes in the current file.
    size: u64,
    /// A rotation failed and was reported; reported again only after one
    /// succeeds (a full disk must not print once per line).
    failing: bool,
}

impl RotatingFile {
    /// Opens (or creates) the log at `path` to append to it; it rotates
    /// once it would grow past `max_bytes`, keeping `keep` older files.
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let path = path.into();
        let file = append(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            max_bytes: max_bytes.max(1),
            keep,
            file: Some(file),
            size,
            failing: false,
        })
    }

    /// Moves `NAME.log` to `NAME.log.1` (and each older file one up, the
    /// oldest beyond `keep` deleted) and starts an empty `NAME.log`.
    fn rotate(&mut self) -> io::Result<()> {
        // Closed before the rename: a reader that sees the new file knows
        // nothing more will be written to the old one.
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
        }
        self.file = None;
        // History beyond `keep` (left by a larger --log-keep) goes too.
        let mut n = self.keep.max(1);
        while rotated(&self.path, n).exists() {
            remove(&rotated(&self.path, n))?;
            n += 1;
        }
        if self.keep == 0 {
            remove(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                rename(&rotated(&self.path, n), &rotated(&self.path, n + 1))?;
            }
            rename(&self.path, &rotated(&self.path, 1))?;
        }
        self.file = Some(append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            match self.rotate() {
                Ok(()) => self.failing = false,
                Err(e) => {
                    // The line still goes to the file there is; rotation
                    // is tried again at the next write.
                    if !self.failing {
                        eprintln!("cannot rotate {}: {e}", self.path.display());
                    }
                    self.failing = true;
                }
            }
        }
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => {
                let f = append(&self.path)?;
                self.size = f.metadata()?.len();
                self.file.insert(f)
            }
        };
        file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn history(path: &Path) -> Vec<String> {
        (0..200)
            .rev()
            .map(|n| rotated(path, n))
            .filter(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    #[test]
    fn rotates_by_size_and_keeps_whole_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hman.log");
        let mut f = RotatingFile::open(&path, 100, 150).unwrap();
        for i in 0..200 {
            f.write_all(format!("line {i:04} of the hierarchy manager\n").as_bytes())
                .unwrap();
        }
        let files = history(&path);
        assert!(files.len() > 10, "rotated {} times", files.len());
        for text in &files {
            assert!(
                text.len() <= 100,
                "a file outgrew its limit: {}",
                text.len()
            );
            assert!(text.ends_with('\n'), "a line was split: {text:?}");
        }
        let all: Vec<String> = files.concat().lines().map(String::from).collect();
        let want: Vec<String> = (0..200)
            .map(|i| format!("line {i:04} of the hierarchy manager"))
            .collect();
        assert_eq!(all, want);
    }

    #[test]
    fn keeps_only_the_configured_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sched.log");
        // A larger history from an earlier run with a larger --log-keep.
        for n in 1..=6 {
            std::fs::write(rotated(&path, n), "old\n").unwrap();
        }
        let mut f = RotatingFile::open(&path, 10, 2).unwrap();
        for i in 0..10 {
            f.write_all(format!("{i:09}\n").as_bytes()).unwrap();
        }
        assert!(rotated(&path, 2).exists());
        for n in 3..=6 {
            assert!(!rotated(&path, n).exists(), ".{n} should be gone");
        }
        let kept = history(&path).concat();
        assert_eq!(kept, "000000007\n000000008\n000000009\n");
    }

    #[test]
    fn keep_zero_starts_the_file_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        let mut f = RotatingFile::open(&path, 8, 0).unwrap();
        f.write_all(b"first\n").unwrap();
        f.write_all(b"second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        assert!(!rotated(&path, 1).exists());
    }

    #[test]
    fn a_line_longer_than_the_limit_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, 4, 3).unwrap();
        f.write_all(b"a\n").unwrap();
        f.write_all(b"a line longer than four bytes\n").unwrap();
        f.write_all(b"b\n").unwrap();
        assert_eq!(
            history(&path).concat(),
            "a\na line longer than four bytes\nb\n"
        );
    }

    #[test]
    fn a_failed_rotation_keeps_the_line_in_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.log");
        let mut f = RotatingFile::open(&path, 4, 1).unwrap();
        f.write_all(b"one\n").unwrap();
        // A directory where the rotated file should go: the rename fails.
        std::fs::create_dir(rotated(&path, 1)).unwrap();
        std::fs::write(rotated(&path, 1).join("block"), "").unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        // Once the obstacle is gone, rotation picks up again.
        std::fs::remove_dir_all(rotated(&path, 1)).unwrap();
        f.write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 1)).unwrap(),
            "one\ntwo\n"
        );
    }

    /// Many threads logging through the node's non-blocking writer at once:
    /// every line lands exactly once, whole, across the rotated files.
    #[test]
    fn concurrent_writers_lose_nothing_across_rotations() {
        use tracing_appender::non_blocking::NonBlockingBuilder;
        use tracing_subscriber::fmt::MakeWriter;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sender.log");
        let file = RotatingFile::open(&path, 2048, 1000).unwrap();
        let (w, guard) = NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(64)
            .finish(file);
        std::thread::scope(|s| {
            for t in 0..8 {
                let w = w.clone();
                s.spawn(move || {
                    for i in 0..500 {
                        let mut out = w.make_writer();
                        out.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(w);
        drop(guard);
        let files = history(&path);
        assert!(files.len() > 20, "only {} files", files.len());
        let lines: Vec<String> = files.concat().lines().map(String::from).collect();
        assert_eq!(lines.len(), 8 * 500);
        let unique: BTreeSet<&String> = lines.iter().collect();
        assert_eq!(unique.len(), 8 * 500, "a line was written twice");
        for t in 0..8 {
            let own: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(own, (0..500).collect::<Vec<_>>(), "thread {t}");
        }
    }
}
