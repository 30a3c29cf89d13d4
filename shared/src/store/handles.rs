//! Handles on the mid-level directories an instance used last, kept open between requests.
//!
//! On EFS every component of a path the client has not cached is a lookup round trip, so
//! `top/mid/leaf/id` can cost four lookups before the file is even opened (and on a fresh
//! instance, or the benchmark's latency file system, which caches no names, it does). Most
//! requests of one instance touch the same few minutes of messages (new posts, the newest pages,
//! reads of what was just listed), so an instance keeps `O_PATH` handles on the mid-level
//! directories it used last and opens `leaf/id` relative to one: two lookups instead of four.
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
    listing::open_dir,
};
use rustix::fs::CWD;

/// How many handles an instance keeps: 16 mid-level directories are 17 minutes of messages.
const KEPT: usize = 16;

/// The most recently used mid-level directory handles, most recent first.
#[derive(Debug, Default)]
pub(crate) struct MidHandles {
    recent: Mutex<VecDeque<(u64, Arc<OwnedFd>)>>,
}

impl MidHandles {
    /// A handle on the mid-level directory `mid` under `dir`, opened if this instance has none.
    /// `NotFound` when the directory does not exist.
    pub(crate) fn get(&self, dir: &Path, mid: Bucket) -> io::Result<Arc<OwnedFd>> {
        debug_assert_eq!(mid.level, Level::Mid);
        if let Some(handle) = self.find(mid.key) {
            return Ok(handle);
        }
        let handle = Arc::new(open_dir(CWD, dir.join(mid.relative_path()), true)?);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|(key, _)| *key != mid.key);
        recent.push_front((mid.key, Arc::clone(&handle)));
        recent.truncate(KEPT);
        Ok(handle)
    }

    /// Drops the handle on `mid`: its directory is gone (or was replaced).
    pub(crate) fn forget(&self, mid: Bucket) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|(key, _)| *key != mid.key);
    }

    fn find(&self, key: u64) -> Option<Arc<OwnedFd>> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let position = recent.iter().position(|(k, _)| *k == key)?;
        let entry = recent.remove(position)?;
        let handle = Arc::clone(&entry.1);
        recent.push_front(entry);
        Some(handle)
    }
}

/// Whether an error through a handle means its directory is gone: `ESTALE` on NFS.
pub(crate) fn is_stale(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::STALE.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_handles_and_reopens_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let handles = MidHandles::default();
        let mids: Vec<Bucket> = (0..20u64)
            .map(|i| Bucket::at(Level::Mid, (0x0193_b2c4 + i) << 16))
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
        assert_eq!(handles.recent.lock().unwrap().len(), KEPT);
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
