//! Listing in id order from a cursor, reading only the directories that hold or bound the page.
//!
//! The walk keeps a *frontier*: an ordered list of directories not yet listed and ids already
//! found, in the page's order. Taking ids from it lists the leading directories, a round at a
//! time and several at once (each listing is a network round trip on EFS), replacing each by its
//! children in order, until enough ids lead the frontier. Directories wholly before the cursor or
//! below the delete-all cut-off are never listed. The first round *probes* the top-level
//! directory that holds the starting point (computed, not listed) and lists the messages
//! directory itself only when the page runs past it (or when the probed directory was not found:
//! listing the messages directory revalidates it, so a directory another client created since
//! this client cached "no such name" is found there), so a page costs what it returns, not what
//! is stored. Every directory is opened relative to its parent's handle, and messages relative to
//! their leaf's, so each step is one lookup, not a walk of the whole path. Every directory is
//! opened for listing with an open that revalidates it (close-to-open): a listing is never an old
//! copy of another client's directory.
//!
//! Oldest first, the walk stops at the settle horizon, [`SETTLE`] behind the reader's clock: a
//! POST still publishing has an id after it, so a client following `next` never passes a message
//! that is still to appear. A leaf handle that went stale (reclaiming removed the directory) is
//! confirmed by name before its messages are taken for gone.

use std::{
    collections::VecDeque, ffi::CStr, io, mem::MaybeUninit, os::fd::OwnedFd, path::Path, sync::Arc,
};

use rustix::fs::{Mode, OFlags, RawDir, CWD};

use super::{
    clock::{duration_millis, now_millis, SETTLE},
    cutoff,
    io::{blocking, concurrently},
    layout::{Bucket, Level},
    StoreError,
};
use crate::MessageId;

/// Which way a listing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first (the default).
    #[default]
    Asc,
    /// Newest first, as a message wall shows them.
    Desc,
}

/// At most this many directories are listed in one round.
const MAX_ROUND: usize = 32;

/// The ids a listing may return: beyond the cursor in its order, not deleted, and (oldest
/// first) settled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub order: Order,
    pub after: Option<MessageId>,
    /// Messages created before this Unix millisecond are deleted (the cut-off, or retention).
    pub cutoff: u64,
    /// Oldest first: messages created at or after this Unix millisecond may still be joined by
    /// others being published, so they are not listed yet.
    pub horizon: Option<u64>,
}

impl Range {
    fn admits(&self, id: MessageId) -> bool {
        id.unix_millis() >= self.cutoff
            && self
                .horizon
                .is_none_or(|horizon| id.unix_millis() < horizon)
            && match (self.order, self.after) {
                (_, None) => true,
                (Order::Asc, Some(after)) => id > after,
                (Order::Desc, Some(after)) => id < after,
            }
    }

    /// Whether an item of a walk can still lead to an admitted id.
    fn keeps(&self, item: &Item) -> bool {
        match item {
            Item::Found(found) => self.admits(found.id),
            Item::Dir { bucket, .. } => self.admits_bucket(*bucket),
            Item::Tops { .. } => true,
        }
    }

    /// Whether any id this directory can hold is admitted.
    fn admits_bucket(&self, bucket: Bucket) -> bool {
        bucket.last_millis() >= self.cutoff
            && self
                .horizon
                .is_none_or(|horizon| bucket.first_millis() < horizon)
            && match (self.order, self.after) {
                (_, None) => true,
                (Order::Asc, Some(after)) => bucket.last_millis() >= after.unix_millis(),
                (Order::Desc, Some(after)) => bucket.first_millis() <= after.unix_millis(),
            }
    }

    /// The top-level directory worth probing before listing them all: the one holding the
    /// cursor, else (newest first) the current one. Oldest first with no cursor starts at the
    /// cut-off's, or has nothing to probe.
    fn probe(&self) -> Option<Bucket> {
        let millis = match (self.order, self.after) {
            (_, Some(after)) => after.unix_millis(),
            (Order::Asc, None) if self.cutoff > 0 => self.cutoff,
            (Order::Asc, None) => return None,
            (Order::Desc, None) => now_millis(),
        };
        Some(Bucket::at(Level::Top, millis))
    }

