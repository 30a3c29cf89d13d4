//! `latfs`: a passthrough FUSE file system that adds a fixed latency to every operation, to
//! measure the message store where EFS would make it slow.
//!
//! ```text
//! latfs <backing dir> <mount point> [--meta-us 1000] [--read-us 250] [--write-us 2700]
//!       [--threads 128] [--entry-ttl-ms 0] [--attr-ttl-ms 1000] [--stats-socket PATH] [--no-flock] [--serial-dirops]
//! ```
//!
//! Model (EFS figures from AWS's documentation: reads from about 0.25 ms, writes from about
//! 2.7 ms; metadata operations taken as about 1 ms):
//!
//! * every metadata request (lookup, getattr, setattr, create, mknod, mkdir, unlink, rmdir,
//!   rename, link, symlink, open, opendir, readdir, access, statfs, getlk, setlk) costs `meta`;
//! * every read request costs `read`; every write, fsync and fsyncdir request costs `write`;
//! * flush, release, releasedir and forget cost nothing: an NFS client sends CLOSE
//!   asynchronously and has nothing left to flush after an fsync.
//!
//! The latency is a deadline, not an added sleep: the operation is done on the backing directory
//! at once and the reply is held until `start + latency`, so a backing operation faster than
//! the latency is hidden in it, like the local part of a network round trip.
//!
//! Requests are served by `--threads` event-loop threads, each with its own cloned `/dev/fuse`
//! descriptor; each sleeps independently, so up to that many requests are in flight at once,
//! like an NFS client with many RPCs outstanding. `FUSE_PARALLEL_DIROPS` is requested so that the
//! kernel does not serialise lookups and readdirs within one directory (the VFS itself still
//! takes a directory's lock exclusively for create, unlink and rename, as it does for NFS).
//! `--serial-dirops` leaves that capability out, to show what the kernel does without it.
//!
//! Kernel caching, modelled on an NFS client's close-to-open consistency: the entry TTL is 0,
//! so every path walk sends a LOOKUP (a name is never resolved from the kernel's cache, as on a
//! directory other clients keep changing), and the LOOKUP reply carries fresh attributes, which
//! the kernel may then use for `--attr-ttl-ms` (1 s) instead of sending GETATTR for the `fstat`
//! that follows an open, as an NFSv4 client gets them with OPEN. Files are opened without
//! `FOPEN_KEEP_CACHE`, so every open drops the page cache and reads go to the file system again;
//! directories are opened without `FOPEN_CACHE_DIR`, so every listing reads the directory again.
//! `flock(2)` is forwarded as SETLK (`FUSE_FLOCK_LOCKS`) and costs a round trip, as NFS turns it
//! into LOCK/LOCKU.
//!
//! `--stats-socket PATH`: every connection to this Unix socket receives one JSON object with the
//! number of requests and the total injected latency per operation since the mount.
//!
//! SIGTERM or SIGINT unmounts and exits.

use std::{
    collections::HashMap,
    ffi::{CString, OsStr, OsString},
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::DirEntryExt,
        fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt},
        io::AsRawFd,
        net::UnixListener,
    },
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// The operations counted, in the order the statistics report them.
#[derive(Clone, Copy)]
enum Op {
    Lookup,
    Getattr,
    Setattr,
    Create,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Rename,
    Link,
    Symlink,
    Open,
    Opendir,
    Readdir,
    Access,
    Statfs,
    Getlk,
    Setlk,
    Read,
    Write,
    Fsync,
    Fsyncdir,
    Flush,
    Release,
    Releasedir,
}

