//! The FUSE file system: each kernel request answered from the client's caches where an NFS
//! client would (client.rs), and otherwise by round trips to the server (server.rs), each held
//! for its latency (latency.rs) and subject to injected faults (faults.rs).
//!
//! With `--nfs-cache` the kernel caches nothing (entry and attribute timeouts of zero, no kept
//! page cache), so every path component, `stat` and open reaches this process, which decides as
//! the Linux NFS client would whether a round trip is needed. Without it the model is the
//! original latency file system: every request is one round trip, and the kernel caches
//! attributes for `--attr-ttl-ms` and names for `--entry-ttl-ms`.

use std::{
    collections::HashMap,
    ffi::OsStr,
    hash::{Hash, Hasher},
    os::fd::{AsRawFd, OwnedFd},
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
use rustix::fs::OFlags;

use crate::{
    client::{CacheTimes, Client, Name},
    faults::Faults,
    latency::{Call, Latencies, Rpc},
    server::{Attr, Entry, Handle, Server, SetTime},
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

/// The kernel's inode numbers for the server's objects, with the kernel's reference counts.
struct Inodes {
    by_ino: HashMap<u64, (Handle, u64)>,
    by_handle: HashMap<Handle, u64>,
    next: u64,
}

impl Inodes {
    fn new(root: &Handle) -> Self {
        let mut inodes = Self {
            by_ino: HashMap::new(),
            by_handle: HashMap::new(),
            next: 2,
        };
        inodes.by_ino.insert(1, (root.clone(), 1));
        inodes.by_handle.insert(root.clone(), 1);
        inodes
    }

    /// The inode number of `handle`, counting one more kernel reference to it.
    fn reference(&mut self, handle: &Handle) -> u64 {
        if let Some(&ino) = self.by_handle.get(handle) {
            if let Some(entry) = self.by_ino.get_mut(&ino) {
                entry.1 += 1;
            }
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_ino.insert(ino, (handle.clone(), 1));
        self.by_handle.insert(handle.clone(), ino);
        ino
    }

    fn handle(&self, ino: INodeNo) -> Option<Handle> {
        self.by_ino.get(&ino.0).map(|(handle, _)| handle.clone())
    }

    fn forget(&mut self, ino: u64, n: u64) {
        if ino == 1 {
            return;
        }
        if let Some(entry) = self.by_ino.get_mut(&ino) {
            entry.1 = entry.1.saturating_sub(n);
            if entry.1 == 0 {
                let (handle, _) = entry.clone();
                self.by_ino.remove(&ino);
                self.by_handle.remove(&handle);
            }
        }
    }
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

/// A stable, non-zero inode number for a listing entry (a listing takes no kernel reference).
fn listing_ino(handle: &Handle) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    handle.hash(&mut hasher);
    hasher.finish() | 1 << 63
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

    fn lookup_nfs(
        &self,
        call: &mut Call<'_>,
        dir: &Handle,
        name: &OsStr,
    ) -> Result<(Handle, Attr)> {
        self.revalidate_if_expired(call, dir)?;
        let cached = lock(&self.client).name(dir, name);
        match cached {
            Some(Name::Absent) => Err(libc::ENOENT),
            Some(Name::Is(handle)) => {
                let attr = lock(&self.client).any_attr(&handle);
                match attr {
                    Some(attr) => Ok((handle, attr)),
                    None => {
                        let attr = self.stale(
                            &handle,
                            call.rpc(Rpc::Getattr, || self.server.getattr(&handle)),
                        )?;
                        lock(&self.client).revalidated(&handle, attr);
                        Ok((handle, attr))
                    }
                }
            }
            None => {
                match self.stale(dir, call.rpc(Rpc::Lookup, || self.server.lookup(dir, name))) {
                    Ok((handle, attr)) => {
                        let mut client = lock(&self.client);
                        client.revalidated(&handle, attr);
                        client.set_name(dir, name, Name::Is(handle.clone()));
                        Ok((handle, attr))
                    }
                    Err(libc::ENOENT) => {
                        lock(&self.client).set_name(dir, name, Name::Absent);
                        Err(libc::ENOENT)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The attributes of a directory after this client changed it, and the name it changed.
    fn our_change(
        &self,
        dir: &Handle,
        changed: crate::server::Changed,
        name: &OsStr,
        now: Option<Name>,
    ) {
        let mut client = lock(&self.client);
        client.changed_by_us(dir, changed);
        match now {
            Some(found) => client.set_name(dir, name, found),
            None => client.set_name(dir, name, Name::Absent),
        }
    }

    fn new_object(
        &self,
        dir: &Handle,
        name: &OsStr,
        handle: &Handle,
        attr: Attr,
        changed: crate::server::Changed,
    ) {
        self.our_change(dir, changed, name, Some(Name::Is(handle.clone())));
        lock(&self.client).revalidated(handle, attr);
    }

    /// Fills a READDIR reply from a listing, "." and ".." first.
    fn fill(&self, ino: INodeNo, listing: &[Entry], offset: u64, reply: &mut ReplyDirectory) {
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (1, FileType::Directory, OsStr::new("..")),
        ];
        let entries = dots.into_iter().chain(listing.iter().map(|e| {
            (
                listing_ino(&e.handle),
                kind_of(e.attr.mode),
                e.name.as_os_str(),
            )
        }));
        for (i, (ino, kind, name)) in entries.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
    }
}

fn set_time(time: Option<TimeOrNow>) -> Option<SetTime> {
    time.map(|t| match t {
        TimeOrNow::Now => SetTime::ServerNow,
        TimeOrNow::SpecificTime(at) => SetTime::At(at),
    })
}

fn reply_empty(reply: ReplyEmpty, result: Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(Errno::from_i32(e)),
    }
}

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
        let mut call = self.call("lookup");
        let result = self.handle(parent).and_then(|dir| {
            if self.nfs() {
                self.lookup_nfs(&mut call, &dir, name)
            } else {
                call.rpc(Rpc::Lookup, || self.server.lookup(&dir, name))
            }
        });
        drop(call);
        self.reply_entry(reply, result);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.inodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut call = self.call("getattr");
        let result = self.handle(ino).and_then(|handle| {
            if self.nfs() {
                if let Some(attr) = lock(&self.client).fresh_attr(&handle) {
                    return Ok(attr);
                }
            }
            let open = fh.and_then(|fh| self.opened(fh).ok());
            let attr = match open.as_deref() {
                Some(Open::File { fd, .. }) => call.rpc(Rpc::Getattr, || self.server.fgetattr(fd)),
                _ => self.stale(
                    &handle,
                    call.rpc(Rpc::Getattr, || self.server.getattr(&handle)),
                ),
            }?;
            if self.nfs() {
                lock(&self.client).revalidated(&handle, attr);
            }
            Ok(attr)
        });
        drop(call);
        match result {
            Ok(attr) => reply.attr(&self.ttls().0, &file_attr(ino.0, &attr)),
            Err(e) => reply.error(Errno::from_i32(e)),
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
        let mut call = self.call("setattr");
        let result = self.handle(ino).and_then(|handle| {
            let open = fh.and_then(|fh| self.opened(fh).ok());
            let fd = match open.as_deref() {
                Some(Open::File { fd, .. }) => Some(fd),
                _ => None,
            };
            let attr = self.stale(
                &handle,
                call.rpc(Rpc::Setattr, || {
                    self.server
                        .setattr(&handle, fd, mode, size, set_time(atime), set_time(mtime))
                }),
            )?;
            lock(&self.client).written_by_us(&handle, attr);
            Ok(attr)
        });
        drop(call);
        match result {
            Ok(attr) => reply.attr(&self.ttls().0, &file_attr(ino.0, &attr)),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let mut call = self.call("readlink");
        let result = self.handle(ino).and_then(|handle| {
            self.stale(
                &handle,
                call.rpc(Rpc::Readlink, || self.server.readlink(&handle)),
            )
        });
        drop(call);
        match result {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(Errno::from_i32(e)),
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
        let mut call = self.call("mknod");
        let result = self.handle(parent).and_then(|dir| {
            let (handle, attr, changed) = self.named(
                &dir,
                name,
                call.rpc(Rpc::Create, || self.server.mknod(&dir, name, mode & !umask)),
            )?;
            self.new_object(&dir, name, &handle, attr, changed);
            Ok((handle, attr))
        });
        drop(call);
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
        let mut call = self.call("mkdir");
        let result = self.handle(parent).and_then(|dir| {
            let (handle, attr, changed) = self.named(
                &dir,
                name,
                call.rpc(Rpc::Mkdir, || self.server.mkdir(&dir, name, mode & !umask)),
            )?;
            self.new_object(&dir, name, &handle, attr, changed);
            Ok((handle, attr))
        });
        drop(call);
        self.reply_entry(reply, result);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut call = self.call("unlink");
        let result = self.handle(parent).and_then(|dir| {
            let changed = self.named(
                &dir,
                name,
                call.rpc(Rpc::Remove, || self.server.remove(&dir, name, false)),
            )?;
            self.our_change(&dir, changed, name, None);
            Ok(())
        });
        drop(call);
        reply_empty(reply, result);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut call = self.call("rmdir");
        let result = self.handle(parent).and_then(|dir| {
            let gone = lock(&self.client).name(&dir, name);
            let changed = self.named(
                &dir,
                name,
                call.rpc(Rpc::Remove, || self.server.remove(&dir, name, true)),
            )?;
            self.our_change(&dir, changed, name, None);
            if let Some(Name::Is(handle)) = gone {
                lock(&self.client).gone(&handle);
            }
            Ok(())
        });
        drop(call);
        reply_empty(reply, result);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut call = self.call("symlink");
        let result = self.handle(parent).and_then(|dir| {
            let (handle, attr, changed) = self.named(
                &dir,
                link_name,
                call.rpc(Rpc::Symlink, || {
                    self.server.symlink(&dir, link_name, target)
                }),
            )?;
            self.new_object(&dir, link_name, &handle, attr, changed);
            Ok((handle, attr))
        });
        drop(call);
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
        let mut call = self.call("rename");
        let result = self.handle(parent).and_then(|from| {
            let to = self.handle(newparent)?;
            let moved = match lock(&self.client).name(&from, name) {
                Some(Name::Is(handle)) => Some(handle),
                _ => None,
            };
            let renamed = call.rpc(Rpc::Rename, || {
                self.server.rename(&from, name, &to, newname, flags.bits())
            });
            let renamed = self.named(&to, newname, renamed);
            let (from_changed, to_changed) = self.named(&from, name, renamed)?;
            self.our_change(&from, from_changed, name, None);
            if from != to {
                lock(&self.client).changed_by_us(&to, to_changed);
            }
            let mut client = lock(&self.client);
            match moved {
                Some(handle) => client.set_name(&to, newname, Name::Is(handle)),
                // Not known here: the next look-up asks the server.
                None => client.gone_name(&to, newname),
            }
            Ok(())
        });
        drop(call);
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
        let mut call = self.call("link");
        let result = self.handle(ino).and_then(|object| {
            let dir = self.handle(newparent)?;
            let (attr, changed) = self.named(
                &dir,
                newname,
                call.rpc(Rpc::Link, || self.server.link(&object, &dir, newname)),
            )?;
            self.new_object(&dir, newname, &object, attr, changed);
            Ok((object, attr))
        });
        drop(call);
        self.reply_entry(reply, result);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut call = self.call("open");
        let result = self.handle(ino).and_then(|handle| {
            // Close-to-open: OPEN goes to the server, which says whether the file still exists
            // and whether it changed.
            let flags = OFlags::from_bits_retain(flags.0 as u32)
                & (OFlags::RDONLY | OFlags::WRONLY | OFlags::RDWR | OFlags::APPEND | OFlags::TRUNC);
            let (fd, attr) = self.stale(
                &handle,
                call.rpc(Rpc::Open, || {
                    let fd = self.server.open(&handle, flags)?;
                    let attr = self.server.fgetattr(&fd)?;
                    Ok((fd, attr))
                }),
            )?;
            if self.nfs() {
                let mut client = lock(&self.client);
                if flags.contains(OFlags::TRUNC) {
                    client.written_by_us(&handle, attr);
                } else {
                    client.revalidated(&handle, attr);
                }
            }
            Ok(self.add_open(Open::File { handle, fd }))
        });
        drop(call);
        match result {
            // No FOPEN_KEEP_CACHE: the kernel drops its page cache of the file on every open;
            // the client's data cache here decides what a read costs.
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(Errno::from_i32(e)),
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
        let mut call = self.call("read");
        let result = self.opened(fh).and_then(|open| {
            let Open::File { handle, fd } = &*open else {
                return Err(libc::EISDIR);
            };
            let slice = |bytes: &[u8]| {
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                bytes[start..end].to_vec()
            };
            if self.nfs() {
                if let Some(bytes) = lock(&self.client).data(handle) {
                    return Ok(slice(&bytes));
                }
                let attr = self.server.fgetattr(fd)?;
                if attr.size <= MAX_CACHED_FILE {
                    // The whole file in as many READs as it takes.
                    let bytes = call.rpc(Rpc::Read, || read_at(fd, 0, attr.size as usize))?;
                    call.more(Rpc::Read, (attr.size.saturating_sub(1) / TRANSFER) as u32);
                    let answer = slice(&bytes);
                    lock(&self.client).set_data(handle, attr, bytes);
                    return Ok(answer);
                }
            }
            call.rpc(Rpc::Read, || read_at(fd, offset, size as usize))
        });
        drop(call);
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(Errno::from_i32(e)),
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
        let mut call = self.call("write");
        let result = self.opened(fh).and_then(|open| {
            let Open::File { handle, fd } = &*open else {
                return Err(libc::EISDIR);
            };
            // With O_APPEND on the backing descriptor, Linux's pwrite appends whatever the offset.
            let attr = call.rpc(Rpc::Write, || {
                let mut written = 0;
                while written < data.len() {
                    written += rustix::io::pwrite(fd, &data[written..], offset + written as u64)
                        .map_err(|e| e.raw_os_error())?;
                }
                self.server.fgetattr(fd)
            })?;
            lock(&self.client).written_by_us(handle, attr);
            Ok(())
        });
        drop(call);
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(Errno::from_i32(e)),
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
        drop(self.call("flush"));
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
        let call = self.call("release");
        // Closing the backing descriptor also drops any flock held through it.
        lock(&self.open).remove(&fh.0);
        drop(call);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The latency stands for the remote commit; the backing file is not synced (that would
        // add this disk's own flush time to the model).
        let mut call = self.call("fsync");
        let result = self.opened(fh).and_then(|open| {
            call.rpc(Rpc::Commit, || match &*open {
                Open::File { fd, .. } => self.server.fgetattr(fd).map(drop),
                Open::Dir { .. } => Ok(()),
            })
        });
        drop(call);
        reply_empty(reply, result);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut call = self.call("opendir");
        let result = self.handle(ino).and_then(|handle| {
            let listing = if self.nfs() {
                // Close-to-open for a directory: its attributes are revalidated, which drops a
                // listing and the names cached under it if it changed.
                let attr = self.stale(
                    &handle,
                    call.rpc(Rpc::Getattr, || self.server.getattr(&handle)),
                )?;
                lock(&self.client).revalidated(&handle, attr);
                None
            } else {
                let (entries, _) = self.stale(
                    &handle,
                    call.rpc(Rpc::Open, || self.server.readdir(&handle)),
                )?;
                Some(Arc::new(entries))
            };
            Ok(self.add_open(Open::Dir { handle, listing }))
        });
        drop(call);
        match result {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(Errno::from_i32(e)),
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
        let mut call = self.call("readdir");
        let result = self.opened(fh).and_then(|open| {
            let Open::Dir { handle, listing } = &*open else {
                return Err(libc::ENOTDIR);
            };
            if !self.nfs() {
                // The original model: every READDIR request is a round trip.
                call.rpc(Rpc::Readdir, || Ok(()))?;
                return Ok(listing.clone().unwrap_or_default());
            }
            if offset > 0 {
                if let Some(listing) = listing {
                    return Ok(Arc::clone(listing));
                }
            }
            // A directory kept open is listed again from the cache until its attributes expire
            // and a revalidation shows a change.
            self.revalidate_if_expired(&mut call, handle)?;
            let cached = lock(&self.client).listing(handle);
            let entries = match cached {
                Some(entries) => entries,
                None => {
                    let (entries, attr) = self.stale(
                        handle,
                        call.rpc(Rpc::Readdir, || self.server.readdir(handle)),
                    )?;
                    call.more(
                        Rpc::Readdir,
                        (entries.len() as u64 / NAMES_PER_READDIR) as u32,
                    );
                    let entries = Arc::new(entries);
                    lock(&self.client).set_listing(handle, entries.to_vec(), attr);
                    entries
                }
            };
            // Later READDIRs of this open directory continue the same listing.
            lock(&self.open).insert(
                fh.0,
                Arc::new(Open::Dir {
                    handle: handle.clone(),
                    listing: Some(Arc::clone(&entries)),
                }),
            );
            Ok(entries)
        });
        drop(call);
        match result {
            Ok(entries) => {
                self.fill(ino, &entries, offset, &mut reply);
                reply.ok();
            }
            Err(e) => reply.error(Errno::from_i32(e)),
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
        let call = self.call("releasedir");
        lock(&self.open).remove(&fh.0);
        drop(call);
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
        let mut call = self.call("fsyncdir");
        let result = call.rpc(Rpc::Commit, || Ok(()));
        drop(call);
        reply_empty(reply, result);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let mut call = self.call("statfs");
        let result = call.rpc(Rpc::Statfs, || self.server.statfs());
        drop(call);
        match result {
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
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let mut call = self.call("access");
        let result = self
            .handle(ino)
            .and_then(|handle| {
                self.stale(
                    &handle,
                    call.rpc(Rpc::Access, || self.server.getattr(&handle)),
                )
            })
            .map(drop);
        drop(call);
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
        let mut call = self.call("create");
        let result = self.handle(parent).and_then(|dir| {
            let flags = OFlags::from_bits_retain(flags as u32)
                & (OFlags::RDONLY
                    | OFlags::WRONLY
                    | OFlags::RDWR
                    | OFlags::APPEND
                    | OFlags::TRUNC
                    | OFlags::EXCL);
            let (fd, handle, attr, changed) = self.named(
                &dir,
                name,
                call.rpc(Rpc::Create, || {
                    self.server.create(&dir, name, mode & !umask, flags)
                }),
            )?;
            self.new_object(&dir, name, &handle, attr, changed);
            Ok((
                handle.clone(),
                attr,
                self.add_open(Open::File { handle, fd }),
            ))
        });
        drop(call);
        match result {
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
            Err(e) => reply.error(Errno::from_i32(e)),
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
        let mut call = self.call("getlk");
        let result = call.rpc(Rpc::Lock, || Ok(()));
        drop(call);
        match result {
            Ok(()) => reply.locked(start, end, libc::F_UNLCK, pid),
            Err(e) => reply.error(Errno::from_i32(e)),
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
        // Only flock(2) reaches here (FUSE_FLOCK_LOCKS without FUSE_POSIX_LOCKS): the same lock on
        // the backing descriptor, one per open file description as flock wants, shared by every
        // client of the backing directory.
        let mut call = self.call("setlk");
        let result = self.opened(fh).and_then(|open| {
            let Open::File { handle, fd } = &*open else {
                return Err(libc::EBADF);
            };
            let mut op = match typ {
                libc::F_RDLCK => libc::LOCK_SH,
                libc::F_WRLCK => libc::LOCK_EX,
                _ => libc::LOCK_UN,
            };
            if !sleep {
                op |= libc::LOCK_NB;
            }
            call.rpc(Rpc::Lock, || {
                if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error()
                        .raw_os_error()
                        .unwrap_or(libc::EIO))
                }
            })?;
            // A lock revalidates the file's data, as NFS clients do for lock-based coherence.
            lock(&self.client).locked(handle);
            Ok(())
        });
        drop(call);
        reply_empty(reply, result);
    }
}

fn read_at(fd: &OwnedFd, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match rustix::io::pread(fd, &mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.raw_os_error()),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}
