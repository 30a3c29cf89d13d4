//! Reclaiming: removing, in bounded steps, the files a DELETE of everything condemned.
//!
//! `DELETE /messages` only raises the cut-off (cutoff.rs); the message files below it stay on
//! disk, invisible, until reclaiming unlinks them. It walks the directories whose time range
//! starts below the cut-off, oldest first, lists up to [`IO_CONCURRENCY`] leaf directories at
//! once, unlinks the condemned messages and the stale temporaries in them, and removes a
//! directory once it is empty and its whole time range is both below the cut-off and older than
//! [`STALE_TEMPORARY_AGE`] (so no writer can still be creating a file in it). It stops when its
//! budget of removals or time is spent, and the next run starts again from the oldest directory
//! left. Every step is an unlink or an rmdir of something nobody can see, so a process killed at
//! any point leaves a consistent store, and several instances may reclaim at once.
//!
//! A crashed writer's temporary is removed once the cut-off passes it (the next DELETE of
//! everything); above the cut-off it stays invisible and costs only its bytes.

use std::{
    io,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use rustix::fs::{AtFlags, CWD};

use super::{
    crash_point, cutoff, duration_millis,
    io::{blocking, concurrently, IO_CONCURRENCY},
    layout::{Bucket, Level, TEMPORARY_PREFIX},
    listing::{is_absent, names, open_dir},
    now_millis, StoreError, STALE_TEMPORARY_AGE,
};
use crate::MessageId;

/// How much one reclaiming run may do before it stops and leaves the rest for the next.
#[derive(Debug, Clone, Copy)]
pub struct ReclaimBudget {
    /// Unlinks and rmdirs at most (checked between rounds of up to 64 directories).
    pub max_removals: usize,
    /// Stop starting new rounds after this long.
    pub max_time: Duration,
}

/// What one reclaiming run removed, and whether it got to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reclaimed {
    pub messages: usize,
    pub temporaries: usize,
    pub directories: usize,
    /// Nothing condemned was left when it stopped.
    pub finished: bool,
}

impl Reclaimed {
    /// Everything the run removed: messages, temporaries and directories.
    pub fn removed(&self) -> usize {
        self.messages + self.temporaries + self.directories
    }
}

/// What reclaiming goes by: the cut-off, and how old a directory must be to be removed.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    cutoff: u64,
    /// Directories whose range ends before this may be removed once empty.
    removable_before: u64,
}

impl Bounds {
    fn condemns(&self, bucket: Bucket) -> bool {
        bucket.first_millis() < self.cutoff
    }

    fn removable(&self, bucket: Bucket) -> bool {
        bucket.last_millis() < self.removable_before
    }
}

pub(super) async fn run(dir: Arc<Path>, budget: ReclaimBudget) -> Result<Reclaimed, StoreError> {
    let started = Instant::now();
    let mut done = Reclaimed::default();
    let root_dir = Arc::clone(&dir);
    let (bounds, tops) = blocking(move || {
        let cutoff = cutoff::read(&root_dir)?;
        let removable_before =
            cutoff.min(now_millis().saturating_sub(duration_millis(STALE_TEMPORARY_AGE)));
        let bounds = Bounds {
            cutoff,
            removable_before,
        };
        let listing = open_dir(CWD, &*root_dir, false)?;
        let mut tops: Vec<Bucket> = names(&listing)?
            .iter()
            .filter_map(|name| Bucket::top_named(name))
            .filter(|top| bounds.condemns(*top))
            .collect();
        tops.sort_unstable();
        Ok::<_, io::Error>((bounds, tops))
    })
    .await?;
    let out_of_budget = |done: &Reclaimed| {
        done.removed() >= budget.max_removals || started.elapsed() >= budget.max_time
    };
    for top in tops {
        // The mid-level directories of this top one that hold condemned messages.
        let mids = children(&dir, top, bounds).await?;
        for mid in mids {
            let leaves = children(&dir, mid, bounds).await?;
            for round in leaves.chunks(IO_CONCURRENCY) {
                if out_of_budget(&done) {
                    return Ok(done);
                }
                let jobs: Vec<(Arc<Path>, Bucket)> =
                    round.iter().map(|leaf| (Arc::clone(&dir), *leaf)).collect();
                let cleared =
                    concurrently(jobs, move |(dir, leaf)| clear_leaf(&dir, leaf, bounds)).await?;
                for leaf in cleared {
                    done.messages += leaf.messages;
                    done.temporaries += leaf.temporaries;
                    done.directories += leaf.directories;
                }
            }
            done.directories += remove_if_empty(&dir, mid, bounds).await?;
        }
        done.directories += remove_if_empty(&dir, top, bounds).await?;
    }
    done.finished = true;
    Ok(done)
}

