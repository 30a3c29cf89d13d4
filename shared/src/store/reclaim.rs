//! Reclaiming: removing, in bounded steps, what deleting left behind.
//!
//! Two kinds of leftovers, two sweeps, one scheduled run (the delete function, every minute):
//!
//! 1. **Condemned files.** `DELETE /messages` only raises the cut-off (cutoff.rs), and retention
//!    is a cut-off of the past; the message files below them stay on disk, invisible, until this
//!    unlinks them. It walks the directories whose time range starts below the cut-off, oldest
//!    first, lists up to [`IO_CONCURRENCY`] leaf directories at once, unlinks the condemned
//!    messages and the stale temporaries among them (crashed writers' leftovers, older than
//!    [`STALE_TEMPORARY_AGE`]), and removes each directory once it is empty and closed.
//! 2. **Emptied directories.** Messages deleted one by one leave their directories behind when
//!    the DELETE came before the directory's time range was over (a message deleted right after
//!    it was posted). A page that finds few messages would otherwise list every such directory in
//!    its direction, so this sweeps the time since its last run: every directory whose range has
//!    closed ([`SETTLE`] ago: nothing can be written into it) is removed if empty. How far it got
//!    is kept in the register file `reclaimed` (register.rs), so a run only visits what closed
//!    since the last one, and runs missed are caught up, in bounded steps, from where they
//!    stopped.
//!
//! A run takes its "now" from the file system's clock (it touches `reclaimed` first), stops when
//! its budget of operations or time is spent, and every step is an unlink or an rmdir of
//! something no reader will list: killed anywhere, it leaves a consistent store, and several
//! instances may run at once. What it cannot remove (a foreign file, a directory named like a
//! message, an error) is counted as skipped and passed over, never a reason to stop for good; a
//! handle another reclaimer made stale means the thing is gone.

use std::{
    io,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use rustix::{
    fs::{AtFlags, CWD},
    io::Errno,
};

use super::{
    clock::{duration_millis, millis, SETTLE},
    crash_point, cutoff,
    io::{blocking, concurrently, IO_CONCURRENCY},
    layout::{Bucket, Level, TEMPORARY_PREFIX},
    listing::{is_absent, names, open_dir},
    register::Register,
    StoreError, STALE_TEMPORARY_AGE,
};
use crate::MessageId;

/// How far the emptied directories have been swept: every closed directory whose range ends
/// before this Unix millisecond was removed if it was empty.
const SWEPT: Register = Register::new("reclaimed", *b"EFSR", 0);

/// How much one reclaiming run may do before it stops and leaves the rest for the next.
#[derive(Debug, Clone, Copy)]
pub struct ReclaimBudget {
    /// Unlinks and rmdirs, done or tried, at most (checked between rounds of up to 64
    /// directories).
    pub max_operations: usize,
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
    /// Entries it could not remove or list (foreign files, errors), passed over.
    pub skipped: usize,
    /// Nothing condemned was left, and every directory closed by now was swept.
    pub finished: bool,
}

impl Reclaimed {
    /// Everything the run removed: messages, temporaries and directories.
    pub fn removed(&self) -> usize {
        self.messages + self.temporaries + self.directories
    }

    fn add(&mut self, other: Reclaimed) {
        self.messages += other.messages;
        self.temporaries += other.temporaries;
        self.directories += other.directories;
        self.skipped += other.skipped;
    }

    /// Counts what an rmdir did: a directory removed, or one that could not be.
    fn count(&mut self, removal: Removal) {
        match removal {
            Removal::Removed => self.directories += 1,
            Removal::Kept => {}
            Removal::Failed => self.skipped += 1,
        }
    }
}

/// What a run goes by, all in the file system's time.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Messages created before this are condemned (cut-off or retention).
    cutoff: u64,
    /// Directories whose range ends before this are closed: nothing can be written into them.
    closed_before: u64,
    /// Temporaries last written before this belong to no live writer.
    stale_before: SystemTime,
}

impl Bounds {
    fn condemns(&self, bucket: Bucket) -> bool {
        bucket.first_millis() < self.cutoff
    }

    fn closed(&self, bucket: Bucket) -> bool {
        bucket.last_millis() < self.closed_before
    }

    fn removable(&self, bucket: Bucket) -> bool {
        self.closed(bucket) && bucket.last_millis() < self.cutoff
    }
}

/// A run's budget and what it did so far.
struct Progress {
    started: Instant,
    budget: ReclaimBudget,
    operations: usize,
    done: Reclaimed,
}

impl Progress {
    fn spent(&self) -> bool {
        self.operations >= self.budget.max_operations
            || self.started.elapsed() >= self.budget.max_time
    }
}