    fn sort<T, K: Ord>(&self, items: &mut [T], key: impl Fn(&T) -> K) {
        match self.order {
            Order::Asc => items.sort_unstable_by_key(|item| key(item)),
            Order::Desc => items.sort_unstable_by_key(|item| std::cmp::Reverse(key(item))),
        }
    }
}

/// A message found by the walk, with a handle on its leaf directory to open it by.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub id: MessageId,
    pub leaf: Arc<OwnedFd>,
}

impl Found {
    /// Its leaf directory.
    pub(crate) fn bucket(&self) -> Bucket {
        Bucket::leaf_of(self.id)
    }
}

#[derive(Debug)]
enum Item {
    /// A directory to list, opened relative to its parent's handle.
    Dir {
        bucket: Bucket,
        parent: Arc<OwnedFd>,
    },
    /// The messages directory's other top-level directories, beyond `probed` in the page's
    /// order (all of them when nothing was probed), and `probed` itself if the probe did not find
    /// it (this listing revalidates the messages directory: another client may have created it
    /// since this client cached its absence).
    Tops {
        probed: Option<Bucket>,
        probe_missed: bool,
    },
    Found(Found),
}

impl Item {
    /// What kind of listing expanding this item is: a level's directory, or the top level (also
    /// the level whose density the listing's child count tells, for the estimates).
    fn kind(&self) -> Option<Level> {
        match self {
            Self::Dir { bucket, .. } => Some(bucket.level),
            Self::Tops { .. } | Self::Found(_) => None,
        }
    }
}

/// An ordered walk over the messages under one directory.
pub(crate) struct Walk {
    root: Arc<OwnedFd>,
    /// The messages directory's path, to read the cut-off by.
    dir: Arc<Path>,
    range: Range,
    /// Whether `range.cutoff` is still to be read: it is then read alongside the first round of
    /// listings (both are round trips) and applied to what that round found.
    cutoff_pending: bool,
    frontier: VecDeque<Item>,
    /// Directories listed and children seen, per level: estimates how many to list at once.
    seen: [(u64, u64); 3],
}

impl Walk {
    /// Starts a walk over `dir` in `order` after `after`, skipping messages created before
    /// `retained_from` (the retention period's start) as if they were below the cut-off.
    /// Blocking: opens the messages directory (a missing mount fails here). Oldest first with no
    /// cursor starts at the cut-off, so that one is read first; otherwise the cut-off is read
    /// during the first round.
    pub(crate) fn start(
        dir: Arc<Path>,
        order: Order,
        after: Option<MessageId>,
        retained_from: u64,
    ) -> io::Result<Self> {
        let root = Arc::new(open_dir(CWD, &*dir, true)?);
        let cutoff_pending = !(order == Order::Asc && after.is_none());
        let cutoff = if cutoff_pending {
            retained_from
        } else {
            cutoff::read(&dir, false)?.max(retained_from)
        };
        let horizon =
            (order == Order::Asc).then(|| now_millis().saturating_sub(duration_millis(SETTLE)));
        let range = Range {
            order,
            after,
            cutoff,
            horizon,
        };
        let mut frontier = VecDeque::new();
        let probed = range.probe();
        if let Some(bucket) = probed {
            if range.admits_bucket(bucket) {
                frontier.push_back(Item::Dir {
                    bucket,
                    parent: Arc::clone(&root),
                });
            }
        }
        frontier.push_back(Item::Tops {
            probed,
            probe_missed: false,
        });
        Ok(Self {
            root,
            dir,
            range,
            cutoff_pending,
            frontier,
            seen: [(0, 0); 3],
        })
    }

    /// The messages directory's path.
    pub(crate) fn dir(&self) -> &Arc<Path> {
        &self.dir
    }

