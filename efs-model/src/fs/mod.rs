//! The FUSE file system: each kernel request answered from the client's caches where an NFS
//! client would (client.rs), and otherwise by round trips to the server (server.rs), each held
//! for its latency (latency.rs) and subject to injected faults (faults.rs).
//!
//! With `--nfs-cache` the kernel caches nothing (entry and attribute timeouts of zero, no kept
//! page cache), so every path component, `stat` and open reaches this process, which decides as
//! the Linux NFS client would whether a round trip is needed. Without it the model is the
//! original latency file system: every request is one round trip, and the kernel caches
//! attributes for `--attr-ttl-ms` and names for `--entry-ttl-ms`.

mod dirs;
mod files;
mod inodes;
mod names;

use std::{
    collections::HashMap,
    ffi::OsStr,
    os::fd::OwnedFd,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use self::inodes::Inodes;
use crate::{
    client::{CacheTimes, Client, Name},
    faults::Faults,
    latency::{Call, Latencies, Rpc},
    server::{Attr, Entry, Handle, Server},
    stats::{request, Stats},
};

/// Files up to this size are cached whole by the client; larger ones are read as asked.
const MAX_CACHED_FILE: u64 = 8 << 20;
/// One READ or READDIR round trip carries at most this much (EFS's `rsize` is 1 MiB).
const TRANSFER: u64 = 1 << 20;
/// One READDIR round trip returns about this many names.
const NAMES_PER_READDIR: u64 = 4096;

/// How the model behaves: latencies, caching, faults.
pub struct Settings {
    pub latencies: Latencies,
    /// `Some`: the NFS client model with these attribute timeouts; `None`: the original
    /// latency file system.
    pub nfs_cache: Option<CacheTimes>,
    /// Without the NFS model: how long the kernel may cache names and attributes.
    pub entry_ttl: Duration,
    pub attr_ttl: Duration,
    pub flock: bool,
    pub parallel_dirops: bool,
    pub faults: Arc<Faults>,
}

/// One open file or directory.
enum Open {
    File {
        handle: Handle,
        fd: OwnedFd,
    },
    Dir {
        handle: Handle,
        listing: Option<Arc<Vec<Entry>>>,
    },
}

/// The file system one mount serves.
pub struct ModelFs {
    server: Server,
    settings: Settings,
    client: Mutex<Client>,
    inodes: Mutex<Inodes>,
    open: Mutex<HashMap<u64, Arc<Open>>>,
    next_fh: AtomicU64,
    stats: Arc<Stats>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn file_attr(ino: u64, attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: attr.size,
        blocks: attr.blocks,
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: UNIX_EPOCH,
        kind: kind_of(attr.mode),
        perm: (attr.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: attr.rdev,
        blksize: attr.blksize,
        flags: 0,
    }
}

type Result<T> = std::result::Result<T, i32>;

impl ModelFs {
    pub fn new(backing: &Path, settings: Settings, stats: Arc<Stats>) -> std::io::Result<Self> {
        let server = Server::new(backing)?;
        let inodes = Inodes::new(server.root());
        let times = settings.nfs_cache.unwrap_or_default();
        Ok(Self {
            server,
            settings,
            client: Mutex::new(Client::new(times)),
            inodes: Mutex::new(inodes),
            open: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            stats,
        })
    }

    /// The fault switch, for the signal handler.
    pub fn faults(&self) -> Arc<Faults> {
        Arc::clone(&self.settings.faults)
    }

    fn nfs(&self) -> bool {
        self.settings.nfs_cache.is_some()
    }

    fn call(&self, name: &str) -> Call<'_> {
        Call::new(
            request(name),
            &self.settings.latencies,
            &self.settings.faults,
            &self.stats,
        )
    }

    /// Runs one kernel request's work and holds its answer until its round trips are paid.
    fn answer<T>(&self, request: &str, work: impl FnOnce(&mut Call<'_>) -> Result<T>) -> Result<T> {
        let mut call = self.call(request);
        let result = work(&mut call);
        drop(call);
        result
    }

    fn handle(&self, ino: INodeNo) -> Result<Handle> {
        lock(&self.inodes).handle(ino).ok_or(libc::ESTALE)
    }

    fn opened(&self, fh: FileHandle) -> Result<Arc<Open>> {
        lock(&self.open).get(&fh.0).cloned().ok_or(libc::EBADF)
    }

    fn add_open(&self, open: Open) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.open).insert(fh, Arc::new(open));
        FileHandle(fh)
    }

    /// How long the kernel may keep a name and attributes: never with the NFS model, which
    /// decides itself.
    fn ttls(&self) -> (Duration, Duration) {
        if self.nfs() {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (self.settings.attr_ttl, self.settings.entry_ttl)
        }
    }

    /// Answers a request that names an object: the kernel gets its inode number (one more
    /// reference) and its attributes.
    fn reply_entry(&self, reply: ReplyEntry, result: Result<(Handle, Attr)>) {
        match result {
            Ok((handle, attr)) => {
                let ino = lock(&self.inodes).reference(&handle);
                let (attr_ttl, entry_ttl) = self.ttls();
                reply.entry_with_ttls(&attr_ttl, &entry_ttl, &file_attr(ino, &attr), Generation(0));
            }
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    /// A server answer of `ESTALE` about `handle`: the client forgets it and the name it was
    /// found under, so that the kernel's retry (the VFS walks the path again on `ESTALE`) asks the
    /// server.
    fn stale<T>(&self, handle: &Handle, result: Result<T>) -> Result<T> {
        if result.as_ref().err() == Some(&libc::ESTALE) {
            lock(&self.client).gone(handle);
        }
        result
    }

    /// A server answer to a change of `name` in `dir`: a stale `dir` is forgotten, and an answer
    /// the cached name contradicts
    /// (`EEXIST` where a "no such name" is cached, `ENOENT` where a name is): the client drops
    /// the cached name, as Linux drops the dentry of a failed create, so the next look-up asks.
    fn named<T>(&self, dir: &Handle, name: &OsStr, result: Result<T>) -> Result<T> {
        let result = self.stale(dir, result);
        if matches!(
            result,
            Err(libc::EEXIST | libc::ENOENT | libc::ENOTEMPTY | libc::ENOTDIR | libc::EISDIR)
        ) {
            lock(&self.client).gone_name(dir, name);
        }
        result
    }

    /// The attributes of a directory about to be used to resolve a name: revalidated with the
    /// server if the cached ones expired (which may show a change, and so drop the names).
    fn revalidate_if_expired(&self, call: &mut Call<'_>, handle: &Handle) -> Result<()> {
        if lock(&self.client).fresh_attr(handle).is_some() {
            return Ok(());
        }
        let attr = self.stale(
            handle,
            call.rpc(Rpc::Getattr, || self.server.getattr(handle)),
        )?;
        lock(&self.client).revalidated(handle, attr);
        Ok(())
    }

    /// The attributes of a directory after this client changed it, and the name it changed.
    fn our_change(&self, dir: &Handle, changed: crate::server::Changed, name: &OsStr, now: Name) {
        let mut client = lock(&self.client);
        client.changed_by_us(dir, changed);
        client.set_name(dir, name, now);
    }

    fn new_object(
        &self,
        dir: &Handle,
        name: &OsStr,
        handle: &Handle,
        attr: Attr,
        changed: crate::server::Changed,
    ) {
        self.our_change(dir, changed, name, Name::Is(handle.clone()));
        lock(&self.client).revalidated(handle, attr);
    }
}

fn error(errno: i32) -> Errno {
    Errno::from_i32(errno)
}

fn reply_empty(reply: ReplyEmpty, result: Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(error(e)),
    }
}

/// Every request: the work is an inherent method (names.rs, files.rs, dirs.rs) run through
/// [`ModelFs::answer`], which holds the reply until the request's round trips are paid.
impl Filesystem for ModelFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let mut wanted = InitFlags::empty();
        if self.settings.parallel_dirops {
            wanted |= InitFlags::FUSE_PARALLEL_DIROPS;
        }
        if self.settings.flock {
            wanted |= InitFlags::FUSE_FLOCK_LOCKS;
        }
        if let Err(missing) = config.add_capabilities(wanted) {
            eprintln!("latfs: kernel lacks capabilities {missing:?}; continuing without them");
            let _ = config.add_capabilities(wanted & !missing);
        }
        let _ = config.set_max_background(256);
        let _ = config.set_congestion_threshold(192);
        // A WRITE carries up to 1 MiB, as an NFS client's wsize on EFS.
        let _ = config.set_max_write(TRANSFER as u32);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = self.answer("lookup", |call| self.lookup_in(call, parent, name));
        self.reply_entry(reply, result);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.inodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.answer("getattr", |call| self.getattr_of(call, ino, fh)) {
            Ok(attr) => reply.attr(&self.ttls().0, &file_attr(ino.0, &attr)),
            Err(e) => reply.error(error(e)),
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
        let changes = files::Changes {
            mode,
            size,
            atime,
            mtime,
        };
        match self.answer("setattr", |call| self.setattr_of(call, ino, fh, changes)) {
            Ok(attr) => reply.attr(&self.ttls().0, &file_attr(ino.0, &attr)),
            Err(e) => reply.error(error(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.answer("readlink", |call| self.readlink_of(call, ino)) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(error(e)),
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
        let result = self.answer("mknod", |call| {
            self.mknod_in(call, parent, name, mode & !umask)
        });
        self.reply_entry(reply, result);
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
        let result = self.answer("mkdir", |call| {
            self.mkdir_in(call, parent, name, mode & !umask)
        });
        self.reply_entry(reply, result);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.answer("unlink", |call| self.remove_in(call, parent, name, false)),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.answer("rmdir", |call| self.remove_in(call, parent, name, true)),
        );
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let result = self.answer("symlink", |call| {
            self.symlink_in(call, parent, link_name, target)
        });
        self.reply_entry(reply, result);
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
        let result = self.answer("rename", |call| {
            self.rename_in(call, (parent, name), (newparent, newname), flags)
        });
        reply_empty(reply, result);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = self.answer("link", |call| self.link_in(call, ino, newparent, newname));
        self.reply_entry(reply, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.answer("open", |call| self.open_file(call, ino, flags.0)) {
            // No FOPEN_KEEP_CACHE: the kernel drops its page cache of the file on every open;
            // the client's data cache here decides what a read costs.
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(error(e)),
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
        match self.answer("read", |call| self.read_file(call, fh, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(error(e)),
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
        match self.answer("write", |call| self.write_file(call, fh, offset, data)) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(error(e)),
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
        // Free: an NFS client has nothing left to send after an fsync, and closes asynchronously.
        reply_empty(reply, self.answer("flush", |_| Ok(())));
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
        // Closing the backing descriptor also drops any flock held through it.
        let result = self.answer("release", |_| {
            lock(&self.open).remove(&fh.0);
            Ok(())
        });
        reply_empty(reply, result);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.answer("fsync", |call| self.commit(call, fh)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.answer("opendir", |call| self.open_dir(call, ino)) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(error(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.answer("readdir", |call| self.listing(call, fh, offset)) {
            Ok(entries) => {
                dirs::fill(ino, &entries, offset, &mut reply);
                reply.ok();
            }
            Err(e) => reply.error(error(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.answer("releasedir", |_| {
            lock(&self.open).remove(&fh.0);
            Ok(())
        });
        reply_empty(reply, result);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.answer("fsyncdir", |call| call.rpc(Rpc::Commit, || Ok(()))),
        );
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.answer("statfs", |call| {
            call.rpc(Rpc::Statfs, || self.server.statfs())
        }) {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(error(e)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let result = self.answer("access", |call| {
            let handle = self.handle(ino)?;
            self.stale(
                &handle,
                call.rpc(Rpc::Access, || self.server.getattr(&handle)),
            )
            .map(drop)
        });
        reply_empty(reply, result);
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
        match self.answer("create", |call| {
            self.create_in(call, parent, name, mode & !umask, flags)
        }) {
            Ok((handle, attr, fh)) => {
                let ino = lock(&self.inodes).reference(&handle);
                let ttl = self.ttls().1;
                reply.created(
                    &ttl,
                    &file_attr(ino, &attr),
                    Generation(0),
                    fh,
                    FopenFlags::empty(),
                )
            }
            Err(e) => reply.error(error(e)),
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
        match self.answer("getlk", |call| call.rpc(Rpc::Lock, || Ok(()))) {
            Ok(()) => reply.locked(start, end, libc::F_UNLCK, pid),
            Err(e) => reply.error(error(e)),
        }
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
        reply_empty(
            reply,
            self.answer("setlk", |call| self.flock(call, fh, typ, sleep)),
        );
    }
}
