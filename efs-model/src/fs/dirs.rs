//! Requests about listing a directory: open it (close-to-open), read its entries.

use std::{ffi::OsStr, hash::Hash, hash::Hasher, sync::Arc};

use fuser::{FileHandle, FileType, INodeNo, ReplyDirectory};

use super::{kind_of, lock, ModelFs, Open, Result, NAMES_PER_READDIR};
use crate::{
    latency::{Call, Rpc},
    server::{Entry, Handle},
};

/// A stable, non-zero inode number for a listing entry (a listing takes no kernel reference).
fn listing_ino(handle: &Handle) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    handle.hash(&mut hasher);
    hasher.finish() | 1 << 63
}

impl ModelFs {
    pub(super) fn open_dir(&self, call: &mut Call<'_>, ino: INodeNo) -> Result<FileHandle> {
        let handle = self.handle(ino)?;
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
    }

    /// The listing an open directory reads from `offset` on.
    pub(super) fn listing(
        &self,
        call: &mut Call<'_>,
        fh: FileHandle,
        offset: u64,
    ) -> Result<Arc<Vec<Entry>>> {
        let open = self.opened(fh)?;
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
        // A directory kept open is listed again from the cache until its attributes expire and a
        // revalidation shows a change.
        self.revalidate_if_expired(call, handle)?;
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
    }
}

/// Fills a READDIR reply from a listing, "." and ".." first.
pub(super) fn fill(ino: INodeNo, listing: &[Entry], offset: u64, reply: &mut ReplyDirectory) {
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
