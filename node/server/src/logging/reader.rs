//! Reading a component log and its rotated history with memory that does
//! not depend on the log's size: the start (the last N lines, or the first
//! line since a time) is found by scanning backwards in fixed blocks, then
//! lines are read forwards in bounded chunks, and a follower picks up what
//! is appended (across rotations).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::rotate::rotated;

/// Bytes read at a time when scanning backwards.
const BLOCK: u64 = 64 * 1024;
/// Bytes of a line's start looked at for its timestamp.
const PREFIX: u64 = 128;
/// Longest line returned whole; the rest of a longer one is cut.
pub const MAX_LINE: usize = 64 * 1024;
/// Text per chunk of lines (one gRPC message stays far below its limit).
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The time a log line was written: the RFC 3339 time the text format
/// starts with, or the `timestamp` of a JSON line. None for a line that
/// carries none (the continuation of a message with a newline in it).
pub fn stamp(line: &[u8]) -> Option<SystemTime> {
    let line = &line[..line.len().min(PREFIX as usize)];
    let text = if let Some(rest) = line.strip_prefix(b"{\"timestamp\":\"") {
        &rest[..rest.iter().position(|b| *b == b'"')?]
    } else {
        &line[..line.iter().position(|b| *b == b' ').unwrap_or(line.len())]
    };
    humantime::parse_rfc3339(std::str::from_utf8(text).ok()?).ok()
}

/// Which file identity a path has now (device and inode), to notice a
/// rotation; None where the platform has none.
fn identity(m: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

/// One file of a log's history with its length when it was opened.
struct Segment {
    file: File,
    len: u64,
}

/// A place in the history: segment index (oldest first) and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    seg: usize,
    off: u64,
}

/// A log's files, oldest first, opened together so that a rotation while
/// they are read neither repeats nor loses a file.
struct History {
    segs: Vec<Segment>,
    /// Whether the newest segment is the file being written (it may be
    /// missing for a moment during a rotation).
    current: bool,
}

impl History {
    fn open(path: &Path) -> io::Result<History> {
        let mut last = None;
        for _ in 0..5 {
            let (h, consistent) = Self::try_open(path)?;
            if consistent {
                return Ok(h);
            }
            last = Some(h);
        }
        // Rotating faster than it can be opened: read what was opened.
        Ok(last.expect("five attempts"))
    }

