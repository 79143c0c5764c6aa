//! Power-cut testing for the node's store.
//!
//! A `kill -9` test only proves that what reached the kernel survives; a
//! power cut also loses what the kernel held in its page cache, so it is
//! the test of every `fsync` the store does (or forgets). This crate
//! serves a FUSE filesystem ([`Mount`]) that keeps every write in memory
//! until the file is fsynced and every name change until it is synced (the
//! exact rules are in [`model`]), and whose [`Mount::cut`] throws all of
//! that away at an instant the test picks; [`Mount::remount`] then shows
//! only what had been made durable. `tests/power_cut.rs` puts a node's data
//! dir on it and cuts its power under traffic.
//!
//! The filesystem is served by threads of the process that mounts it (the
//! test); other processes, such as an `sms-node`, use it like any other
//! mount. Mounting needs `/dev/fuse` and root (fuser's pure-Rust mount
//! path, no libfuse) or the `fusermount3` helper; [`unavailable`] says why
//! not, so tests can skip with one clear line where FUSE cannot work.

pub mod model;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use model::{Attr, Kind};
pub use model::{CutReport, Disk, Namespace, State, Stats};

/// How long the kernel may cache names and attributes. Only the kernel
/// changes them (on behalf of the processes), so caching is safe; a
/// remount starts a new kernel cache.
const TTL: Duration = Duration::from_secs(1);

