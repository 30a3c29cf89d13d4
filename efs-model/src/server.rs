//! The server: the backing directory, reached by file handles as an NFS server reaches its export.
//!
//! Every mount of the model over one backing directory is one NFS client of this one server.
//! An object is named by its kernel file handle (`name_to_handle_at`), which carries the inode's
//! generation, and every operation first turns the handle back into a descriptor
//! (`open_by_handle_at`). So, as on NFS, a handle on something another client removed answers
//! `ESTALE`, and a directory removed and made again under the same name is a different object.
//! Names are only ever resolved relative to a directory's descriptor, one component at a time.
//!
//! `open_by_handle_at` needs `CAP_DAC_READ_SEARCH`: the model runs as root (it mounts FUSE
//! anyway).

use std::{
    ffi::{CString, OsStr, OsString},
    io,
    os::{
        fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};

/// The most bytes a file handle has (`MAX_HANDLE_SZ`).
const MAX_HANDLE_BYTES: usize = 128;

/// An error as the kernel wants it: an errno value.
pub type Errno = i32;

/// Identifies one object of the server for as long as it exists: the handle type and the
/// opaque bytes of a kernel file handle.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Handle(Arc<[u8]>);

/// What changes whenever an object changes: its ctime (set on every change of data, metadata or,
/// for a directory, its entries; the kernel gives fine-grained stamps to changes made after a
/// stamp was read) and its size. Plays the part of NFSv4's change attribute.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Change {
    ctime_ns: i128,
    size: u64,
}

/// The attributes of an object, as a GETATTR answers them.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub size: u64,
    pub blocks: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    change: Change,
}

impl Attr {
    /// The change attribute: two reads of an object that differ here saw a change between them.
    pub fn change(&self) -> Change {
        self.change
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// One entry of a directory listing, with what READDIRPLUS returns beside the name.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: OsString,
    pub handle: Handle,
    pub attr: Attr,
}

/// A time to set on an object, as SETATTR carries it: a given time, or the server's own clock.
#[derive(Clone, Copy, Debug)]
pub enum SetTime {
    At(SystemTime),
    ServerNow,
}

/// The backing directory, shared by every client of the model.
pub struct Server {
    /// The backing directory: the mount point for `open_by_handle_at`.
    export: OwnedFd,
    root: Handle,
}

impl Server {
    /// Serves the directory `path`.
    pub fn new(path: &Path) -> io::Result<Self> {
        let export = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let root = handle_at(&export, OsStr::new(""), libc::AT_EMPTY_PATH)
            .map_err(io::Error::from_raw_os_error)?;
        Ok(Self { export, root })
    }

    /// The handle of the backing directory itself.
    pub fn root(&self) -> &Handle {
        &self.root
    }