const OPS: [(Op, &str); 25] = [
    (Op::Lookup, "lookup"),
    (Op::Getattr, "getattr"),
    (Op::Setattr, "setattr"),
    (Op::Create, "create"),
    (Op::Mknod, "mknod"),
    (Op::Mkdir, "mkdir"),
    (Op::Unlink, "unlink"),
    (Op::Rmdir, "rmdir"),
    (Op::Rename, "rename"),
    (Op::Link, "link"),
    (Op::Symlink, "symlink"),
    (Op::Open, "open"),
    (Op::Opendir, "opendir"),
    (Op::Readdir, "readdir"),
    (Op::Access, "access"),
    (Op::Statfs, "statfs"),
    (Op::Getlk, "getlk"),
    (Op::Setlk, "setlk"),
    (Op::Read, "read"),
    (Op::Write, "write"),
    (Op::Fsync, "fsync"),
    (Op::Fsyncdir, "fsyncdir"),
    (Op::Flush, "flush"),
    (Op::Release, "release"),
    (Op::Releasedir, "releasedir"),
];

#[derive(Clone, Copy, Debug)]
struct Latencies {
    meta: Duration,
    read: Duration,
    write: Duration,
}

impl Latencies {
    fn of(&self, op: Op) -> Duration {
        match op {
            Op::Read => self.read,
            Op::Write | Op::Fsync | Op::Fsyncdir => self.write,
            Op::Flush | Op::Release | Op::Releasedir => Duration::ZERO,
            _ => self.meta,
        }
    }
}

struct Stats {
    count: [AtomicU64; OPS.len()],
    injected_ns: [AtomicU64; OPS.len()],
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Self {
            count: std::array::from_fn(|_| AtomicU64::new(0)),
            injected_ns: std::array::from_fn(|_| AtomicU64::new(0)),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        }
    }

    fn json(&self) -> String {
        let mut out = String::from("{");
        for (i, (_, name)) in OPS.iter().enumerate() {
            out.push_str(&format!(
                "\"{name}\":[{},{}],",
                self.count[i].load(Ordering::Relaxed),
                self.injected_ns[i].load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "\"max_in_flight\":{}}}",
            self.max_in_flight.load(Ordering::Relaxed)
        ));
        out
    }
}

/// Holds the reply of one request until its deadline, and counts it.
struct Timer<'a> {
    fs: &'a LatFs,
    op: Op,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        // Runs before the reply is sent: every handler creates its timer first and replies last.
        let latency = self.fs.latency.of(self.op);
        let elapsed = self.start.elapsed();
        if latency > elapsed {
            thread::sleep(latency - elapsed);
        }
        let i = self.op as usize;
        self.fs.stats.count[i].fetch_add(1, Ordering::Relaxed);
        self.fs.stats.injected_ns[i].fetch_add(latency.as_nanos() as u64, Ordering::Relaxed);
        self.fs.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct OpenDir {
    entries: Vec<(u64, FileType, OsString)>,
}

struct LatFs {
    backing: PathBuf,
    root_backing_ino: u64,
    latency: Latencies,
    entry_ttl: Duration,
    attr_ttl: Duration,
    flock: bool,
    parallel_dirops: bool,
    /// FUSE inode number -> backing path. FUSE inode numbers are the backing inode numbers,
    /// except the root, which is 1.
    paths: RwLock<HashMap<u64, PathBuf>>,
    files: RwLock<HashMap<u64, Arc<File>>>,
    dirs: Mutex<HashMap<u64, Arc<OpenDir>>>,
    next_handle: AtomicU64,
    stats: Arc<Stats>,
}

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn kind_of(file_type: fs::FileType) -> FileType {
    FileType::from_std(file_type).unwrap_or(FileType::RegularFile)
}

fn system_time(secs: i64, nanos: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos as u32)
    } else {
        UNIX_EPOCH
    }
}