    /// Takes up to `n` ids off the front, in order, listing directories as needed. It lists
    /// far enough to know of one more id, so that whether another page follows is known without
    /// another round.
    pub(crate) async fn take(&mut self, n: usize) -> Result<Vec<Found>, StoreError> {
        self.fill(n + 1).await?;
        let mut found = Vec::with_capacity(n);
        while found.len() < n && matches!(self.frontier.front(), Some(Item::Found(_))) {
            if let Some(Item::Found(item)) = self.frontier.pop_front() {
                found.push(item);
            }
        }
        Ok(found)
    }

    /// Puts back, at the front and in order, messages taken but not read: the next `take`
    /// returns them first.
    pub(crate) fn put_back(&mut self, unread: Vec<Found>) {
        for found in unread.into_iter().rev() {
            self.frontier.push_front(Item::Found(found));
        }
    }

    /// Whether any id remains.
    pub(crate) async fn has_more(&mut self) -> Result<bool, StoreError> {
        self.fill(1).await?;
        Ok(matches!(self.frontier.front(), Some(Item::Found(_))))
    }

    /// Lists directories until `n` ids lead the frontier or nothing is left to list.
    async fn fill(&mut self, n: usize) -> Result<(), StoreError> {
        loop {
            let leading = self
                .frontier
                .iter()
                .take_while(|item| matches!(item, Item::Found(_)))
                .count();
            if leading >= n || leading == self.frontier.len() {
                return Ok(());
            }
            // List at once the leading directories that the estimate says the page needs, all
            // of one level: a directory further on at another level is listed only once the
            // nearer ones proved too few (a deeper one may well fill the page by itself).
            let mut expected = leading as f64;
            let mut chosen = Vec::new();
            let level = self.frontier.get(leading).map(Item::kind);
            for (position, item) in self.frontier.iter().enumerate().skip(leading) {
                if expected >= n as f64 || chosen.len() == MAX_ROUND {
                    break;
                }
                match item {
                    Item::Found(_) => expected += 1.0,
                    _ if Some(item.kind()) == level => {
                        expected += self.estimate(item);
                        chosen.push(position);
                    }
                    _ => break,
                }
            }
            let mut slots: Vec<Option<Item>> = self.frontier.drain(..).map(Some).collect();
            let jobs: Vec<(Item, Walked)> = chosen
                .iter()
                .filter_map(|&position| slots[position].take())
                .map(|item| {
                    let walked = Walked {
                        root: Arc::clone(&self.root),
                        dir: Arc::clone(&self.dir),
                        range: self.range,
                    };
                    (item, walked)
                })
                .collect();
            let levels: Vec<Option<Level>> = jobs.iter().map(|job| job.0.kind()).collect();
            let probes: Vec<bool> = jobs
                .iter()
                .map(|(item, _)| matches!(item, Item::Dir { bucket, .. } if bucket.level == Level::Top))
                .collect();
            let listing = concurrently(jobs, |(item, walked)| expand(item, &walked));
            let (expansions, cutoff_read) = if self.cutoff_pending {
                let dir = Arc::clone(&self.dir);
                let (expansions, cutoff) =
                    tokio::try_join!(listing, blocking(move || cutoff::read(&dir, false)))?;
                self.cutoff_pending = false;
                self.range.cutoff = self.range.cutoff.max(cutoff);
                (expansions, true)
            } else {
                (listing.await?, false)
            };
            let mut probe_missed = false;
            let expansions: Vec<Vec<Item>> = levels
                .iter()
                .zip(probes)
                .zip(expansions)
                .map(|((level, probe), expansion)| {
                    if let Some(level) = level {
                        let (dirs, children) = &mut self.seen[*level as usize];
                        *dirs += 1;
                        *children += expansion.count as u64;
                    }
                    probe_missed |= probe && expansion.absent;
                    expansion.items
                })
                .collect();
            let mut expansions = chosen.into_iter().zip(expansions).peekable();
            for (position, slot) in slots.into_iter().enumerate() {
                match slot {
                    Some(item) => self.frontier.push_back(item),
                    None => {
                        if let Some((_, expansion)) =
                            expansions.next_if(|(chosen, _)| *chosen == position)
                        {
                            self.frontier.extend(expansion);
                        }
                    }
                }
            }
            if probe_missed {
                // The listing of the messages directory looks for the probed one again.
                for item in &mut self.frontier {
                    if let Item::Tops { probe_missed, .. } = item {
                        *probe_missed = true;
                    }
                }
            }
            if cutoff_read {
                // What was listed before the cut-off was known may be below it.
                let range = self.range;
                self.frontier.retain(|item| range.keeps(item));
            }
        }
    }

