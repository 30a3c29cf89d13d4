//! Requests about one object: attributes, open, read, write, flush to the server, locks.

use std::os::fd::{AsRawFd, OwnedFd};

use fuser::{FileHandle, INodeNo, TimeOrNow};
use rustix::fs::OFlags;

use super::{lock, ModelFs, Open, Result, MAX_CACHED_FILE, TRANSFER};
use crate::{
    latency::{Call, Rpc},
    server::{Attr, SetTime},
};

/// What SETATTR asks to change.
pub(super) struct Changes {
    pub mode: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
}

fn set_time(time: Option<TimeOrNow>) -> Option<SetTime> {
    time.map(|t| match t {
        TimeOrNow::Now => SetTime::ServerNow,
        TimeOrNow::SpecificTime(at) => SetTime::At(at),
    })
}

impl ModelFs {
    pub(super) fn getattr_of(
        &self,
        call: &mut Call<'_>,
        ino: INodeNo,
        fh: Option<FileHandle>,
    ) -> Result<Attr> {
        let handle = self.handle(ino)?;
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
    }

    pub(super) fn setattr_of(
        &self,
        call: &mut Call<'_>,
        ino: INodeNo,
        fh: Option<FileHandle>,
        changes: Changes,
    ) -> Result<Attr> {
        let handle = self.handle(ino)?;
        let open = fh.and_then(|fh| self.opened(fh).ok());
        let fd = match open.as_deref() {
            Some(Open::File { fd, .. }) => Some(fd),
            _ => None,
        };
        let attr = self.stale(
            &handle,
            call.rpc(Rpc::Setattr, || {
                self.server.setattr(
                    &handle,
                    fd,
                    changes.mode,
                    changes.size,
                    set_time(changes.atime),
                    set_time(changes.mtime),
                )
            }),
        )?;
        lock(&self.client).written_by_us(&handle, attr);
        Ok(attr)
    }

    /// Close-to-open: OPEN goes to the server, which says whether the file still exists and
    /// whether it changed.
    pub(super) fn open_file(
        &self,
        call: &mut Call<'_>,
        ino: INodeNo,
        flags: i32,
    ) -> Result<FileHandle> {
        let handle = self.handle(ino)?;
        let flags = OFlags::from_bits_retain(flags as u32)
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
    }

    pub(super) fn read_file(
        &self,
        call: &mut Call<'_>,
        fh: FileHandle,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>> {
        let open = self.opened(fh)?;
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
    }

    pub(super) fn write_file(
        &self,
        call: &mut Call<'_>,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
    ) -> Result<u32> {
        let open = self.opened(fh)?;
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
        Ok(data.len() as u32)
    }

    /// The latency stands for the remote commit; the backing file is not synced (that would add
    /// this disk's own flush time to the model).
    pub(super) fn commit(&self, call: &mut Call<'_>, fh: FileHandle) -> Result<()> {
        let open = self.opened(fh)?;
        call.rpc(Rpc::Commit, || match &*open {
            Open::File { fd, .. } => self.server.fgetattr(fd).map(drop),
            Open::Dir { .. } => Ok(()),
        })
    }

    /// Only flock(2) reaches here (FUSE_FLOCK_LOCKS without FUSE_POSIX_LOCKS): the same lock on
    /// the backing descriptor, one per open file description as flock wants, shared by every
    /// client of the backing directory.
    pub(super) fn flock(
        &self,
        call: &mut Call<'_>,
        fh: FileHandle,
        typ: i32,
        sleep: bool,
    ) -> Result<()> {
        let open = self.opened(fh)?;
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