    /// A descriptor on the object `handle` names, opened with `flags`; `ESTALE` if the object no
    /// longer exists (removed by anyone, even if a descriptor on it is still open somewhere).
    pub fn open(&self, handle: &Handle, flags: OFlags) -> Result<OwnedFd, Errno> {
        let mut raw = raw_handle(handle);
        let fd = unsafe {
            libc::open_by_handle_at(
                self.export.as_raw_fd(),
                raw.as_mut_ptr().cast(),
                (flags | OFlags::CLOEXEC).bits() as i32,
            )
        };
        if fd < 0 {
            return Err(last_errno());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let stat = rustix::fs::fstat(&fd).map_err(|e| e.raw_os_error())?;
        if stat.st_nlink == 0 {
            return Err(libc::ESTALE);
        }
        Ok(fd)
    }

    fn dir(&self, handle: &Handle) -> Result<OwnedFd, Errno> {
        self.open(handle, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// GETATTR.
    pub fn getattr(&self, handle: &Handle) -> Result<Attr, Errno> {
        let fd = self.open(handle, OFlags::PATH)?;
        attr_of(&fd, OsStr::new(""), AtFlags::EMPTY_PATH)
    }

    /// The attributes of an object through a descriptor already open on it.
    pub fn fgetattr(&self, fd: &OwnedFd) -> Result<Attr, Errno> {
        attr_of(fd, OsStr::new(""), AtFlags::EMPTY_PATH)
    }

    /// LOOKUP of one name in a directory.
    pub fn lookup(&self, dir: &Handle, name: &OsStr) -> Result<(Handle, Attr), Errno> {
        let dir = self.dir(dir)?;
        let attr = attr_of(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let handle = handle_at(&dir, name, 0)?;
        Ok((handle, attr))
    }

    /// READDIRPLUS: every name in a directory with its handle and attributes, and the
    /// directory's own attributes as they were when the listing began.
    pub fn readdir(&self, dir: &Handle) -> Result<(Vec<Entry>, Attr), Errno> {
        let fd = self.open(dir, OFlags::RDONLY | OFlags::DIRECTORY)?;
        // The attributes before the listing: a change made while it is read shows as a change at
        // the next revalidation (the other way round, the listing would be trusted without it).
        let attr = self.fgetattr(&fd)?;
        let mut entries = Vec::new();
        let mut buffer = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut reader = rustix::fs::RawDir::new(&fd, &mut buffer);
        while let Some(entry) = reader.next() {
            let entry = entry.map_err(|e| e.raw_os_error())?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            // Gone between the listing and the look-up: not in this listing either.
            let Ok(attr) = attr_of(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let Ok(handle) = handle_at(&fd, name, 0) else {
                continue;
            };
            entries.push(Entry {
                name: name.to_owned(),
                handle,
                attr,
            });
        }
        Ok((entries, attr))
    }

    /// CREATE (an OPEN that creates): the new file open with `flags`, its handle and attributes,
    /// and the directory's attributes before and after.
    pub fn create(
        &self,
        dir: &Handle,
        name: &OsStr,
        mode: u32,
        flags: OFlags,
    ) -> Result<(OwnedFd, Handle, Attr, Changed), Errno> {
        let dir = self.dir(dir)?;
        let before = self.fgetattr(&dir)?;
        let mut flags = flags | OFlags::CREATE | OFlags::CLOEXEC;
        if flags.contains(OFlags::RDONLY) && !flags.intersects(OFlags::WRONLY | OFlags::RDWR) {
            // Creating needs write access on the backing side; the kernel checked the caller's.
            flags |= OFlags::RDWR;
        }
        let file = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| e.raw_os_error())?;
        let attr = self.fgetattr(&file)?;
        let handle = handle_at(&dir, name, 0)?;
        let after = self.fgetattr(&dir)?;
        Ok((file, handle, attr, Changed { before, after }))
    }

    /// MKNOD of a regular file (what `mknod(2)` of `S_IFREG` asks).
    pub fn mknod(
        &self,
        dir: &Handle,
        name: &OsStr,
        mode: u32,
    ) -> Result<(Handle, Attr, Changed), Errno> {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return Err(libc::EPERM);
        }
        let flags = OFlags::WRONLY | OFlags::EXCL;
        let (_file, handle, attr, changed) = self.create(dir, name, mode, flags)?;
        Ok((handle, attr, changed))
    }

    /// MKDIR.
    pub fn mkdir(
        &self,
        dir: &Handle,
        name: &OsStr,
        mode: u32,
    ) -> Result<(Handle, Attr, Changed), Errno> {
        self.make_at(dir, name, |dir| {
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode & 0o7777))
        })
    }

    /// SYMLINK.
    pub fn symlink(
        &self,
        dir: &Handle,
        name: &OsStr,
        target: &Path,
    ) -> Result<(Handle, Attr, Changed), Errno> {
        self.make_at(dir, name, |dir| rustix::fs::symlinkat(target, dir, name))
    }

    /// A name made in a directory by `make`: its handle and attributes, and the directory's change.
    fn make_at(
        &self,
        dir: &Handle,
        name: &OsStr,
        make: impl FnOnce(&OwnedFd) -> rustix::io::Result<()>,
    ) -> Result<(Handle, Attr, Changed), Errno> {
        let dir = self.dir(dir)?;
        let before = self.fgetattr(&dir)?;
        make(&dir).map_err(|e| e.raw_os_error())?;
        let attr = attr_of(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let handle = handle_at(&dir, name, 0)?;
        let after = self.fgetattr(&dir)?;
        Ok((handle, attr, Changed { before, after }))
    }

    /// LINK: a new name for an existing object.
    pub fn link(
        &self,
        object: &Handle,
        dir: &Handle,
        name: &OsStr,
    ) -> Result<(Attr, Changed), Errno> {
        let object = self.open(object, OFlags::PATH)?;
        let dir = self.dir(dir)?;
        let before = self.fgetattr(&dir)?;
        rustix::fs::linkat(&object, "", &dir, name, AtFlags::EMPTY_PATH)
            .map_err(|e| e.raw_os_error())?;
        let attr = self.fgetattr(&object)?;
        let after = self.fgetattr(&dir)?;
        Ok((attr, Changed { before, after }))
    }

    /// REMOVE of a file or an empty directory.
    pub fn remove(&self, dir: &Handle, name: &OsStr, directory: bool) -> Result<Changed, Errno> {
        let dir = self.dir(dir)?;
        let before = self.fgetattr(&dir)?;
        let flags = if directory {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&dir, name, flags).map_err(|e| e.raw_os_error())?;
        let after = self.fgetattr(&dir)?;
        Ok(Changed { before, after })
    }

    /// RENAME, with `renameat2`'s flags.
    pub fn rename(
        &self,
        from_dir: &Handle,
        from: &OsStr,
        to_dir: &Handle,
        to: &OsStr,
        flags: u32,
    ) -> Result<(Changed, Changed), Errno> {
        let from_fd = self.dir(from_dir)?;
        let to_fd = self.dir(to_dir)?;
        let from_before = self.fgetattr(&from_fd)?;
        let to_before = self.fgetattr(&to_fd)?;
        let flags = rustix::fs::RenameFlags::from_bits_retain(flags);
        rustix::fs::renameat_with(&from_fd, from, &to_fd, to, flags)
            .map_err(|e| e.raw_os_error())?;
        let from_after = self.fgetattr(&from_fd)?;
        let to_after = self.fgetattr(&to_fd)?;
        Ok((
            Changed {
                before: from_before,
                after: from_after,
            },
            Changed {
                before: to_before,
                after: to_after,
            },
        ))
    }

    /// READLINK.
    pub fn readlink(&self, handle: &Handle) -> Result<Vec<u8>, Errno> {
        let fd = self.open(handle, OFlags::PATH)?;
        rustix::fs::readlinkat(&fd, "", Vec::new())
            .map(|target| target.into_bytes())
            .map_err(|e| e.raw_os_error())
    }

    /// SETATTR: mode, size and times, on an open descriptor if the caller has one.
    pub fn setattr(
        &self,
        handle: &Handle,
        open: Option<&OwnedFd>,
        mode: Option<u32>,
        size: Option<u64>,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> Result<Attr, Errno> {
        let path = self.open(handle, OFlags::PATH)?;
        let proc_path = CString::new(format!("/proc/self/fd/{}", path.as_raw_fd()))
            .map_err(|_| libc::EINVAL)?;
        if let Some(mode) = mode {
            rustix::fs::chmod(proc_path.as_c_str(), Mode::from_raw_mode(mode & 0o7777))
                .map_err(|e| e.raw_os_error())?;
        }
        if let Some(size) = size {
            match open {
                Some(fd) => rustix::fs::ftruncate(fd, size),
                None => rustix::fs::open(proc_path.as_c_str(), OFlags::WRONLY, Mode::empty())
                    .and_then(|fd| rustix::fs::ftruncate(&fd, size)),
            }
            .map_err(|e| e.raw_os_error())?;
        }
        if atime.is_some() || mtime.is_some() {
            let spec = |time: Option<SetTime>| match time {
                None => Timespec {
                    tv_sec: 0,
                    tv_nsec: UTIME_OMIT,
                },
                Some(SetTime::ServerNow) => Timespec {
                    tv_sec: 0,
                    tv_nsec: UTIME_NOW,
                },
                Some(SetTime::At(at)) => {
                    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
                    Timespec {
                        tv_sec: since.as_secs() as i64,
                        tv_nsec: i64::from(since.subsec_nanos()),
                    }
                }
            };
            let times = Timestamps {
                last_access: spec(atime),
                last_modification: spec(mtime),
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                proc_path.as_c_str(),
                &times,
                AtFlags::empty(),
            )
            .map_err(|e| e.raw_os_error())?;
        }
        self.fgetattr(&path)
    }

    /// STATFS of the export.
    pub fn statfs(&self) -> Result<rustix::fs::StatVfs, Errno> {
        rustix::fs::fstatvfs(&self.export).map_err(|e| e.raw_os_error())
    }
}

/// A directory's attributes before and after a change the client made to it, as NFSv4's
/// `change_info4` tells the client whether anyone else changed it meanwhile.
#[derive(Clone, Copy, Debug)]
pub struct Changed {
    pub before: Attr,
    pub after: Attr,
}

fn last_errno() -> Errno {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The file handle of `name` in `dir` (or of `dir` itself with `AT_EMPTY_PATH`).
fn handle_at(dir: &impl AsFd, name: &OsStr, flags: i32) -> Result<Handle, Errno> {
    let name = CString::new(name.as_bytes()).map_err(|_| libc::EINVAL)?;
    let header = std::mem::size_of::<libc::file_handle>();
    // u32-aligned storage for the header and the opaque bytes.
    let mut storage = vec![0u32; (header + MAX_HANDLE_BYTES).div_ceil(4)];
    let raw = storage.as_mut_ptr().cast::<libc::file_handle>();
    let mut mount_id = 0;
    let rc = unsafe {
        (*raw).handle_bytes = MAX_HANDLE_BYTES as u32;
        libc::name_to_handle_at(
            dir.as_fd().as_raw_fd(),
            name.as_ptr(),
            raw,
            &mut mount_id,
            flags,
        )
    };
    if rc != 0 {
        return Err(last_errno());
    }
    let (bytes, kind) = unsafe { ((*raw).handle_bytes as usize, (*raw).handle_type) };
    let opaque = unsafe {
        std::slice::from_raw_parts(
            storage.as_ptr().cast::<u8>().add(header),
            bytes.min(MAX_HANDLE_BYTES),
        )
    };
    let mut handle = Vec::with_capacity(4 + opaque.len());
    handle.extend_from_slice(&kind.to_ne_bytes());
    handle.extend_from_slice(opaque);
    Ok(Handle(handle.into()))
}

/// A `struct file_handle` (in u32-aligned storage) for `open_by_handle_at`.
fn raw_handle(handle: &Handle) -> Vec<u32> {
    let header = std::mem::size_of::<libc::file_handle>();
    let (kind, opaque) = handle.0.split_at(4);
    let mut storage = vec![0u32; (header + opaque.len()).div_ceil(4)];
    let raw = storage.as_mut_ptr().cast::<libc::file_handle>();
    unsafe {
        (*raw).handle_bytes = opaque.len() as u32;
        (*raw).handle_type = i32::from_ne_bytes([kind[0], kind[1], kind[2], kind[3]]);
        std::ptr::copy_nonoverlapping(
            opaque.as_ptr(),
            storage.as_mut_ptr().cast::<u8>().add(header),
            opaque.len(),
        );
    }
    storage
}

fn attr_of(dir: &impl AsFd, name: &OsStr, flags: AtFlags) -> Result<Attr, Errno> {
    let stat = rustix::fs::statx(dir, name, flags, StatxFlags::BASIC_STATS)
        .map_err(|e| e.raw_os_error())?;
    let time = |t: rustix::fs::StatxTimestamp| {
        if t.tv_sec >= 0 {
            UNIX_EPOCH + Duration::new(t.tv_sec as u64, t.tv_nsec)
        } else {
            UNIX_EPOCH
        }
    };
    Ok(Attr {
        size: stat.stx_size,
        blocks: stat.stx_blocks,
        atime: time(stat.stx_atime),
        mtime: time(stat.stx_mtime),
        ctime: time(stat.stx_ctime),
        mode: u32::from(stat.stx_mode),
        nlink: stat.stx_nlink,
        uid: stat.stx_uid,
        gid: stat.stx_gid,
        rdev: (stat.stx_rdev_major << 8) | stat.stx_rdev_minor,
        blksize: stat.stx_blksize,
        change: Change {
            ctime_ns: i128::from(stat.stx_ctime.tv_sec) * 1_000_000_000
                + i128::from(stat.stx_ctime.tv_nsec),
            size: stat.stx_size,
        },
    })
}