impl LatFs {
    fn timer(&self, op: Op) -> Timer<'_> {
        let now = self.stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
        Timer {
            fs: self,
            op,
            start: Instant::now(),
        }
    }

    fn fuse_ino(&self, backing_ino: u64) -> u64 {
        if backing_ino == self.root_backing_ino {
            1
        } else if backing_ino == 1 {
            // Cannot collide with the root's number; not expected on a real backing file system.
            u64::MAX - 1
        } else {
            backing_ino
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino.0 == 1 {
            return Ok(self.backing.clone());
        }
        self.paths
            .read()
            .unwrap()
            .get(&ino.0)
            .cloned()
            .ok_or(Errno::ESTALE)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn remember(&self, path: PathBuf, meta: &fs::Metadata) -> FileAttr {
        let attr = self.attr(meta);
        if attr.ino.0 != 1 {
            self.paths.write().unwrap().insert(attr.ino.0, path);
        }
        attr
    }

    fn attr(&self, meta: &fs::Metadata) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.fuse_ino(meta.ino())),
            size: meta.size(),
            blocks: meta.blocks(),
            atime: system_time(meta.atime(), meta.atime_nsec()),
            mtime: system_time(meta.mtime(), meta.mtime_nsec()),
            ctime: system_time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind_of(meta.file_type()),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: meta.blksize() as u32,
            flags: 0,
        }
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.files
            .read()
            .unwrap()
            .get(&fh.0)
            .cloned()
            .ok_or(Errno::EBADF)
    }

    fn add_file(&self, file: File) -> FileHandle {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.files.write().unwrap().insert(fh, Arc::new(file));
        FileHandle(fh)
    }

    fn open_options(flags: i32) -> OpenOptions {
        let mut options = OpenOptions::new();
        match flags & libc::O_ACCMODE {
            libc::O_WRONLY => options.write(true),
            libc::O_RDWR => options.read(true).write(true),
            _ => options.read(true),
        };
        // std sets the access mode and O_CREAT/O_EXCL itself; pass on what changes behaviour.
        options.custom_flags(flags & (libc::O_APPEND | libc::O_TRUNC | libc::O_EXCL));
        options
    }
}