/// The FUSE face of a [`State`]. One per mount: requests from a mount
/// older than the state's last reboot are refused like after a cut.
struct PowerCutFs {
    state: Arc<Mutex<State>>,
    epoch: u64,
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

fn fattr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: kind(a.kind),
        perm: a.mode as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: model::PAGE as u32,
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl PowerCutFs {
    /// Runs `f` on the state while the power is on; `EIO` after a cut.
    fn on<T>(&self, f: impl FnOnce(&mut State) -> Result<T, i32>) -> Result<T, Errno> {
        let mut s = lock(&self.state);
        if !s.serving(self.epoch) {
            return Err(Errno::EIO);
        }
        f(&mut s).map_err(Errno::from_i32)
    }

    /// Like [`Self::on`] for bookkeeping that needs no answer (forget,
    /// release): skipped after a cut, whose reboot forgets everything.
    fn quietly(&self, f: impl FnOnce(&mut State)) {
        let mut s = lock(&self.state);
        if s.serving(self.epoch) {
            f(&mut s);
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn entry(reply: ReplyEntry, r: Result<Attr, Errno>) {
    match r {
        Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        entry(reply, self.on(|s| s.lookup(parent.0, name)));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.quietly(|s| s.forget(ino.0, nlookup));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.on(|s| s.getattr(ino.0)) {
            Ok(a) => reply.attr(&TTL, &fattr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.on(|s| {
            s.setattr(
                ino.0,
                mode,
                uid,
                gid,
                size,
                atime.map(time),
                mtime.map(time),
            )
        });
        match r {
            Ok(a) => reply.attr(&TTL, &fattr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        entry(
            reply,
            self.on(|s| s.mknod(parent.0, name, mode & !umask, req.uid(), req.gid())),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        entry(
            reply,
            self.on(|s| s.mkdir(parent.0, name, mode & !umask, req.uid(), req.gid())),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.on(|s| s.unlink(parent.0, name)));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.on(|s| s.rmdir(parent.0, name)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        empty(
            reply,
            self.on(|s| s.rename(parent.0, name, newparent.0, newname, noreplace)),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.on(|s| s.open(ino.0)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.on(|s| s.read(ino.0, offset, size)) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.on(|s| s.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    /// `close` is not a sync.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.quietly(|s| s.release(ino.0));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = if datasync {
            self.on(|s| s.fdatasync(ino.0))
        } else {
            self.on(|s| s.fsync(ino.0))
        };
        empty(reply, r);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.on(|s| s.opendir(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.on(|s| s.readdir(fh.0, offset)) {
            Ok(entries) => {
                for (ino, k, name, next) in entries {
                    if reply.add(INodeNo(ino), next, kind(k), &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.quietly(|s| s.releasedir(ino.0, fh.0));
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.on(|s| s.fsync(ino.0)));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: a full disk is not what this layer tests.
        reply.statfs(1 << 30, 1 << 29, 1 << 29, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        empty(reply, self.on(|s| s.getattr(ino.0).map(|_| ())));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        match self.on(|s| s.create(parent.0, name, mode & !umask, req.uid(), req.gid())) {
            Ok(a) => reply.created(
                &TTL,
                &fattr(&a),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}

/// A power-cut filesystem mounted at a directory, with its disk in a
/// backing directory. Unmounted when dropped.
pub struct Mount {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl Mount {
    /// Mounts a new, empty filesystem at `mountpoint` (an existing empty
    /// directory) whose durable file contents go to `backing`.
    pub fn new(backing: &Path, mountpoint: &Path, ns: Namespace) -> io::Result<Mount> {
        let state = State::new(Disk::new(backing)?, ns)?;
        let mut m = Mount {
            state: Arc::new(Mutex::new(state)),
            mountpoint: mountpoint.to_path_buf(),
            session: None,
        };
        m.spawn()?;
        Ok(m)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let fs = PowerCutFs {
            state: self.state.clone(),
            epoch: lock(&self.state).epoch(),
        };
        let mut cfg = fuser::Config::default();
        cfg.mount_options = vec![
            MountOption::FSName("sms-powercut".into()),
            MountOption::Subtype("powercut".into()),
        ];
        cfg.n_threads = Some(2);
        self.session = Some(fuser::spawn_mount(fs, &self.mountpoint, &cfg)?);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power cut: nothing more becomes durable and every operation on
    /// the mount fails with `EIO` until [`Self::remount`]. Kill the
    /// processes using it right after (or before) this.
    pub fn cut(&self) -> CutReport {
        lock(&self.state).cut()
    }

    /// Power back on: unmounts (cutting first if not cut yet), throws away
    /// everything that was not durable, and mounts again at the same place.
    /// Processes that still have files open on the old mount keep failing.
    pub fn remount(&mut self) -> io::Result<()> {
        self.cut();
        self.unmount();
        lock(&self.state).reboot()?;
        self.spawn()
    }

    /// The durable tree, as [`Disk::listing`] gives it.
    pub fn durable_listing(
        &self,
    ) -> io::Result<std::collections::BTreeMap<String, Option<Vec<u8>>>> {
        lock(&self.state).disk().listing()
    }

    pub fn stats(&self) -> Stats {
        lock(&self.state).stats()
    }

    /// See [`State::ignore_fdatasync_of`]: for negative controls only.
    pub fn ignore_fdatasync_of(&self, name: &str) {
        lock(&self.state).ignore_fdatasync_of(OsStr::new(name));
    }

    /// Unmounts and waits for the serving threads; if something still
    /// holds the mount busy, detaches it lazily instead (its users keep
    /// getting `EIO`) and leaves the threads to end with it.
    fn unmount(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let path = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes())
            .expect("mount point without NUL");
        // SAFETY: umount2(2) on a NUL-terminated path we own.
        let rc = unsafe { libc::umount2(path.as_ptr(), 0) };
        if rc == 0 {
            let _ = session.join();
        } else {
            // SAFETY: as above.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            // The session's own unmount finds nothing left to do.
            drop(session);
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Why FUSE cannot be used on this machine (no `/dev/fuse`, no right to
/// mount), found by mounting a throw-away filesystem; `None` if it works.
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse on this machine".into());
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return Some(format!("no temporary directory: {e}")),
    };
    let (backing, mnt) = (dir.path().join("disk"), dir.path().join("mnt"));
    if let Err(e) = std::fs::create_dir(&mnt) {
        return Some(format!("cannot create a mount point: {e}"));
    }
    match Mount::new(&backing, &mnt, Namespace::Linked) {
        Ok(m) => {
            let works = std::fs::write(mnt.join("probe"), b"ok");
            drop(m);
            works
                .err()
                .map(|e| format!("a FUSE mount does not answer: {e}"))
        }
        Err(e) => Some(format!(
            "cannot mount a FUSE filesystem (needs root or fusermount3): {e}"
        )),
    }
}
