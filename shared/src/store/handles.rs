//! Handles on the directories an instance used last, kept open between requests.
//!
//! On EFS every component of a path the client has not cached is a lookup round trip, so
//! `top/mid/leaf/id` can cost four lookups before the file is even opened (and on a fresh
//! instance, or the benchmark's latency file system, which caches no names, it does). Most
//! requests of one instance touch the same few minutes of messages (new posts, the newest pages,
//! reads of what was just listed), so an instance keeps `O_PATH` handles on the mid-level
//! directories (65 s each) it used last and opens `leaf/id` relative to one: two lookups instead
//! of four. A mid-level directory it has no handle for is opened relative to a kept handle on its
//! top-level directory (4.66 hours each), so even a read far from the others costs three.
//!
//! A handle stays valid while its directory exists. Reclaiming removes a directory only when its
//! whole time range is below the delete-all cut-off and older than 15 minutes, so a handle on a
//! removed directory can only be asked about messages that are deleted anyway; a lookup through
//! it fails (`ENOENT` locally, `ESTALE` on NFS), which is the right answer, and the handle is
//! dropped.

use std::{
    collections::VecDeque,
    io,
    os::fd::OwnedFd,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use super::{
    layout::{Bucket, Level},
    listing::{is_stale, open_dir},
};
use rustix::fs::CWD;

/// How many handles of each level an instance keeps: 64 mid-level directories are 70 minutes of
/// messages, 16 top-level ones three days; with the handles of a page being read, well inside
/// Lambda's 1,024 open files.
const KEPT_MIDS: usize = 64;
const KEPT_TOPS: usize = 16;

/// The most recently used directory handles of one level, most recent first.
#[derive(Debug, Default)]
struct Recent(Mutex<VecDeque<(u64, Arc<OwnedFd>)>>);

impl Recent {
    fn find(&self, key: u64) -> Option<Arc<OwnedFd>> {
        let mut recent = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let position = recent.iter().position(|(k, _)| *k == key)?;
        let entry = recent.remove(position)?;
        let handle = Arc::clone(&entry.1);
        recent.push_front(entry);
        Some(handle)
    }

    fn keep(&self, key: u64, handle: &Arc<OwnedFd>, at_most: usize) {
        let mut recent = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|(k, _)| *k != key);
        recent.push_front((key, Arc::clone(handle)));
        recent.truncate(at_most);
    }

    fn forget(&self, key: u64) {
        let mut recent = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|(k, _)| *k != key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The handles an instance keeps on mid-level directories, and on the top-level ones they are
/// opened from.
#[derive(Debug, Default)]
pub(crate) struct MidHandles {
    mids: Recent,
    tops: Recent,
}

impl MidHandles {
    /// A handle on the mid-level directory `mid` under `dir`, opened (relative to its top-level
    /// directory) if this instance has none. `NotFound` when the directory does not exist.
    pub(crate) fn get(&self, dir: &Path, mid: Bucket) -> io::Result<Arc<OwnedFd>> {
        debug_assert_eq!(mid.level, Level::Mid);
        if let Some(handle) = self.mids.find(mid.key) {
            return Ok(handle);
        }
        let top = Bucket::at(Level::Top, mid.first_millis());
        let handle = match self.tops.find(top.key) {
            Some(top_handle) => match open_dir(&*top_handle, mid.name(), true) {
                Ok(handle) => handle,
                // Not there, or the kept top-level directory is gone: ask again by path.
                Err(e) if is_stale(&e) || e.kind() == io::ErrorKind::NotFound => {
                    self.tops.forget(top.key);
                    self.open_by_path(dir, top, mid)?
                }
                Err(e) => return Err(e),
            },
            None => self.open_by_path(dir, top, mid)?,
        };
        let handle = Arc::new(handle);
        self.mids.keep(mid.key, &handle, KEPT_MIDS);
        Ok(handle)
    }

    /// Opens `top` by its path (keeping the handle), then `mid` relative to it.
    fn open_by_path(&self, dir: &Path, top: Bucket, mid: Bucket) -> io::Result<OwnedFd> {
        let top_handle = Arc::new(open_dir(CWD, dir.join(top.relative_path()), true)?);
        self.tops.keep(top.key, &top_handle, KEPT_TOPS);
        open_dir(&*top_handle, mid.name(), true)
    }

    /// Drops the handles on `mid` and its top-level directory: one of them is gone.
    pub(crate) fn forget(&self, mid: Bucket) {
        self.mids.forget(mid.key);
        self.tops
            .forget(Bucket::at(Level::Top, mid.first_millis()).key);
    }

    #[cfg(test)]
    fn find(&self, key: u64) -> Option<Arc<OwnedFd>> {
        self.mids.find(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_handles_and_reopens_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let handles = MidHandles::default();
        let mids: Vec<Bucket> = (0..(KEPT_MIDS as u64 + 4))
            .map(|i| Bucket::at(Level::Mid, (0x0193_b200 + i) << 16))
            .collect();
        for mid in &mids {
            std::fs::create_dir_all(dir.path().join(mid.relative_path())).unwrap();
        }
        let first = handles.get(dir.path(), mids[0]).unwrap();
        assert!(
            Arc::ptr_eq(&first, &handles.get(dir.path(), mids[0]).unwrap()),
            "kept"
        );
        for mid in &mids[1..] {
            handles.get(dir.path(), *mid).unwrap();
        }
        assert_eq!(handles.mids.len(), KEPT_MIDS);
        assert_eq!(
            handles.tops.len(),
            1,
            "all of them in one top-level directory"
        );
        let again = handles.get(dir.path(), mids[0]).unwrap();
        assert!(
            !Arc::ptr_eq(&first, &again),
            "the oldest was dropped and is opened anew"
        );
        handles.forget(mids[0]);
        assert!(handles.find(mids[0].key).is_none());
        let missing = Bucket::at(Level::Mid, 0x0200_0000 << 16);
        let error = handles.get(dir.path(), missing).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