    fn try_open(path: &Path) -> io::Result<(History, bool)> {
        let mut newest_first = Vec::new();
        let mut current = false;
        for n in 0.. {
            match File::open(rotated(path, n)) {
                Ok(file) => {
                    let m = file.metadata()?;
                    current |= n == 0;
                    newest_first.push((Segment { file, len: m.len() }, identity(&m)));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && n == 0 => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        // Consistent if no file was opened twice under two names and the
        // file being written is still the one opened.
        let ids: Vec<_> = newest_first.iter().filter_map(|(_, id)| *id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        let now = std::fs::metadata(path).ok().and_then(|m| identity(&m));
        let first = if current { newest_first[0].1 } else { None };
        let consistent = unique.len() == ids.len() && now == first;
        let segs = newest_first.into_iter().rev().map(|(s, _)| s).collect();
        Ok((History { segs, current }, consistent))
    }

    fn end(&self) -> Pos {
        match self.segs.len() {
            0 => Pos { seg: 0, off: 0 },
            n => Pos {
                seg: n - 1,
                off: self.segs[n - 1].len,
            },
        }
    }

    /// Where reading starts: the last `tail` lines (all if 0), none older
    /// than `since`, and at most `max_bytes` of text (true if that cut
    /// lines the rest would have let through).
    fn start(
        &self,
        tail: u64,
        since: Option<SystemTime>,
        max_bytes: Option<u64>,
    ) -> io::Result<(Pos, bool)> {
        let mut count = 0u64;
        let mut any = self.end();
        let mut stamped = any;
        let mut after = 0u64;
        for seg in (0..self.segs.len()).rev() {
            let s = &self.segs[seg];
            let mut starts = LineStarts::new(&s.file, s.len);
            while let Some(off) = starts.prev()? {
                let pos = Pos { seg, off };
                if max_bytes.is_some_and(|max| after + (s.len - off) > max) {
                    return Ok((any, true));
                }
                if let Some(since) = since {
                    match stamp(starts.prefix(off)) {
                        // Lines after a stamped one carry on its message, so
                        // a start is always a stamped line.
                        Some(t) if t < since => return Ok((stamped, false)),
                        Some(_) => stamped = pos,
                        None => {}
                    }
                }
                any = pos;
                count += 1;
                if tail > 0 && count >= tail {
                    return Ok((any, false));
                }
            }
            after += s.len;
        }
        Ok((Pos { seg: 0, off: 0 }, false))
    }
}

/// The starts of a file's lines, newest first, found by reading backwards
/// one block at a time.
struct LineStarts<'a> {
    file: &'a File,
    len: u64,
    /// The next offset that may start a line (it does if it is 0 or follows
    /// a newline); None when all were seen.
    next: Option<u64>,
    buf: Vec<u8>,
    buf_at: u64,
}

impl<'a> LineStarts<'a> {
    fn new(file: &'a File, len: u64) -> Self {
        LineStarts {
            file,
            len,
            next: len.checked_sub(1),
            buf: Vec::new(),
            buf_at: 0,
        }
    }

    fn prev(&mut self) -> io::Result<Option<u64>> {
        while let Some(s) = self.next {
            if s == 0 {
                self.next = None;
                return Ok(Some(0));
            }
            let b = s - 1;
            if b < self.buf_at || b >= self.buf_at + self.buf.len() as u64 {
                // Read the block before `s` and the prefix of the line at `s`.
                let from = s.saturating_sub(BLOCK);
                let to = (s + PREFIX).min(self.len);
                self.buf.resize((to - from) as usize, 0);
                let mut f = self.file;
                f.seek(SeekFrom::Start(from))?;
                f.read_exact(&mut self.buf)?;
                self.buf_at = from;
            }
            let upto = (s - self.buf_at) as usize;
            match self.buf[..upto].iter().rposition(|c| *c == b'\n') {
                Some(i) => {
                    let start = self.buf_at + i as u64 + 1;
                    self.next = Some(start - 1);
                    return Ok(Some(start));
                }
                None if self.buf_at == 0 => self.next = Some(0),
                None => self.next = Some(self.buf_at),
            }
        }
        Ok(None)
    }

    /// The first bytes of the line at `start`, just returned by `prev`.
    fn prefix(&self, start: u64) -> &[u8] {
        let from = (start - self.buf_at) as usize;
        let to = self.buf.len().min(from + PREFIX as usize);
        let p = &self.buf[from..to];
        &p[..p.iter().position(|c| *c == b'\n').unwrap_or(p.len())]
    }
}

/// Drops the lines older than `since` (and the lines that continue them).
struct SinceFilter {
    since: Option<SystemTime>,
    skipping: bool,
}

impl SinceFilter {
    fn keep(&mut self, line: &[u8]) -> bool {
        let Some(since) = self.since else {
            return true;
        };
        if let Some(t) = stamp(line) {
            self.skipping = t < since;
        }
        !self.skipping
    }
}

/// A line as text, cut at [`MAX_LINE`] (`cut` bytes were dropped).
fn line_text(bytes: &[u8], cut: u64) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if cut > 0 {
        s.push_str(&format!(" [... {cut} more bytes of this line not shown]"));
    }
    s
}

/// Reads one line of at most `limit` bytes; keeps the first [`MAX_LINE`]
/// bytes in `out`. Returns the bytes consumed, the bytes cut and whether
/// the line ended with a newline.
fn read_line(r: &mut impl BufRead, limit: u64, out: &mut Vec<u8>) -> io::Result<(u64, u64, bool)> {
    out.clear();
    let (mut used, mut cut) = (0u64, 0u64);
    loop {
        if used == limit {
            return Ok((used, cut, false));
        }
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok((used, cut, false));
        }
        let avail = &avail[..avail.len().min((limit - used) as usize)];
        let (take, done) = match avail.iter().position(|c| *c == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let text = &avail[..if done { take - 1 } else { take }];
        let room = MAX_LINE - out.len();
        out.extend_from_slice(&text[..text.len().min(room)]);
        cut += text.len().saturating_sub(room) as u64;
        r.consume(take);
        used += take as u64;
        if done {
            return Ok((used, cut, true));
        }
    }
}

/// Follows the file being written, from an offset, across rotations.
struct Follower {
    path: PathBuf,
    file: Option<File>,
    id: Option<(u64, u64)>,
    pos: u64,
    /// The path now names another file: read this one to its end (what was
    /// written before the rename), then move on.
    rotated: bool,
    pending: Vec<u8>,
    pending_cut: u64,
    buf: Vec<u8>,
}

impl Follower {
    fn new(path: PathBuf, file: Option<File>, pos: u64) -> Follower {
        let id = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .and_then(|m| identity(&m));
        Follower {
            path,
            file,
            id,
            pos,
            rotated: false,
            pending: Vec::new(),
            pending_cut: 0,
            buf: vec![0; BLOCK as usize],
        }
    }

    /// Appends the complete new lines to `out` until about `budget` bytes.
    fn poll(&mut self, out: &mut Vec<String>, budget: usize) -> io::Result<()> {
        let mut used = 0;
        loop {
            let Some(file) = self.file.as_mut() else {
                let next = match self.rotated {
                    // The file read was rotated away: its successor may
                    // itself be rotated by now (rotations faster than the
                    // polls), so go through them in order.
                    true => successor(&self.path, self.id)?,
                    false => open_if_there(&self.path)?,
                };
                let Some(f) = next else {
                    return Ok(());
                };
                self.id = f.metadata().ok().and_then(|m| identity(&m));
                self.file = Some(f);
                self.pos = 0;
                self.rotated = false;
                continue;
            };
            if used >= budget {
                return Ok(());
            }
            file.seek(SeekFrom::Start(self.pos))?;
            let n = file.read(&mut self.buf)?;
            if n > 0 {
                self.pos += n as u64;
                used += n;
                let mut rest = &self.buf[..n];
                while let Some(i) = rest.iter().position(|c| *c == b'\n') {
                    take(&mut self.pending, &mut self.pending_cut, &rest[..i]);
                    out.push(line_text(&self.pending, self.pending_cut));
                    self.pending.clear();
                    self.pending_cut = 0;
                    rest = &rest[i + 1..];
                }
                take(&mut self.pending, &mut self.pending_cut, rest);
                continue;
            }
            if self.rotated {
                // The old file is read to its end: a last line without a
                // newline is still a line.
                if !self.pending.is_empty() {
                    out.push(line_text(&self.pending, self.pending_cut));
                    self.pending.clear();
                    self.pending_cut = 0;
                }
                self.file = None;
                continue;
            }
            match std::fs::metadata(&self.path) {
                Ok(m) if identity(&m) != self.id => {
                    self.rotated = true;
                    continue;
                }
                Ok(m) if m.len() < self.pos => {
                    // Cut short by hand: carry on from its new end.
                    self.pos = m.len();
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Between the rename and the new file: it comes soon.
                    self.rotated = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn open_if_there(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the file written after the one with identity `id`, which was
/// rotated away: if that file is now `NAME.log.K`, its successor is
/// `NAME.log.K-1` (`NAME.log` for K = 1). If it is gone (deleted beyond
/// --log-keep), the oldest file there is. None if there is none yet.
fn successor(path: &Path, id: Option<(u64, u64)>) -> io::Result<Option<File>> {
    let id_at = |n: usize| -> io::Result<Option<Option<(u64, u64)>>> {
        match std::fs::metadata(rotated(path, n)) {
            Ok(m) => Ok(Some(identity(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    for _ in 0..5 {
        let (mut found, mut oldest) = (None, 0);
        let mut n = 1;
        while let Some(i) = id_at(n)? {
            if i == id {
                found = Some(n);
                break;
            }
            oldest = n;
            n += 1;
        }
        let next = match found {
            Some(k) => k - 1,
            None => oldest,
        };
        let Some(f) = open_if_there(&rotated(path, next))? else {
            if next == 0 {
                return Ok(None);
            }
            continue;
        };
        // Rotation renames the oldest first, so if the old file still has
        // its name, the one opened had not moved either.
        match found {
            Some(k) if id_at(k)? != Some(id) => continue,
            _ => return Ok(Some(f)),
        }
    }
    // Rotating faster than this can look: carry on with the newest.
    open_if_there(path)
}

/// Adds `bytes` to a line being assembled, keeping its first [`MAX_LINE`].
fn take(line: &mut Vec<u8>, cut: &mut u64, bytes: &[u8]) {
    let room = MAX_LINE - line.len();
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    *cut += bytes.len().saturating_sub(room) as u64;
}

/// A read of one log: its backlog, then (when following) what is appended.
pub struct LogReader {
    hist: History,
    /// Where the backlog read is; None once it is done.
    at: Option<(Pos, BufReader<File>)>,
    filter: SinceFilter,
    follower: Option<Follower>,
    line: Vec<u8>,
}

impl LogReader {
    /// Opens log file `path` (`DIR/logs/NAME.log`) and its rotated history
    /// to read the last `tail` lines (all if 0), none older than `since`,
    /// then follow it if asked. `max_bytes` bounds the backlog (the newest
    /// part is kept); the flag says it cut something.
    pub fn open(
        path: &Path,
        tail: u64,
        since: Option<SystemTime>,
        follow: bool,
        max_bytes: Option<u64>,
    ) -> io::Result<(LogReader, bool)> {
        let hist = History::open(path)?;
        let (start, truncated) = hist.start(tail, since, max_bytes)?;
        let at = match hist.segs.get(start.seg) {
            Some(s) => {
                let mut f = s.file.try_clone()?;
                f.seek(SeekFrom::Start(start.off))?;
                Some((start, BufReader::new(f)))
            }
            None => None,
        };
        let follower = follow.then(|| {
            // Following starts where the backlog ends, in the same file.
            let end = hist.end();
            let file = if hist.current {
                hist.segs.last().and_then(|s| s.file.try_clone().ok())
            } else {
                None
            };
            let pos = if file.is_some() { end.off } else { 0 };
            Follower::new(path.to_path_buf(), file, pos)
        });
        let r = LogReader {
            hist,
            at,
            filter: SinceFilter {
                since,
                skipping: false,
            },
            follower,
            line: Vec::new(),
        };
        Ok((r, truncated))
    }

    /// Whether [`LogReader::next_chunk`] may have more later.
    pub fn following(&self) -> bool {
        self.follower.is_some()
    }

    /// The next lines (about [`CHUNK_BYTES`] of them), or None when there is
    /// nothing more now (ever, unless following).
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<String>>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some((pos, r)) = self.at.as_mut() {
            if bytes >= CHUNK_BYTES {
                return Ok(Some(out));
            }
            let seg = &self.hist.segs[pos.seg];
            let last = pos.seg + 1 == self.hist.segs.len();
            let (used, cut, complete) = read_line(r, seg.len - pos.off, &mut self.line)?;
            if used == 0 || (!complete && last && self.follower.is_some()) {
                // This file is done (a partial last line of the file being
                // written is left to the follower, which sees it finished).
                if last {
                    if let Some(f) = self.follower.as_mut() {
                        if f.file.is_some() {
                            f.pos = pos.off;
                        }
                    }
                    self.at = None;
                } else {
                    let next = Pos {
                        seg: pos.seg + 1,
                        off: 0,
                    };
                    let mut f = self.hist.segs[next.seg].file.try_clone()?;
                    f.seek(SeekFrom::Start(0))?;
                    self.at = Some((next, BufReader::new(f)));
                }
                continue;
            }
            pos.off += used;
            if self.filter.keep(&self.line) {
                bytes += self.line.len() + 1;
                out.push(line_text(&self.line, cut));
            }
        }
        if let Some(f) = self.follower.as_mut() {
            let before = out.len();
            f.poll(&mut out, CHUNK_BYTES.saturating_sub(bytes))?;
            let mut i = before;
            while i < out.len() {
                if self.filter.keep(out[i].as_bytes()) {
                    i += 1;
                } else {
                    out.remove(i);
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::rotate::RotatingFile;
    use std::io::Write;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn line(secs: u64, text: &str) -> String {
        format!(
            "{}  INFO {text}",
            humantime::format_rfc3339_micros(at(secs))
        )
    }

    fn read_all(path: &Path, tail: u64, since: Option<SystemTime>) -> Vec<String> {
        let (mut r, truncated) = LogReader::open(path, tail, since, false, None).unwrap();
        assert!(!truncated);
        let mut all = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            all.extend(c);
        }
        all
    }

    #[test]
    fn reads_the_timestamps_of_text_and_json_lines() {
        assert_eq!(stamp(line(5, "x").as_bytes()), Some(at(5)));
        let json = format!(
            "{{\"timestamp\":\"{}\",\"level\":\"INFO\"}}",
            humantime::format_rfc3339_micros(at(7))
        );
        assert_eq!(stamp(json.as_bytes()), Some(at(7)));
        assert_eq!(stamp(b"  continued message"), None);
        assert_eq!(stamp(b""), None);
        assert_eq!(stamp(b"{\"timestamp\":\"never closed"), None);
    }

    #[test]
    fn line_starts_are_found_backwards_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        // Lines of many lengths, some longer than a block, no final newline.
        let lines: Vec<String> = (0..300)
            .map(|i| "x".repeat((i * 977) % (BLOCK as usize * 2)))
            .collect();
        let text = lines.join("\n");
        std::fs::write(&p, &text).unwrap();
        let f = File::open(&p).unwrap();
        let mut starts = LineStarts::new(&f, text.len() as u64);
        let mut got = Vec::new();
        while let Some(s) = starts.prev().unwrap() {
            assert!(starts.prefix(s).iter().all(|c| *c == b'x'));
            got.push(s);
        }
        got.reverse();
        let mut want = vec![0u64];
        let mut off = 0u64;
        for l in &lines[..lines.len() - 1] {
            off += l.len() as u64 + 1;
            want.push(off);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn tail_reads_the_last_lines_across_the_rotated_history() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hman.log");
        let mut w = RotatingFile::open(&p, 300, 100).unwrap();
        let all: Vec<String> = (0..500).map(|i| line(i, &format!("event {i}"))).collect();
        for l in &all {
            w.write_all(format!("{l}\n").as_bytes()).unwrap();
        }
        assert!(rotated(&p, 10).exists());
        assert_eq!(read_all(&p, 3, None), all[497..]);
        // More than the current file holds: older files supply the rest.
        assert_eq!(read_all(&p, 50, None), all[450..]);
        assert_eq!(read_all(&p, 0, None), all);
        assert_eq!(read_all(&p, 10_000, None), all);
    }

    #[test]
    fn since_keeps_the_newer_lines_and_their_continuations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sched.log");
        let mut w = RotatingFile::open(&p, 200, 100).unwrap();
        for i in 0..100 {
            w.write_all(format!("{}\n", line(i, &format!("event {i}"))).as_bytes())
                .unwrap();
            if i % 10 == 0 {
                w.write_all(format!("  continued {i}\n").as_bytes())
                    .unwrap();
            }
        }
        let got = read_all(&p, 0, Some(at(90)));
        assert_eq!(got.len(), 11);
        assert_eq!(got[0], line(90, "event 90"));
        assert_eq!(got[1], "  continued 90");
        assert_eq!(got[10], line(99, "event 99"));
        // The continuation of a line before `since` is not let in.
        let got = read_all(&p, 0, Some(at(81)));
        assert_eq!(got[0], line(81, "event 81"));
        // Since and tail together: the narrower wins.
        assert_eq!(read_all(&p, 2, Some(at(50))).len(), 2);
        assert_eq!(read_all(&p, 500, Some(at(95))).len(), 5);
        // A time after the last line: nothing.
        assert!(read_all(&p, 0, Some(at(1000))).is_empty());
    }

    #[test]
    fn a_capped_read_keeps_the_newest_lines_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.log");
        let text: String = (0..1000).map(|i| format!("line {i:05}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        let (mut r, truncated) = LogReader::open(&p, 0, None, false, Some(1000)).unwrap();
        assert!(truncated);
        let got = r.next_chunk().unwrap().unwrap();
        assert_eq!(got.len(), 1000 / 11);
        assert_eq!(got.last().unwrap(), "line 00999");
        let (_, truncated) = LogReader::open(&p, 5, None, false, Some(1000)).unwrap();
        assert!(!truncated);
    }

    #[test]
    fn an_overlong_line_is_cut_and_says_by_how_much() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let long = "y".repeat(MAX_LINE + 10);
        std::fs::write(&p, format!("a\n{long}\nb\n")).unwrap();
        let got = read_all(&p, 0, None);
        assert_eq!(got.len(), 3);
        assert!(got[1].starts_with(&"y".repeat(MAX_LINE)));
        assert!(got[1].ends_with("[... 10 more bytes of this line not shown]"));
        assert_eq!(read_all(&p, 2, None)[1], "b");
    }

    #[test]
    fn a_missing_log_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_all(&dir.path().join("none.log"), 5, None).is_empty());
    }

    #[test]
    fn a_follower_sees_appended_lines_across_rotations_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sender.log");
        let mut w = RotatingFile::open(&p, 100, 3).unwrap();
        w.write_all(b"before 1\n").unwrap();
        w.write_all(b"before 2\n").unwrap();
        let (mut r, _) = LogReader::open(&p, 1, None, true, None).unwrap();
        let mut got = Vec::new();
        let drain = |r: &mut LogReader, got: &mut Vec<String>| {
            while let Some(c) = r.next_chunk().unwrap() {
                got.extend(c);
            }
        };
        drain(&mut r, &mut got);
        assert_eq!(got, ["before 2"]);
        // A partly written line is held until its newline arrives.
        w.write_all(b"half").unwrap();
        drain(&mut r, &mut got);
        assert_eq!(got, ["before 2"]);
        w.write_all(b" done\n").unwrap();
        let mut want = vec!["before 2".to_string(), "half done".to_string()];
        // Lines written between polls, with rotations among them (keep is
        // 3, so each poll happens before the file read is deleted).
        for round in 0..20 {
            for i in 0..5 {
                let l = format!("round {round:02} line {i}");
                w.write_all(format!("{l}\n").as_bytes()).unwrap();
                want.push(l);
            }
            drain(&mut r, &mut got);
        }
        assert!(rotated(&p, 3).exists(), "the test should rotate");
        assert_eq!(got, want);
    }

    #[test]
    fn a_follower_goes_through_every_file_when_rotations_outpace_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hman.log");
        let mut w = RotatingFile::open(&p, 64, 1000).unwrap();
        w.write_all(b"start\n").unwrap();
        let (mut r, _) = LogReader::open(&p, 1, None, true, None).unwrap();
        let mut got = Vec::new();
        let mut want = vec!["start".to_string()];
        for round in 0..5 {
            // About twenty rotations before the follower looks again.
            for i in 0..60 {
                let l = format!("round {round} line {i:02}");
                w.write_all(format!("{l}\n").as_bytes()).unwrap();
                want.push(l);
            }
            while let Some(c) = r.next_chunk().unwrap() {
                got.extend(c);
            }
        }
        assert!(rotated(&p, 50).exists());
        assert_eq!(got, want);
    }
}