/// The subdirectories of `parent` that hold condemned messages, oldest first.
async fn children(
    dir: &Arc<Path>,
    parent: Bucket,
    bounds: Bounds,
) -> Result<Vec<Bucket>, StoreError> {
    let path = dir.join(parent.relative_path());
    blocking(move || {
        let listing = match open_dir(CWD, &path, false) {
            Ok(listing) => listing,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut children: Vec<Bucket> = names(&listing)?
            .iter()
            .filter_map(|name| parent.child_named(name))
            .filter(|child| bounds.condemns(*child))
            .collect();
        children.sort_unstable();
        Ok::<_, io::Error>(children)
    })
    .await
}

/// Removes `bucket`'s directory if it may go and is empty; how many directories that removed.
async fn remove_if_empty(
    dir: &Arc<Path>,
    bucket: Bucket,
    bounds: Bounds,
) -> Result<usize, StoreError> {
    if !bounds.removable(bucket) {
        return Ok(0);
    }
    let path = dir.join(bucket.relative_path());
    blocking(move || remove_dir(&path)).await
}

fn remove_dir(path: &Path) -> io::Result<usize> {
    crash_point("reclaim.emptied");
    match rustix::fs::unlinkat(CWD, path, AtFlags::REMOVEDIR) {
        Ok(()) => {
            crash_point("reclaim.removed_dir");
            Ok(1)
        }
        // Not empty (a live message, or one a concurrent reclaim has not reached) or gone.
        Err(rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST | rustix::io::Errno::NOENT) => {
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

/// Unlinks the condemned messages and stale temporaries of one leaf directory, then the
/// directory itself if it emptied and may go.
fn clear_leaf(dir: &Path, leaf: Bucket, bounds: Bounds) -> io::Result<Reclaimed> {
    let mut done = Reclaimed::default();
    let path = dir.join(leaf.relative_path());
    let listing = match open_dir(CWD, &path, false) {
        Ok(listing) => listing,
        Err(e) if is_absent(&e) => return Ok(done),
        Err(e) => return Err(e),
    };
    let names = names(&listing)?;
    let handle = &listing;
    let stale_before = SystemTime::now() - STALE_TEMPORARY_AGE;
    for name in names {
        let condemned = match MessageId::parse(&name) {
            Ok(id) => id.unix_millis() < bounds.cutoff,
            Err(_) if name.starts_with(TEMPORARY_PREFIX) => {
                let stat =
                    match rustix::fs::statat(handle, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(stat) => stat,
                        Err(rustix::io::Errno::NOENT) => continue,
                        Err(e) => return Err(e.into()),
                    };
                let modified = SystemTime::UNIX_EPOCH
                    + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0));
                modified < stale_before
            }
            Err(_) => false,
        };
        if !condemned {
            continue;
        }
        match rustix::fs::unlinkat(handle, name.as_str(), AtFlags::empty()) {
            Ok(()) if name.starts_with(TEMPORARY_PREFIX) => done.temporaries += 1,
            Ok(()) => done.messages += 1,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        crash_point("reclaim.unlinked");
    }
    drop(listing);
    if bounds.removable(leaf) {
        done.directories += remove_dir(&path)?;
    }
    debug_assert_eq!(leaf.level, Level::Leaf);
    Ok(done)
}
