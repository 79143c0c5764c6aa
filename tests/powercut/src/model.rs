//! The filesystem's state, without FUSE: a live view (what processes see)
//! over a durable one (what a power cut leaves), and the rules that move
//! changes from the first to the second. Kept apart from the FUSE glue so
//! the rules are unit-tested on any machine, with or without `/dev/fuse`.
//!
//! # The durability model
//!
//! * **File contents.** A `write` lands in a dirty page (4 KiB, loaded from
//!   the durable bytes on first touch) of the file's in-memory overlay;
//!   reads see the overlay first (read-your-writes). Only `fsync` or
//!   `fdatasync` *of that file* writes its dirty pages and its size
//!   (truncations included) to the durable copy. Nothing else does:
//!   `sync_file_range`, `close`, `flush` and the passage of time never
//!   reach the layer as a sync (FUSE does not even see a
//!   `sync_file_range`), so sled's own flush leaves its log volatile here.
//!   That is stricter than a real disk, where data `sync_file_range` wrote
//!   out also becomes durable at the next cache flush anyone causes; what
//!   it models is the moment before that flush, when an acknowledgement
//!   based on `sync_file_range` alone is a lie.
//! * **Names** (create, mkdir, unlink, rmdir, rename). They change the live
//!   tree at once and the durable tree only when synced:
//!   - `fsync` of a directory makes its whole entry list durable as it is
//!     now (new children exist durably from then on, with whatever content
//!     they last had synced: a never-synced file is empty);
//!   - in [`Namespace::Linked`] (the default) an `fsync`/`fdatasync` of any
//!     file or directory also makes durable the chain of names that reaches
//!     it from the root, each as it is now (a rename moves the durable name
//!     as one unit). This is what ext4's journal (and XFS's log, and
//!     btrfs's log tree) does for the fsynced inode; ext4 in fact commits
//!     *every* earlier metadata change with it, so this model keeps a
//!     subset of what ext4 keeps and is at least as strict (sled needs
//!     its log, blob files and snapshot renames durable; each is reached
//!     by an fsync of the file or of its directory);
//!   - in [`Namespace::Posix`] only a directory `fsync` makes names
//!     durable: the letter of POSIX, stricter than any Linux filesystem.
//! * **A power cut** ([`State::cut`]) freezes the durable state and fails
//!   every later operation with `EIO`; [`State::reboot`] then throws away
//!   the live view (every dirty page and unsynced name), forgets whatever
//!   is not reachable from the root durably, and starts a new live view
//!   equal to the durable one. When unsure, the layer drops: a write that
//!   was not followed by an fsync of its file never survives, even where
//!   a real disk might have kept it.
//!
//! The durable copy of each file is a plain file `<backing>/<inode>`;
//! durable names are kept in memory by [`Disk`], which outlives mounts.
//! The backing files are not fsynced themselves: the machine never loses
//! power, only this layer pretends to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Page size of the dirty overlay.
pub const PAGE: usize = 4096;
/// The root directory's inode.
pub const ROOT: Ino = 1;
/// Longest name accepted (as ext4).
const NAME_MAX: usize = 255;

pub type Ino = u64;
/// An errno value (`libc::E*`).
pub type Errno = i32;
type R<T> = Result<T, Errno>;

/// Which syncs make names durable; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// An fsync of a file or directory also persists the names leading to
    /// it (what journaling filesystems do); a directory fsync persists its
    /// entries.
    Linked,
    /// Only a directory fsync persists names, and only that directory's.
    Posix,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// What `stat` shows of a live inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub atime: SystemTime,
}

/// What a power cut threw away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Dirty pages (never fsynced) across all files.
    pub dirty_pages: u64,
    /// Files whose size or truncation was not synced.
    pub unsynced_sizes: u64,
    /// Live names that were not durable, plus durable names removed live.
    pub unsynced_names: u64,
    /// The files that had dirty pages or an unsynced size, by live path
    /// (`?` for an unlinked one), with their dirty page counts.
    pub files: Vec<(String, u64)>,
    /// The last syncs before the cut, oldest first: `fsync PATH` (file or
    /// directory) with the number of dirty pages it wrote.
    pub last_syncs: Vec<String>,
}

/// Counters since the layer was created (across remounts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub writes: u64,
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub synced_pages: u64,
    pub cuts: u64,
}

/// One inode as the disk holds it.
#[derive(Clone, Debug)]
struct DNode {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Files: the length of `<backing>/<ino>`.
    size: u64,
    entries: BTreeMap<OsString, Ino>,
    /// Its durable name; none: unreachable (dropped at the next reboot).
    parent: Option<(Ino, OsString)>,
}

/// The durable state: survives cuts and remounts.
#[derive(Debug)]
pub struct Disk {
    dir: PathBuf,
    nodes: HashMap<Ino, DNode>,
    next_ino: Ino,
}