pub(super) async fn run(
    dir: Arc<Path>,
    retention: Option<Duration>,
    budget: ReclaimBudget,
) -> Result<Reclaimed, StoreError> {
    let started = Instant::now();
    let root_dir = Arc::clone(&dir);
    let (bounds, swept, sweep, tops) = blocking(move || {
        let (sweep, server) = SWEPT.touch(&root_dir)?;
        let now = millis(server);
        let swept = SWEPT.read(&root_dir, true)?;
        let retained_from = retention.map_or(0, |r| now.saturating_sub(duration_millis(r)));
        let bounds = Bounds {
            cutoff: cutoff::read(&root_dir, true)?.max(retained_from),
            closed_before: now.saturating_sub(duration_millis(SETTLE)),
            stale_before: server - STALE_TEMPORARY_AGE,
        };
        let mut tops: Vec<Bucket> = names(&open_dir(CWD, &*root_dir, false)?)?
            .iter()
            .filter_map(|name| Bucket::top_named(name))
            .collect();
        tops.sort_unstable();
        Ok::<_, io::Error>((bounds, swept, sweep, tops))
    })
    .await?;
    let mut progress = Progress {
        started,
        budget,
        operations: 0,
        done: Reclaimed::default(),
    };
    let condemned_all = reclaim_condemned(&dir, bounds, &tops, &mut progress).await?;
    let swept_to = if condemned_all {
        sweep_emptied(&dir, bounds, &tops, swept, &mut progress).await?
    } else {
        swept
    };
    if swept_to > swept {
        let sweep_dir = Arc::clone(&dir);
        let written_at = bounds.closed_before + duration_millis(SETTLE);
        blocking(move || SWEPT.raise(&sweep_dir, &sweep, swept_to, written_at)).await?;
    }
    progress.done.finished = condemned_all && swept_to >= bounds.closed_before;
    Ok(progress.done)
}

/// Phase 1: the files and directories below the cut-off. `true` if it got to the end.
async fn reclaim_condemned(
    dir: &Arc<Path>,
    bounds: Bounds,
    tops: &[Bucket],
    progress: &mut Progress,
) -> Result<bool, StoreError> {
    for &top in tops.iter().filter(|top| bounds.condemns(**top)) {
        let mids = children(dir, top, move |mid| bounds.condemns(mid), progress).await?;
        for mid in mids {
            let leaves = children(dir, mid, move |leaf| bounds.condemns(leaf), progress).await?;
            for round in leaves.chunks(IO_CONCURRENCY) {
                if progress.spent() {
                    return Ok(false);
                }
                let jobs: Vec<(Arc<Path>, Bucket)> =
                    round.iter().map(|leaf| (Arc::clone(dir), *leaf)).collect();
                progress.operations += round.len();
                let cleared = concurrently(jobs, move |(dir, leaf)| {
                    Ok::<_, io::Error>(clear_leaf(&dir, leaf, bounds))
                })
                .await?;
                for leaf in cleared {
                    progress.operations += leaf.removed() + leaf.skipped;
                    progress.done.add(leaf);
                }
            }
            if bounds.removable(mid) {
                remove_dir(dir, mid, progress).await;
            }
        }
        if bounds.removable(top) {
            remove_dir(dir, top, progress).await;
        }
    }
    Ok(true)
}

/// Phase 2: removes the empty closed directories from `swept` on. Returns how far it got: every
/// closed directory whose range ends before that was handled.
async fn sweep_emptied(
    dir: &Arc<Path>,
    bounds: Bounds,
    tops: &[Bucket],
    swept: u64,
    progress: &mut Progress,
) -> Result<u64, StoreError> {
    // Below the cut-off is phase 1's.
    let from = swept.max(bounds.cutoff);
    let in_range = move |bucket: Bucket| {
        bucket.last_millis() >= from && bucket.first_millis() < bounds.closed_before
    };
    let mut reached = from;
    for &top in tops.iter().filter(|top| in_range(**top)) {
        let mids = children(dir, top, in_range, progress).await?;
        for mid in mids {
            if progress.spent() {
                return Ok(reached);
            }
            let leaves: Vec<Bucket> = children(
                dir,
                mid,
                move |leaf| in_range(leaf) && bounds.closed(leaf),
                progress,
            )
            .await?;
            for round in leaves.chunks(IO_CONCURRENCY) {
                let jobs: Vec<(Arc<Path>, Bucket)> =
                    round.iter().map(|leaf| (Arc::clone(dir), *leaf)).collect();
                progress.operations += round.len();
                let removed =
                    concurrently(jobs, |(dir, leaf)| Ok::<_, io::Error>(rmdir(&dir, leaf))).await?;
                for outcome in removed {
                    progress.done.count(outcome);
                }
            }
            if bounds.closed(mid) {
                remove_dir(dir, mid, progress).await;
                reached = reached.max(mid.last_millis() + 1);
            } else {
                reached = reached.max(bounds.closed_before);
            }
        }
        if bounds.closed(top) {
            remove_dir(dir, top, progress).await;
            reached = reached.max(top.last_millis() + 1);
        }
    }
    // Every top-level directory in range was handled: swept up to the closing horizon.
    Ok(reached.max(bounds.closed_before))
}