    /// Expected ids under an item, from what earlier listings saw. Before any listing of a
    /// level, a guess: 16 per directory, so a first round of leaves lists seven for a page of 100
    /// (a busy store's leaves hold tens of messages; a sparse store's first round finds out, and
    /// the next rounds list up to [`MAX_ROUND`] at once).
    fn estimate(&self, item: &Item) -> f64 {
        let per = |level: Level| {
            let (dirs, children) = self.seen[level as usize];
            if dirs == 0 {
                16.0
            } else {
                (children as f64 / dirs as f64).max(1.0)
            }
        };
        match item {
            Item::Found(_) => 1.0,
            Item::Dir { bucket, .. } => match bucket.level {
                Level::Leaf => per(Level::Leaf),
                Level::Mid => per(Level::Mid) * per(Level::Leaf),
                Level::Top => per(Level::Top) * per(Level::Mid) * per(Level::Leaf),
            },
            // Listing every top-level directory is only worth it when nothing else is left.
            Item::Tops { .. } => f64::INFINITY,
        }
    }
}

/// What a listing job needs besides its item: the messages directory (its handle, and its path to
/// confirm a stale handle by name) and the range.
struct Walked {
    root: Arc<OwnedFd>,
    dir: Arc<Path>,
    range: Range,
}

/// What listing one item gave.
struct Expansion {
    /// Its children (directories or ids), filtered to the range, in order.
    items: Vec<Item>,
    /// How many children the directory had before the range filtered them: how dense directories
    /// of its level are, which estimates how much listing the rest of the page needs.
    count: usize,
    /// The directory was not there.
    absent: bool,
}

impl Expansion {
    fn absent() -> Self {
        Self {
            items: Vec::new(),
            count: 0,
            absent: true,
        }
    }
}

/// Lists one item.
fn expand(item: Item, walked: &Walked) -> io::Result<Expansion> {
    let Walked { root, dir, range } = walked;
    match item {
        Item::Found(found) => Ok(Expansion {
            items: vec![Item::Found(found)],
            count: 1,
            absent: false,
        }),
        Item::Tops {
            probed,
            probe_missed,
        } => {
            // Opening "." revalidates the messages directory (close-to-open), so the names cached
            // under it are checked with the server, and the listing is fresh.
            let listing = open_dir(&**root, ".", false)?;
            let all: Vec<Bucket> = names(&listing)?
                .iter()
                .filter_map(|name| Bucket::top_named(name))
                .collect();
            let count = all.len();
            let mut tops: Vec<Bucket> = all
                .into_iter()
                .filter(|top| range.admits_bucket(*top))
                .filter(|top| match (probed, range.order) {
                    (None, _) => true,
                    (Some(p), _) if top.key == p.key => probe_missed,
                    (Some(p), Order::Asc) => top.key > p.key,
                    (Some(p), Order::Desc) => top.key < p.key,
                })
                .collect();
            range.sort(&mut tops, |top| top.key);
            let items = tops
                .into_iter()
                .map(|bucket| Item::Dir {
                    bucket,
                    parent: Arc::clone(root),
                })
                .collect();
            Ok(Expansion {
                items,
                count,
                absent: false,
            })
        }
        Item::Dir { bucket, parent } => {
            // A stale handle (the parent's, or this directory's while it is read) is confirmed
            // once by the path from the messages directory before its contents are taken for
            // gone; stale again is an error, not an empty directory.
            let list = |opened: io::Result<OwnedFd>| {
                opened.and_then(|handle| names(&handle).map(|names| (handle, names)))
            };
            let listed = match list(open_dir(&*parent, bucket.name(), false)) {
                Err(e) if is_stale(&e) => {
                    list(open_dir(CWD, dir.join(bucket.relative_path()), false))
                }
                other => other,
            };
            let (handle, names) = match listed {
                Ok(listed) => listed,
                // Not there (a probe that missed, or reclaimed meanwhile), or not a directory of
                // ours (a file or a link under its name): nothing in it.
                Err(e) if is_missing(&e) || is_link(&e) => return Ok(Expansion::absent()),
                Err(e) => return Err(e),
            };
            let handle = Arc::new(handle);
            let (items, count) = if bucket.level == Level::Leaf {
                let ours: Vec<MessageId> = names
                    .iter()
                    .filter_map(|name| MessageId::parse(name).ok())
                    // A message filed in the wrong directory was not written by us.
                    .filter(|id| bucket.holds(*id))
                    .collect();
                let count = ours.len();
                let mut ids: Vec<MessageId> =
                    ours.into_iter().filter(|id| range.admits(*id)).collect();
                range.sort(&mut ids, |id| *id);
                let items = ids
                    .into_iter()
                    .map(|id| {
                        Item::Found(Found {
                            id,
                            leaf: Arc::clone(&handle),
                        })
                    })
                    .collect();
                (items, count)
            } else {
                let ours: Vec<Bucket> = names
                    .iter()
                    .filter_map(|name| bucket.child_named(name))
                    .collect();
                let count = ours.len();
                let mut children: Vec<Bucket> = ours
                    .into_iter()
                    .filter(|child| range.admits_bucket(*child))
                    .collect();
                range.sort(&mut children, |child| child.key);
                let items = children
                    .into_iter()
                    .map(|child| Item::Dir {
                        bucket: child,
                        parent: Arc::clone(&handle),
                    })
                    .collect();
                (items, count)
            };
            Ok(Expansion {
                items,
                count,
                absent: false,
            })
        }
    }
}