impl Disk {
    /// An empty disk (just the root directory) whose file contents live in
    /// `dir`, which must be an empty directory.
    pub fn new(dir: &Path) -> io::Result<Disk> {
        std::fs::create_dir_all(dir)?;
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            DNode {
                kind: Kind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                entries: BTreeMap::new(),
                parent: None,
            },
        );
        Ok(Disk {
            dir: dir.to_path_buf(),
            nodes,
            next_ino: ROOT + 1,
        })
    }

    fn content_path(&self, ino: Ino) -> PathBuf {
        self.dir.join(ino.to_string())
    }

    /// The durable tree as `path -> file contents` (directories end in
    /// `/` and have no contents): for tests and failure reports.
    pub fn listing(&self) -> io::Result<BTreeMap<String, Option<Vec<u8>>>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![(ROOT, String::new())];
        while let Some((ino, path)) = todo.pop() {
            for (name, &c) in &self.nodes[&ino].entries {
                let p = format!("{path}/{}", name.to_string_lossy());
                match self.nodes[&c].kind {
                    Kind::Dir => {
                        out.insert(format!("{p}/"), None);
                        todo.push((c, p));
                    }
                    Kind::File => {
                        let data = if self.nodes[&c].size == 0 {
                            vec![]
                        } else {
                            std::fs::read(self.content_path(c))?
                        };
                        out.insert(p, Some(data));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Creates the durable inode `ino` if the disk does not have it yet
    /// (an empty file or directory, named nowhere).
    fn ensure(&mut self, ino: Ino, l: &LNode) -> io::Result<()> {
        if self.nodes.contains_key(&ino) {
            return Ok(());
        }
        if l.kind == Kind::File {
            File::create(self.content_path(ino))?;
        }
        self.nodes.insert(
            ino,
            DNode {
                kind: l.kind,
                mode: l.mode,
                uid: l.uid,
                gid: l.gid,
                size: 0,
                entries: BTreeMap::new(),
                parent: None,
            },
        );
        Ok(())
    }

    /// Durably names `child` `name` in `dir`: its previous durable name
    /// goes (a rename persists as one unit) and so does whatever held
    /// `name` before. Both inodes must exist durably.
    fn set_entry(&mut self, dir: Ino, name: &OsStr, child: Ino) {
        let want = Some((dir, name.to_os_string()));
        if self.nodes[&child].parent == want {
            return;
        }
        self.unname(child);
        let old = self
            .nodes
            .get_mut(&dir)
            .expect("durable dir")
            .entries
            .insert(name.to_os_string(), child);
        if let Some(old) = old {
            self.nodes.get_mut(&old).expect("durable child").parent = None;
        }
        self.nodes.get_mut(&child).expect("durable child").parent = want;
    }

    /// Removes `ino`'s durable name, if it has one.
    fn unname(&mut self, ino: Ino) {
        if let Some((p, n)) = self.nodes.get_mut(&ino).and_then(|d| d.parent.take()) {
            self.nodes
                .get_mut(&p)
                .expect("durable parent")
                .entries
                .remove(&n);
        }
    }

    /// Forgets every inode not reachable from the root, with its contents.
    fn collect(&mut self) -> io::Result<()> {
        let mut reachable = HashSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            for &c in self.nodes[&ino].entries.values() {
                if reachable.insert(c) {
                    todo.push(c);
                }
            }
        }
        let dead: Vec<Ino> = self
            .nodes
            .keys()
            .copied()
            .filter(|i| !reachable.contains(i))
            .collect();
        for ino in dead {
            if self.nodes.remove(&ino).map(|d| d.kind) == Some(Kind::File) {
                match std::fs::remove_file(self.content_path(ino)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// One inode as processes see it.
#[derive(Debug)]
struct LNode {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Its live name; none once unlinked (it lives on while open).
    parent: Option<(Ino, OsString)>,
    entries: BTreeMap<OsString, Ino>,
    size: u64,
    /// Dirty pages by index; bytes past `size` are zero.
    pages: BTreeMap<u64, Box<[u8]>>,
    /// How much of the durable contents still shows through: the durable
    /// size, or less after a truncation not yet synced.
    visible: u64,
    /// Kernel lookups not yet forgotten, and open handles.
    lookups: u64,
    opens: u64,
}

impl LNode {
    fn attr(&self, ino: Ino) -> Attr {
        Attr {
            ino,
            kind: self.kind,
            size: self.size,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            nlink: match (self.kind, &self.parent) {
                (Kind::Dir, _) => 2,
                (Kind::File, Some(_)) => 1,
                (Kind::File, None) => 0,
            },
            mtime: self.mtime,
            ctime: self.ctime,
            atime: self.atime,
        }
    }
}

/// The whole filesystem: the disk, the live view over it, and whether the
/// power is on.
#[derive(Debug)]
pub struct State {
    disk: Disk,
    ns: Namespace,
    live: HashMap<Ino, LNode>,
    /// Durable contents opened for reading, by inode.
    handles: HashMap<Ino, File>,
    /// Directory listings taken at opendir, by handle.
    listings: HashMap<u64, Vec<(Ino, Kind, OsString)>>,
    next_fh: u64,
    /// Set by a cut, cleared by a reboot.
    dead: bool,
    /// Bumped at each reboot, so a stale mount's requests are refused.
    epoch: u64,
    stats: Stats,
    /// Sabotage for negative controls: `fdatasync` of files with this name
    /// succeeds without syncing anything.
    ignore_fdatasync: Option<OsString>,
    /// The last [`SYNC_HISTORY`] syncs, for [`CutReport::last_syncs`].
    syncs: std::collections::VecDeque<String>,
}

const SYNC_HISTORY: usize = 16;

impl State {
    /// Powers `disk` up: the live view starts equal to the durable state.
    pub fn new(disk: Disk, ns: Namespace) -> io::Result<State> {
        let mut s = State {
            disk,
            ns,
            live: HashMap::new(),
            handles: HashMap::new(),
            listings: HashMap::new(),
            next_fh: 1,
            dead: false,
            epoch: 0,
            stats: Stats::default(),
            ignore_fdatasync: None,
            syncs: Default::default(),
        };
        s.reboot()?;
        Ok(s)
    }

    pub fn namespace(&self) -> Namespace {
        self.ns
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether requests from the mount of `epoch` may be served.
    pub fn serving(&self, epoch: u64) -> bool {
        !self.dead && self.epoch == epoch
    }

    /// The power cut: from now on every operation fails and nothing more
    /// becomes durable. Reports what is about to be lost.
    pub fn cut(&mut self) -> CutReport {
        let mut r = CutReport::default();
        if self.dead {
            return r;
        }
        self.dead = true;
        self.stats.cuts += 1;
        for (ino, l) in &self.live {
            r.dirty_pages += l.pages.len() as u64;
            let durable = self.disk.nodes.get(ino);
            let resized = l.visible != l.size || durable.map(|d| d.size) != Some(l.size);
            if l.kind == Kind::File && resized {
                r.unsynced_sizes += 1;
            }
            if l.kind == Kind::File && (resized || !l.pages.is_empty()) {
                r.files.push((self.path(*ino), l.pages.len() as u64));
            }
            if l.kind == Kind::Dir {
                let empty = BTreeMap::new();
                let d = durable.map(|d| &d.entries).unwrap_or(&empty);
                r.unsynced_names += l
                    .entries
                    .iter()
                    .filter(|(n, c)| d.get(*n) != Some(c))
                    .count() as u64;
                r.unsynced_names += d.keys().filter(|n| !l.entries.contains_key(*n)).count() as u64;
            }
        }
        r.files.sort();
        r.last_syncs = self.syncs.iter().cloned().collect();
        r
    }

    /// The live path of `ino` (`?` where it is unlinked).
    fn path(&self, ino: Ino) -> String {
        let mut parts = vec![];
        let mut at = ino;
        while at != ROOT {
            match self.live.get(&at).and_then(|l| l.parent.as_ref()) {
                Some((p, name)) => {
                    parts.push(name.to_string_lossy().into_owned());
                    at = *p;
                }
                None => {
                    parts.push("?".into());
                    break;
                }
            }
        }
        parts.reverse();
        parts.join("/")
    }

    /// Powers up again after a cut (or at creation): the live view is
    /// rebuilt from what is durable and reachable; everything else is gone.
    pub fn reboot(&mut self) -> io::Result<()> {
        self.disk.collect()?;
        let now = SystemTime::now();
        self.live = self
            .disk
            .nodes
            .iter()
            .map(|(&ino, d)| {
                (
                    ino,
                    LNode {
                        kind: d.kind,
                        mode: d.mode,
                        uid: d.uid,
                        gid: d.gid,
                        atime: now,
                        mtime: now,
                        ctime: now,
                        parent: d.parent.clone(),
                        entries: d.entries.clone(),
                        size: d.size,
                        pages: BTreeMap::new(),
                        visible: d.size,
                        lookups: 0,
                        opens: 0,
                    },
                )
            })
            .collect();
        self.handles.clear();
        self.listings.clear();
        self.dead = false;
        self.epoch += 1;
        Ok(())
    }

    fn node(&self, ino: Ino) -> R<&LNode> {
        self.live.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> R<&mut LNode> {
        self.live.get_mut(&ino).ok_or(libc::ENOENT)
    }

    /// A live, still linked directory.
    fn dir(&self, ino: Ino) -> R<&LNode> {
        let d = self.node(ino)?;
        if d.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        if ino != ROOT && d.parent.is_none() {
            return Err(libc::ENOENT);
        }
        Ok(d)
    }

    fn child(&self, parent: Ino, name: &OsStr) -> R<Ino> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// Drops a live inode nobody can reach any more (no name, no kernel
    /// reference, not open). Its durable copy is left alone.
    fn maybe_free(&mut self, ino: Ino) {
        if ino == ROOT {
            return;
        }
        if let Some(l) = self.live.get(&ino) {
            if l.parent.is_none() && l.lookups == 0 && l.opens == 0 {
                self.live.remove(&ino);
                self.handles.remove(&ino);
            }
        }
    }

    pub fn getattr(&self, ino: Ino) -> R<Attr> {
        Ok(self.node(ino)?.attr(ino))
    }

    /// Looks `name` up; the kernel now holds one more reference to it.
    pub fn lookup(&mut self, parent: Ino, name: &OsStr) -> R<Attr> {
        let ino = self.child(parent, name)?;
        let l = self.node_mut(ino)?;
        l.lookups += 1;
        Ok(l.attr(ino))
    }

    pub fn forget(&mut self, ino: Ino, n: u64) {
        if let Some(l) = self.live.get_mut(&ino) {
            l.lookups = l.lookups.saturating_sub(n);
        }
        self.maybe_free(ino);
    }

    fn make(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> R<Attr> {
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.disk.next_ino;
        self.disk.next_ino += 1;
        let now = SystemTime::now();
        let l = LNode {
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            parent: Some((parent, name.to_os_string())),
            entries: BTreeMap::new(),
            size: 0,
            pages: BTreeMap::new(),
            visible: 0,
            lookups: 1,
            opens: 0,
        };
        let attr = l.attr(ino);
        self.live.insert(ino, l);
        let p = self.node_mut(parent)?;
        p.entries.insert(name.to_os_string(), ino);
        p.mtime = now;
        p.ctime = now;
        Ok(attr)
    }

    /// Creates a directory (one kernel reference).
    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, mode: u32, uid: u32, gid: u32) -> R<Attr> {
        self.make(parent, name, Kind::Dir, mode, uid, gid)
    }

    /// Creates an empty regular file (one kernel reference, not open).
    pub fn mknod(&mut self, parent: Ino, name: &OsStr, mode: u32, uid: u32, gid: u32) -> R<Attr> {
        self.make(parent, name, Kind::File, mode, uid, gid)
    }

    /// Creates and opens a regular file (one kernel reference, one open).
    pub fn create(&mut self, parent: Ino, name: &OsStr, mode: u32, uid: u32, gid: u32) -> R<Attr> {
        let a = self.make(parent, name, Kind::File, mode, uid, gid)?;
        self.node_mut(a.ino)?.opens += 1;
        Ok(a)
    }

    fn detach(&mut self, parent: Ino, name: &OsStr) -> R<Ino> {
        let now = SystemTime::now();
        let p = self.node_mut(parent)?;
        let ino = p.entries.remove(name).ok_or(libc::ENOENT)?;
        p.mtime = now;
        p.ctime = now;
        let c = self.node_mut(ino)?;
        c.parent = None;
        c.ctime = now;
        Ok(ino)
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> R<()> {
        let ino = self.child(parent, name)?;
        if self.node(ino)?.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        self.detach(parent, name)?;
        self.maybe_free(ino);
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> R<()> {
        let ino = self.child(parent, name)?;
        let d = self.node(ino)?;
        if d.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        if !d.entries.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.detach(parent, name)?;
        self.maybe_free(ino);
        Ok(())
    }

    /// `rename(2)`; `noreplace` is `RENAME_NOREPLACE`.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        noreplace: bool,
    ) -> R<()> {
        if newname.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        let src = self.child(parent, name)?;
        self.dir(newparent)?;
        let src_kind = self.node(src)?.kind;
        if src_kind == Kind::Dir {
            // Not into itself or below itself.
            let mut at = Some(newparent);
            while let Some(a) = at {
                if a == src {
                    return Err(libc::EINVAL);
                }
                at = self.node(a)?.parent.as_ref().map(|(p, _)| *p);
            }
        }
        if let Ok(dst) = self.child(newparent, newname) {
            if noreplace {
                return Err(libc::EEXIST);
            }
            if dst == src {
                return Ok(());
            }
            let d = self.node(dst)?;
            match (src_kind, d.kind) {
                (Kind::Dir, Kind::File) => return Err(libc::ENOTDIR),
                (Kind::File, Kind::Dir) => return Err(libc::EISDIR),
                (Kind::Dir, Kind::Dir) if !d.entries.is_empty() => return Err(libc::ENOTEMPTY),
                _ => {}
            }
            self.detach(newparent, newname)?;
            self.maybe_free(dst);
        }
        self.detach(parent, name)?;
        let now = SystemTime::now();
        let p = self.node_mut(newparent)?;
        p.entries.insert(newname.to_os_string(), src);
        p.mtime = now;
        p.ctime = now;
        self.node_mut(src)?.parent = Some((newparent, newname.to_os_string()));
        Ok(())
    }

    /// `chmod`, `chown`, `truncate`, `utimes`.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &mut self,
        ino: Ino,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> R<Attr> {
        let now = SystemTime::now();
        let l = self.node_mut(ino)?;
        if let Some(size) = size {
            if l.kind == Kind::Dir {
                return Err(libc::EISDIR);
            }
            truncate(l, size);
            l.mtime = now;
        }
        if let Some(m) = mode {
            l.mode = m & 0o7777;
        }
        if let Some(u) = uid {
            l.uid = u;
        }
        if let Some(g) = gid {
            l.gid = g;
        }
        if let Some(t) = atime {
            l.atime = t;
        }
        if let Some(t) = mtime {
            l.mtime = t;
        }
        l.ctime = now;
        Ok(l.attr(ino))
    }

    pub fn open(&mut self, ino: Ino) -> R<()> {
        self.node_mut(ino)?.opens += 1;
        Ok(())
    }

    pub fn release(&mut self, ino: Ino) {
        if let Some(l) = self.live.get_mut(&ino) {
            l.opens = l.opens.saturating_sub(1);
        }
        self.maybe_free(ino);
    }

    /// The durable contents of `ino` for reading.
    fn durable_file(&mut self, ino: Ino) -> R<&File> {
        if !self.handles.contains_key(&ino) {
            let f = File::open(self.disk.content_path(ino)).map_err(|_| libc::EIO)?;
            self.handles.insert(ino, f);
        }
        Ok(&self.handles[&ino])
    }

    /// Fills `buf` with the bytes at `off` as they were last synced, zero
    /// where nothing durable shows through (`visible`).
    fn read_durable(&mut self, ino: Ino, visible: u64, off: u64, buf: &mut [u8]) -> R<()> {
        buf.fill(0);
        if off >= visible {
            return Ok(());
        }
        let n = ((visible - off) as usize).min(buf.len());
        let f = self.durable_file(ino)?;
        f.read_exact_at(&mut buf[..n], off).map_err(|_| libc::EIO)
    }

    pub fn read(&mut self, ino: Ino, off: u64, len: u32) -> R<Vec<u8>> {
        let l = self.node(ino)?;
        if l.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        let end = l.size.min(off.saturating_add(len as u64));
        if off >= end {
            return Ok(vec![]);
        }
        let visible = l.visible;
        let mut out = vec![0u8; (end - off) as usize];
        let mut at = off;
        while at < end {
            let idx = at / PAGE as u64;
            let in_page = (at % PAGE as u64) as usize;
            let n = (PAGE - in_page).min((end - at) as usize);
            let dst = &mut out[(at - off) as usize..][..n];
            match self.live[&ino].pages.get(&idx) {
                Some(p) => dst.copy_from_slice(&p[in_page..in_page + n]),
                None => self.read_durable(ino, visible, at, dst)?,
            }
            at += n as u64;
        }
        Ok(out)
    }

    pub fn write(&mut self, ino: Ino, off: u64, data: &[u8]) -> R<u32> {
        let l = self.node(ino)?;
        if l.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        let visible = l.visible;
        let end = off.checked_add(data.len() as u64).ok_or(libc::EFBIG)?;
        let mut at = off;
        while at < end {
            let idx = at / PAGE as u64;
            let in_page = (at % PAGE as u64) as usize;
            let n = (PAGE - in_page).min((end - at) as usize);
            if !self.live[&ino].pages.contains_key(&idx) {
                let mut page = vec![0u8; PAGE].into_boxed_slice();
                self.read_durable(ino, visible, idx * PAGE as u64, &mut page)?;
                self.node_mut(ino)?.pages.insert(idx, page);
            }
            let src = &data[(at - off) as usize..][..n];
            let l = self.node_mut(ino)?;
            l.pages.get_mut(&idx).expect("page")[in_page..in_page + n].copy_from_slice(src);
            at += n as u64;
        }
        let now = SystemTime::now();
        let l = self.node_mut(ino)?;
        l.size = l.size.max(end);
        l.mtime = now;
        l.ctime = now;
        self.stats.writes += 1;
        Ok(data.len() as u32)
    }

    /// A negative control: from now on an `fdatasync` (not an `fsync`) of
    /// a file named `name` answers success and syncs nothing, as if the
    /// program had not called it.
    pub fn ignore_fdatasync_of(&mut self, name: &OsStr) {
        self.ignore_fdatasync = Some(name.to_os_string());
    }

    /// `fdatasync`: the same as [`Self::fsync`] here (a file's size is
    /// data), unless sabotaged by [`Self::ignore_fdatasync_of`].
    pub fn fdatasync(&mut self, ino: Ino) -> R<()> {
        let name = self.node(ino)?.parent.as_ref().map(|(_, n)| n);
        if name.is_some() && name == self.ignore_fdatasync.as_ref() {
            return Ok(());
        }
        self.fsync(ino)
    }

    /// `fsync` of a file or directory.
    pub fn fsync(&mut self, ino: Ino) -> R<()> {
        let kind = self.node(ino)?.kind;
        if self.syncs.len() == SYNC_HISTORY {
            self.syncs.pop_front();
        }
        let pages = self.live[&ino].pages.len();
        let what = format!("fsync /{} ({pages} pages)", self.path(ino));
        self.syncs.push_back(what);
        match kind {
            Kind::File => self.sync_contents(ino).map_err(|_| libc::EIO)?,
            Kind::Dir => self.sync_entries(ino).map_err(|_| libc::EIO)?,
        }
        if self.ns == Namespace::Linked {
            self.sync_name_chain(ino).map_err(|_| libc::EIO)?;
        }
        Ok(())
    }

    /// Writes a file's dirty pages and size to its durable copy.
    fn sync_contents(&mut self, ino: Ino) -> io::Result<()> {
        let l = &self.live[&ino];
        self.disk.ensure(ino, l)?;
        let f = OpenOptions::new()
            .write(true)
            .open(self.disk.content_path(ino))?;
        if l.visible < self.disk.nodes[&ino].size {
            f.set_len(l.visible)?;
        }
        for (&idx, page) in &l.pages {
            let at = idx * PAGE as u64;
            if at < l.size {
                let n = ((l.size - at) as usize).min(PAGE);
                f.write_all_at(&page[..n], at)?;
            }
        }
        f.set_len(l.size)?;
        let (size, mode, pages) = (l.size, l.mode, l.pages.len() as u64);
        let d = self.disk.nodes.get_mut(&ino).expect("ensured");
        d.size = size;
        d.mode = mode;
        let l = self.live.get_mut(&ino).expect("live");
        l.pages.clear();
        l.visible = size;
        self.stats.file_syncs += 1;
        self.stats.synced_pages += pages;
        Ok(())
    }

    /// Makes a directory's entry list durable as it is now.
    fn sync_entries(&mut self, ino: Ino) -> io::Result<()> {
        self.disk.ensure(ino, &self.live[&ino])?;
        let live = self.live[&ino].entries.clone();
        let durable = self.disk.nodes[&ino].entries.clone();
        for (name, c) in durable {
            if live.get(&name) != Some(&c) {
                self.disk.unname(c);
            }
        }
        for (name, c) in live {
            self.disk.ensure(c, &self.live[&c])?;
            self.disk.set_entry(ino, &name, c);
        }
        self.stats.dir_syncs += 1;
        Ok(())
    }

    /// [`Namespace::Linked`]: the names from the root down to `ino`, each
    /// as it is live now, become durable.
    fn sync_name_chain(&mut self, ino: Ino) -> io::Result<()> {
        let mut at = ino;
        while at != ROOT {
            let l = &self.live[&at];
            self.disk.ensure(at, l)?;
            let Some((p, name)) = l.parent.clone() else {
                // Unlinked: the unlink is what becomes durable.
                self.disk.unname(at);
                break;
            };
            self.disk.ensure(p, &self.live[&p])?;
            self.disk.set_entry(p, &name, at);
            at = p;
        }
        Ok(())
    }

    /// A snapshot of a directory's entries for one `opendir`: entries
    /// present throughout the listing are returned exactly once.
    pub fn opendir(&mut self, ino: Ino) -> R<u64> {
        let d = self.node(ino)?;
        if d.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        let parent = d.parent.as_ref().map(|(p, _)| *p).unwrap_or(ROOT);
        let mut list = vec![
            (ino, Kind::Dir, OsString::from(".")),
            (parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, &c) in &d.entries {
            list.push((c, self.live[&c].kind, name.clone()));
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.listings.insert(fh, list);
        self.node_mut(ino)?.opens += 1;
        Ok(fh)
    }

    /// Entries of listing `fh` from position `offset` on; each comes with
    /// the offset of the one after it.
    pub fn readdir(&self, fh: u64, offset: u64) -> R<Vec<(Ino, Kind, OsString, u64)>> {
        let list = self.listings.get(&fh).ok_or(libc::EBADF)?;
        Ok(list
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (ino, k, n))| (*ino, *k, n.clone(), i as u64 + 1))
            .collect())
    }

    pub fn releasedir(&mut self, ino: Ino, fh: u64) {
        self.listings.remove(&fh);
        self.release(ino);
    }
}

/// Cuts or extends a live file to `size`; the cut-off part stops showing
/// durable bytes through.
fn truncate(l: &mut LNode, size: u64) {
    if size < l.size {
        let first_gone = size.div_ceil(PAGE as u64);
        l.pages.split_off(&first_gone);
        let in_page = (size % PAGE as u64) as usize;
        if in_page != 0 {
            if let Some(p) = l.pages.get_mut(&(size / PAGE as u64)) {
                p[in_page..].fill(0);
            }
        }
        l.visible = l.visible.min(size);
    }
    l.size = size;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(ns: Namespace) -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let s = State::new(Disk::new(&dir.path().join("disk")).unwrap(), ns).unwrap();
        (dir, s)
    }

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    /// Cut, power up again, and list what survived.
    fn cycle(s: &mut State) -> BTreeMap<String, Option<Vec<u8>>> {
        s.cut();
        s.reboot().unwrap();
        s.disk().listing().unwrap()
    }

    fn file(v: &[u8]) -> Option<Vec<u8>> {
        Some(v.to_vec())
    }

    #[test]
    fn reads_see_unsynced_writes_and_a_cut_drops_them() {
        let (_d, mut s) = fresh(Namespace::Linked);
        let f = s.create(ROOT, os("a"), 0o644, 0, 0).unwrap().ino;
        s.write(f, 0, b"hello").unwrap();
        s.write(f, 5000, b"far").unwrap();
        assert_eq!(s.read(f, 0, 5).unwrap(), b"hello");
        assert_eq!(s.read(f, 4999, 10).unwrap(), b"\0far");
        assert_eq!(s.getattr(f).unwrap().size, 5003);
        let r = s.cut();
        assert_eq!(r.dirty_pages, 2);
        assert!(!s.serving(s.epoch()));
        s.reboot().unwrap();
        assert!(s.disk().listing().unwrap().is_empty(), "nothing was synced");
        assert_eq!(s.lookup(ROOT, os("a")), Err(libc::ENOENT));
    }

    #[test]
    fn fsync_keeps_the_file_and_in_linked_mode_its_names() {
        let (_d, mut s) = fresh(Namespace::Linked);
        let d = s.mkdir(ROOT, os("d"), 0o755, 0, 0).unwrap().ino;
        let f = s.create(d, os("f"), 0o644, 0, 0).unwrap().ino;
        s.write(f, 0, b"synced").unwrap();
        s.fsync(f).unwrap();
        s.write(f, 0, b"SYNCED and more").unwrap();
        let other = s.create(d, os("other"), 0o644, 0, 0).unwrap().ino;
        s.write(other, 0, b"never synced").unwrap();
        let got = cycle(&mut s);
        assert_eq!(
            got,
            BTreeMap::from([("/d/".into(), None), ("/d/f".into(), file(b"synced"))])
        );
    }

    #[test]
    fn posix_mode_needs_the_directory_fsync() {
        let (_d, mut s) = fresh(Namespace::Posix);
        let d = s.mkdir(ROOT, os("d"), 0o755, 0, 0).unwrap().ino;
        let f = s.create(d, os("f"), 0o644, 0, 0).unwrap().ino;
        s.write(f, 0, b"x").unwrap();
        s.fsync(f).unwrap();
        s.fsync(d).unwrap();
        assert!(cycle(&mut s).is_empty(), "d itself was never named durably");

        let d = s.mkdir(ROOT, os("d"), 0o755, 0, 0).unwrap().ino;
        let f = s.create(d, os("f"), 0o644, 0, 0).unwrap().ino;
        s.write(f, 0, b"x").unwrap();
        s.fsync(f).unwrap();
        s.fsync(d).unwrap();
        s.fsync(ROOT).unwrap();
        assert_eq!(
            cycle(&mut s),
            BTreeMap::from([("/d/".into(), None), ("/d/f".into(), file(b"x"))])
        );
    }

    #[test]
    fn a_directory_fsync_keeps_names_but_not_unsynced_contents() {
        let (_d, mut s) = fresh(Namespace::Linked);
        let f = s.create(ROOT, os("f"), 0o644, 0, 0).unwrap().ino;
        s.write(f, 0, b"data").unwrap();
        s.fsync(ROOT).unwrap();
        assert_eq!(cycle(&mut s), BTreeMap::from([("/f".into(), file(b""))]));
    }

    #[test]
    fn renames_and_unlinks_become_durable_only_when_synced() {
        let (_d, mut s) = fresh(Namespace::Linked);
        let t = s.create(ROOT, os("snap.tmp"), 0o644, 0, 0).unwrap().ino;
        s.write(t, 0, b"snapshot").unwrap();
        s.fsync(t).unwrap();
        s.rename(ROOT, os("snap.tmp"), ROOT, os("snap.1"), false)
            .unwrap();
        assert_eq!(s.lookup(ROOT, os("snap.1")).unwrap().size, 8);
        assert_eq!(
            cycle(&mut s),
            BTreeMap::from([("/snap.tmp".into(), file(b"snapshot"))]),
            "the rename was not synced"
        );
        s.rename(ROOT, os("snap.tmp"), ROOT, os("snap.1"), false)
            .unwrap();
        s.fsync(ROOT).unwrap();
        s.unlink(ROOT, os("snap.1")).unwrap();
        assert_eq!(
            cycle(&mut s),
            BTreeMap::from([("/snap.1".into(), file(b"snapshot"))]),
            "the rename was synced, the unlink not"
        );
    }

    #[test]
    fn truncation_is_data_too() {
        let (_d, mut s) = fresh(Namespace::Linked);
        let f = s.create(ROOT, os("log"), 0o644, 0, 0).unwrap().ino;
        s.write(f, 0, &[7u8; 10_000]).unwrap();
        s.fsync(f).unwrap();
        s.setattr(f, None, None, None, Some(100), None, None)
            .unwrap();
        s.setattr(f, None, None, None, Some(9000), None, None)
            .unwrap();
        assert_eq!(s.read(f, 95, 10).unwrap(), [7, 7, 7, 7, 7, 0, 0, 0, 0, 0]);
        assert_eq!(
            s.read(f, 8000, 10).unwrap(),
            [0; 10],
            "cut-off bytes stay gone"
        );
        assert_eq!(cycle(&mut s)["/log"].as_ref().unwrap().len(), 10_000);
        let f = s.lookup(ROOT, os("log")).unwrap().ino;
        s.setattr(f, None, None, None, Some(100), None, None)
            .unwrap();
        s.write(f, 200, b"x").unwrap();
        s.fsync(f).unwrap();
        let got = cycle(&mut s)["/log"].clone().unwrap();
        assert_eq!(got.len(), 201);
        assert_eq!(&got[95..105], [7, 7, 7, 7, 7, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn an_open_unlinked_file_lives_until_released() {
        let (_d, mut s) = fresh(Namespace::Linked);
        let f = s.create(ROOT, os("f"), 0o644, 0, 0).unwrap().ino;
        s.unlink(ROOT, os("f")).unwrap();
        s.forget(f, 1);
        s.write(f, 0, b"still here").unwrap();
        assert_eq!(s.read(f, 0, 100).unwrap(), b"still here");
        s.release(f);
        assert_eq!(s.getattr(f), Err(libc::ENOENT));
    }

    #[test]
    fn rename_rules() {
        let (_d, mut s) = fresh(Namespace::Linked);
        let a = s.mkdir(ROOT, os("a"), 0o755, 0, 0).unwrap().ino;
        s.mkdir(a, os("b"), 0o755, 0, 0).unwrap();
        s.create(ROOT, os("f"), 0o644, 0, 0).unwrap();
        assert_eq!(
            s.rename(ROOT, os("a"), a, os("x"), false),
            Err(libc::EINVAL)
        );
        assert_eq!(
            s.rename(ROOT, os("f"), ROOT, os("a"), false),
            Err(libc::EISDIR)
        );
        assert_eq!(
            s.rename(ROOT, os("a"), ROOT, os("f"), false),
            Err(libc::ENOTDIR)
        );
        s.create(ROOT, os("g"), 0o644, 0, 0).unwrap();
        assert_eq!(
            s.rename(ROOT, os("f"), ROOT, os("g"), true),
            Err(libc::EEXIST)
        );
        s.rename(ROOT, os("f"), ROOT, os("g"), false).unwrap();
        assert_eq!(s.lookup(ROOT, os("f")), Err(libc::ENOENT));
        assert_eq!(s.rmdir(ROOT, os("a")), Err(libc::ENOTEMPTY));
    }

    #[test]
    fn listings_are_snapshots() {
        let (_d, mut s) = fresh(Namespace::Linked);
        s.create(ROOT, os("a"), 0o644, 0, 0).unwrap();
        let fh = s.opendir(ROOT).unwrap();
        s.create(ROOT, os("b"), 0o644, 0, 0).unwrap();
        let names: Vec<_> = s.readdir(fh, 0).unwrap().into_iter().map(|e| e.2).collect();
        assert_eq!(names, [".", "..", "a"]);
        assert_eq!(s.readdir(fh, 2).unwrap().len(), 1);
        s.releasedir(ROOT, fh);
    }
}