/// The subdirectories of `parent` that `keep` selects, oldest first. A directory that cannot be
/// listed (gone: nothing; failing: skipped) yields none.
async fn children(
    dir: &Arc<Path>,
    parent: Bucket,
    keep: impl Fn(Bucket) -> bool + Send + 'static,
    progress: &mut Progress,
) -> Result<Vec<Bucket>, StoreError> {
    let path = dir.join(parent.relative_path());
    let listed = blocking(move || {
        let listing = match open_dir(CWD, &path, false) {
            Ok(listing) => listing,
            Err(e) if is_absent(&e) => return Ok(Some(Vec::new())),
            Err(_) => return Ok(None),
        };
        let Ok(names) = names(&listing) else {
            return Ok(None);
        };
        let mut children: Vec<Bucket> = names
            .iter()
            .filter_map(|name| parent.child_named(name))
            .filter(|child| keep(*child))
            .collect();
        children.sort_unstable();
        Ok::<_, io::Error>(Some(children))
    })
    .await?;
    Ok(listed.unwrap_or_else(|| {
        progress.done.skipped += 1;
        Vec::new()
    }))
}

/// What an rmdir did.
enum Removal {
    Removed,
    /// Not empty, or already gone.
    Kept,
    Failed,
}

fn rmdir(dir: &Path, bucket: Bucket) -> Removal {
    crash_point("reclaim.emptied");
    match rustix::fs::unlinkat(CWD, dir.join(bucket.relative_path()), AtFlags::REMOVEDIR) {
        Ok(()) => {
            crash_point("reclaim.removed_dir");
            Removal::Removed
        }
        Err(Errno::NOTEMPTY | Errno::EXIST | Errno::NOENT | Errno::STALE) => Removal::Kept,
        Err(_) => Removal::Failed,
    }
}

/// Removes `bucket`'s directory if it is empty.
async fn remove_dir(dir: &Arc<Path>, bucket: Bucket, progress: &mut Progress) {
    let dir = Arc::clone(dir);
    progress.operations += 1;
    match blocking(move || Ok::<_, io::Error>(rmdir(&dir, bucket))).await {
        Ok(removal) => progress.done.count(removal),
        Err(_) => progress.done.skipped += 1,
    }
}

/// Unlinks the condemned messages and stale temporaries of one leaf directory, then the
/// directory itself if it emptied and may go. Nothing here fails the run: what cannot be removed
/// is counted as skipped.
fn clear_leaf(dir: &Path, leaf: Bucket, bounds: Bounds) -> Reclaimed {
    let mut done = Reclaimed::default();
    let path = dir.join(leaf.relative_path());
    let listing = match open_dir(CWD, &path, false) {
        Ok(listing) => listing,
        Err(e) if is_absent(&e) => return done,
        Err(_) => {
            done.skipped += 1;
            return done;
        }
    };
    let Ok(names) = names(&listing) else {
        done.skipped += 1;
        return done;
    };
    for name in names {
        let temporary = name.starts_with(TEMPORARY_PREFIX);
        let condemned = match MessageId::parse(&name) {
            Ok(id) => id.unix_millis() < bounds.cutoff,
            Err(_) if temporary => {
                match rustix::fs::statat(&listing, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => {
                        let modified = SystemTime::UNIX_EPOCH
                            + Duration::from_secs(u64::try_from(stat.st_mtime).unwrap_or(0));
                        modified < bounds.stale_before
                    }
                    Err(Errno::NOENT | Errno::STALE) => continue,
                    Err(_) => {
                        done.skipped += 1;
                        continue;
                    }
                }
            }
            Err(_) => false,
        };
        if !condemned {
            continue;
        }
        match rustix::fs::unlinkat(&listing, name.as_str(), AtFlags::empty()) {
            Ok(()) if temporary => done.temporaries += 1,
            Ok(()) => done.messages += 1,
            // Gone already (another reclaimer), or its directory is (a stale handle).
            Err(Errno::NOENT | Errno::STALE) => {}
            // A directory named like a message, a file we may not remove: not ours to fight.
            Err(_) => done.skipped += 1,
        }
        crash_point("reclaim.unlinked");
    }
    drop(listing);
    if bounds.removable(leaf) {
        done.count(rmdir(dir, leaf));
    }
    debug_assert_eq!(leaf.level, Level::Leaf);
    done
}