/// Opens a directory for listing, which revalidates it on NFS (close-to-open), or, with
/// `path_only`, only as a handle to open names under (`O_PATH`: no round trip beyond the lookup).
pub(crate) fn open_dir<Fd: rustix::fd::AsFd, P: rustix::path::Arg>(
    parent: Fd,
    path: P,
    path_only: bool,
) -> io::Result<OwnedFd> {
    // Never through a link planted under a directory's name.
    let flags = if path_only {
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
    } else {
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
    };
    Ok(rustix::fs::openat(parent, path, flags, Mode::empty())?)
}

/// Every name in a directory opened for listing (`.` and `..` left out).
///
/// It reads with a 32 KiB buffer: on EFS every `getdents` the client cannot serve from its cache
/// is a READDIR round trip, and a small buffer (rustix's `Dir` starts at 768 bytes, a dozen
/// names) would make one per dozen names.
pub(crate) fn names(dir: &OwnedFd) -> io::Result<Vec<String>> {
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut reader = RawDir::new(dir, &mut buffer);
    let mut names = Vec::new();
    while let Some(entry) = reader.next() {
        let entry = entry?;
        let name: &CStr = entry.file_name();
        if let Ok(text) = name.to_str() {
            if text != "." && text != ".." {
                names.push(text.to_owned());
            }
        }
    }
    Ok(names)
}

/// Whether an error through a handle means its directory is gone: `ESTALE` on NFS.
pub(crate) fn is_stale(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::STALE.raw_os_error())
}

/// A link where a file or directory of ours should be (`O_NOFOLLOW` refused it).
pub(crate) fn is_link(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// A file this instance may not open (its mode, or its owner, shuts this POSIX user out).
pub(crate) fn is_denied(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
}

/// A name that is not there, or not a directory where one is expected: nothing of ours. (Not a
/// stale handle: that is confirmed by name first, see [`is_absent`].)
pub(crate) fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A directory that is not there, or not a directory, or whose handle is stale: nothing of ours
/// in it, where a wrong "gone" costs nothing (reclaiming, whose next run looks again).
pub(crate) fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    ) || error.raw_os_error() == Some(rustix::io::Errno::STALE.raw_os_error())
}