impl Filesystem for LatFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let mut wanted = InitFlags::empty();
        if self.parallel_dirops {
            wanted |= InitFlags::FUSE_PARALLEL_DIROPS;
        }
        if self.flock {
            wanted |= InitFlags::FUSE_FLOCK_LOCKS;
        }
        if let Err(missing) = config.add_capabilities(wanted) {
            eprintln!("latfs: kernel lacks capabilities {missing:?}; continuing without them");
            let _ = config.add_capabilities(wanted & !missing);
        }
        let _ = config.set_max_background(256);
        let _ = config.set_congestion_threshold(192);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let t = self.timer(Op::Lookup);
        let result = self.child(parent, name).and_then(|path| {
            let meta = fs::symlink_metadata(&path).map_err(errno)?;
            Ok(self.remember(path, &meta))
        });
        drop(t);
        match result {
            Ok(attr) => {
                reply.entry_with_ttls(&self.attr_ttl, &self.entry_ttl, &attr, Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let t = self.timer(Op::Getattr);
        let result = match fh.map(|fh| self.file(fh)) {
            Some(Ok(file)) => file.metadata().map_err(errno),
            _ => self
                .path(ino)
                .and_then(|path| fs::symlink_metadata(path).map_err(errno)),
        }
        .map(|meta| self.attr(&meta));
        drop(t);
        match result {
            Ok(attr) => reply.attr(&self.attr_ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let t = self.timer(Op::Setattr);
        let result = (|| {
            let path = self.path(ino)?;
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if let Some(size) = size {
                match fh.map(|fh| self.file(fh)) {
                    Some(Ok(file)) => file.set_len(size).map_err(errno)?,
                    _ => OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(size))
                        .map_err(errno)?,
                }
            }
            if atime.is_some() || mtime.is_some() {
                let to_time = |t: Option<TimeOrNow>| match t {
                    Some(TimeOrNow::SpecificTime(t)) => t,
                    _ => SystemTime::now(),
                };
                let times = fs::FileTimes::new()
                    .set_accessed(to_time(atime))
                    .set_modified(to_time(mtime));
                if let Ok(file) = File::open(&path) {
                    let _ = file.set_times(times);
                }
            }
            fs::symlink_metadata(&path).map_err(errno)
        })()
        .map(|meta| self.attr(&meta));
        drop(t);
        match result {
            Ok(attr) => reply.attr(&self.attr_ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let t = self.timer(Op::Mknod);
        let result = self.child(parent, name).and_then(|path| {
            if mode & libc::S_IFMT != libc::S_IFREG {
                return Err(Errno::EPERM);
            }
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode & !umask & 0o7777)
                .open(&path)
                .map_err(errno)?;
            let meta = fs::symlink_metadata(&path).map_err(errno)?;
            Ok(self.remember(path, &meta))
        });
        drop(t);
        match result {
            Ok(attr) => {
                reply.entry_with_ttls(&self.attr_ttl, &self.entry_ttl, &attr, Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let t = self.timer(Op::Mkdir);
        let result = self.child(parent, name).and_then(|path| {
            fs::create_dir(&path).map_err(errno)?;
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask & 0o7777));
            let meta = fs::symlink_metadata(&path).map_err(errno)?;
            Ok(self.remember(path, &meta))
        });
        drop(t);
        match result {
            Ok(attr) => {
                reply.entry_with_ttls(&self.attr_ttl, &self.entry_ttl, &attr, Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let t = self.timer(Op::Unlink);
        let result = self
            .child(parent, name)
            .and_then(|path| fs::remove_file(path).map_err(errno));
        drop(t);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let t = self.timer(Op::Rmdir);
        let result = self
            .child(parent, name)
            .and_then(|path| fs::remove_dir(path).map_err(errno));
        drop(t);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let t = self.timer(Op::Symlink);
        let result = self.child(parent, link_name).and_then(|path| {
            std::os::unix::fs::symlink(target, &path).map_err(errno)?;
            let meta = fs::symlink_metadata(&path).map_err(errno)?;
            Ok(self.remember(path, &meta))
        });
        drop(t);
        match result {
            Ok(attr) => {
                reply.entry_with_ttls(&self.attr_ttl, &self.entry_ttl, &attr, Generation(0))
            }
            Err(e) => reply.error(e),
        }
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
        let t = self.timer(Op::Rename);
        let result = (|| {
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            let c_from = CString::new(from.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
            let c_to = CString::new(to.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
            // renameat2 keeps RENAME_NOREPLACE / RENAME_EXCHANGE semantics.
            let rc = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    c_from.as_ptr(),
                    libc::AT_FDCWD,
                    c_to.as_ptr(),
                    flags.bits(),
                )
            };
            if rc != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            if let Ok(meta) = fs::symlink_metadata(&to) {
                self.remember(to, &meta);
            }
            Ok(())
        })();
        drop(t);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let t = self.timer(Op::Link);
        let result = (|| {
            let from = self.path(ino)?;
            let to = self.child(newparent, newname)?;
            fs::hard_link(&from, &to).map_err(errno)?;
            let meta = fs::symlink_metadata(&to).map_err(errno)?;
            Ok(self.remember(to, &meta))
        })();
        drop(t);
        match result {
            Ok(attr) => {
                reply.entry_with_ttls(&self.attr_ttl, &self.entry_ttl, &attr, Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let t = self.timer(Op::Open);
        let result = self
            .path(ino)
            .and_then(|path| Self::open_options(flags.0).open(path).map_err(errno))
            .map(|file| self.add_file(file));
        drop(t);
        match result {
            // No FOPEN_KEEP_CACHE: the kernel drops its page cache of the file on every open.
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let t = self.timer(Op::Read);
        let result = self.file(fh).and_then(|file| {
            let mut buf = vec![0u8; size as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(errno(e)),
                }
            }
            buf.truncate(filled);
            Ok(buf)
        });
        drop(t);
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let t = self.timer(Op::Write);
        // With O_APPEND on the backing descriptor, Linux's pwrite appends whatever the offset.
        let result = self
            .file(fh)
            .and_then(|file| file.write_all_at(data, offset).map_err(errno));
        drop(t);
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _t = self.timer(Op::Flush);
        drop(_t);
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let t = self.timer(Op::Release);
        // Closing the backing descriptor also drops any flock held through it.
        self.files.write().unwrap().remove(&fh.0);
        drop(t);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The injected latency stands for the remote commit; the backing file is not synced
        // (that would add this disk's own flush time to the model).
        let t = self.timer(Op::Fsync);
        drop(t);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let t = self.timer(Op::Opendir);
        let result = self.path(ino).and_then(|path| {
            let mut entries = vec![
                (ino.0, FileType::Directory, OsString::from(".")),
                (1, FileType::Directory, OsString::from("..")),
            ];
            for entry in fs::read_dir(&path).map_err(errno)? {
                let entry = entry.map_err(errno)?;
                let kind = entry
                    .file_type()
                    .map(kind_of)
                    .unwrap_or(FileType::RegularFile);
                entries.push((self.fuse_ino(entry.ino()), kind, entry.file_name()));
            }
            let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
            self.dirs
                .lock()
                .unwrap()
                .insert(fh, Arc::new(OpenDir { entries }));
            Ok(FileHandle(fh))
        });
        drop(t);
        match result {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
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
        let t = self.timer(Op::Readdir);
        let dir = self.dirs.lock().unwrap().get(&fh.0).cloned();
        drop(t);
        let Some(dir) = dir else {
            reply.error(Errno::EBADF);
            return;
        };
        for (i, (ino, kind, name)) in dir.entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let t = self.timer(Op::Releasedir);
        self.dirs.lock().unwrap().remove(&fh.0);
        drop(t);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let t = self.timer(Op::Fsyncdir);
        drop(t);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let t = self.timer(Op::Statfs);
        let path = CString::new(self.backing.as_os_str().as_bytes()).unwrap_or_default();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        drop(t);
        if rc != 0 {
            reply.error(errno(io::Error::last_os_error()));
        } else {
            reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            );
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let t = self.timer(Op::Access);
        let result = self
            .path(ino)
            .and_then(|path| fs::symlink_metadata(path).map_err(errno));
        drop(t);
        match result {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let t = self.timer(Op::Create);
        let result = self.child(parent, name).and_then(|path| {
            let mut options = Self::open_options(flags);
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                // Creating needs write access on the backing side; the kernel checks the caller's.
                options.write(true);
            }
            let file = options
                .create(true)
                .mode(mode & !umask & 0o7777)
                .open(&path)
                .map_err(errno)?;
            let meta = file.metadata().map_err(errno)?;
            let attr = self.remember(path, &meta);
            Ok((attr, self.add_file(file)))
        });
        drop(t);
        match result {
            Ok((attr, fh)) => reply.created(
                &self.entry_ttl,
                &attr,
                Generation(0),
                fh,
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        start: u64,
        end: u64,
        _typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        let t = self.timer(Op::Getlk);
        drop(t);
        reply.locked(start, end, libc::F_UNLCK, pid);
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        // Only flock(2) reaches here (FUSE_FLOCK_LOCKS without FUSE_POSIX_LOCKS): take the same
        // lock on the backing descriptor, which is one per open file description as flock wants.
        let t = self.timer(Op::Setlk);
        let result = self.file(fh).and_then(|file| {
            let mut op = match typ {
                libc::F_RDLCK => libc::LOCK_SH,
                libc::F_WRLCK => libc::LOCK_EX,
                _ => libc::LOCK_UN,
            };
            if !sleep {
                op |= libc::LOCK_NB;
            }
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                Ok(())
            } else {
                Err(errno(io::Error::last_os_error()))
            }
        });
        drop(t);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: latfs <backing dir> <mount point> [--meta-us N] [--read-us N] [--write-us N] \
         [--threads N] [--entry-ttl-ms N] [--attr-ttl-ms N] [--stats-socket PATH] [--no-flock] [--serial-dirops]"
    );
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mut positional = Vec::new();
    let mut latency = Latencies {
        meta: Duration::from_micros(1000),
        read: Duration::from_micros(250),
        write: Duration::from_micros(2700),
    };
    let mut threads = 128usize;
    let mut entry_ttl = Duration::ZERO;
    let mut attr_ttl = Duration::from_secs(1);
    let mut stats_socket: Option<PathBuf> = None;
    let mut flock = true;
    let mut parallel_dirops = true;
    while let Some(arg) = args.next() {
        let number = |args: &mut dyn Iterator<Item = OsString>| -> u64 {
            args.next()
                .and_then(|v| v.to_str().and_then(|v| v.parse().ok()))
                .unwrap_or_else(|| usage())
        };
        match arg.to_str() {
            Some("--meta-us") => latency.meta = Duration::from_micros(number(&mut args)),
            Some("--read-us") => latency.read = Duration::from_micros(number(&mut args)),
            Some("--write-us") => latency.write = Duration::from_micros(number(&mut args)),
            Some("--threads") => threads = number(&mut args).max(1) as usize,
            Some("--entry-ttl-ms") => entry_ttl = Duration::from_millis(number(&mut args)),
            Some("--attr-ttl-ms") => attr_ttl = Duration::from_millis(number(&mut args)),
            Some("--stats-socket") => {
                stats_socket = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage()))
            }
            Some("--no-flock") => flock = false,
            Some("--serial-dirops") => parallel_dirops = false,
            Some(s) if s.starts_with("--") => usage(),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [backing, mountpoint] = <[PathBuf; 2]>::try_from(positional).unwrap_or_else(|_| usage());
    let backing = fs::canonicalize(&backing).unwrap_or_else(|e| {
        eprintln!("latfs: backing directory {}: {e}", backing.display());
        std::process::exit(1);
    });
    let root_backing_ino = fs::metadata(&backing).map(|m| m.ino()).unwrap_or(0);

    // Block the stop signals in every thread; the main thread waits for them below.
    let mut stop_signals: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut stop_signals);
        libc::sigaddset(&mut stop_signals, libc::SIGTERM);
        libc::sigaddset(&mut stop_signals, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &stop_signals, std::ptr::null_mut());
    }

    let stats = Arc::new(Stats::new());
    if let Some(socket) = &stats_socket {
        let _ = fs::remove_file(socket);
        let listener = UnixListener::bind(socket).unwrap_or_else(|e| {
            eprintln!("latfs: stats socket {}: {e}", socket.display());
            std::process::exit(1);
        });
        let stats = Arc::clone(&stats);
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.write_all(stats.json().as_bytes());
            }
        });
    }

    let fs = LatFs {
        backing,
        root_backing_ino,
        latency,
        entry_ttl,
        attr_ttl,
        flock,
        parallel_dirops,
        paths: RwLock::new(HashMap::new()),
        files: RwLock::new(HashMap::new()),
        dirs: Mutex::new(HashMap::new()),
        next_handle: AtomicU64::new(1),
        stats,
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("latfs".to_owned()),
        MountOption::Subtype("latfs".to_owned()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    config.n_threads = Some(threads);
    config.clone_fd = true;
    let session = match fuser::spawn_mount(fs, &mountpoint, &config) {
        Ok(session) => session,
        Err(e) => {
            eprintln!("latfs: cannot mount on {}: {e}", mountpoint.display());
            std::process::exit(1);
        }
    };
    eprintln!(
        "latfs: mounted on {} (meta {:?}, read {:?}, write {:?}, {threads} threads, \
         entry ttl {entry_ttl:?}, attr ttl {attr_ttl:?})",
        mountpoint.display(),
        latency.meta,
        latency.read,
        latency.write,
    );

    let mut signal = 0;
    unsafe { libc::sigwait(&stop_signals, &mut signal) };
    drop(session); // unmounts
    if let Some(socket) = &stats_socket {
        let _ = fs::remove_file(socket);
    }
    eprintln!("latfs: unmounted");
}
