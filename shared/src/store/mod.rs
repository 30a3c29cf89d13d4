//! The message store: one immutable file per message, filed by time on the shared file system,
//! and one cut-off that deletes everything older at once:
//!
//! ```text
//! MESSAGES_DIR/
//!   cutoff                     messages created before the time in it are deleted (cutoff.rs)
//!   0193b2/c4/5e/<id>          a message, in the directory of its id's time (layout.rs)
//!   0193b2/c4/5e/.tmp-<id>     a message being written, or a crashed writer's leftover
//! ```
//!
//! Why this shape: a Lambda instance at 128 MB has 7 % of a CPU, so a request must cost what it
//! returns, not what is stored. Ids are UUID v7, ordered by time, and the directories are the
//! leading digits of that time, so a page lists only the few small directories around its
//! cursor (listing.rs), in either order. `DELETE /messages` only raises the cut-off; the files
//! it condemns are invisible at once and removed afterwards, in bounded steps (reclaim.rs).
//!
//! Every function instance, in any number of processes on any number of EFS clients, works on
//! the same directories without locks on the request path. That is safe because of four rules:
//!
//! * **Unique names.** A message file is named by its [`MessageId`], which no other writer can
//!   produce, so writers never contend for a name.
//! * **Atomic publication.** A message is written to a temporary file in its directory, flushed
//!   to stable storage and renamed to its id. A rename within one directory is atomic (on EFS
//!   too: NFSv4 RENAME is one server-side operation), so a reader sees no message or all of it.
//! * **Immutability.** A published file is never written again, only removed.
//! * **One cut-off, read on open.** Whether a message is deleted by a DELETE of everything is
//!   decided by comparing its id's time with the cut-off, which every operation reads by opening
//!   one file (close-to-open consistency revalidates a file when it is opened; nothing relies on
//!   another client noticing a directory change). A DELETE sets the cut-off a clock-skew bound
//!   ahead of its own clock and answers only once its clock is that bound past it, so a POST that
//!   completed before it began is below the cut-off and one that begins after it answered is
//!   above it, on any instance whose clock is within [`MAX_CLOCK_SKEW`].
//!
//! Directories are created by the first message that needs one and removed by reclaiming once
//! they are empty and old enough that no writer can still be putting a message in them; the
//! messages directory itself must exist (the access point creates it), else every operation
//! reports the storage unavailable.

mod cutoff;
mod handles;
mod io;
mod layout;
mod listing;
mod reclaim;

use std::{
    fs::{self, File},
    io::{Read, Write},
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rustix::fs::{AtFlags, Mode, OFlags};

use self::{
    handles::{is_stale, MidHandles},
    io::{blocking, concurrently},
    layout::{message_path, temporary_name, Bucket, Level},
    listing::{open_dir, Found, Walk},
};
pub use self::{
    io::IO_CONCURRENCY,
    listing::Order,
    reclaim::{ReclaimBudget, Reclaimed},
};
use crate::{format, MessageId};

/// How old a temporary file must be before it is taken for a crashed writer's leftover, and how
/// old a directory's time range must be before it may be removed. A Lambda invocation lasts at
/// most 15 minutes, so no live writer can own a temporary this old or still write into such a
/// directory.
pub const STALE_TEMPORARY_AGE: Duration = Duration::from_secs(15 * 60);

/// The most any two instances' clocks may disagree. Lambda keeps its clocks with the Amazon Time
/// Sync Service, far inside this; a DELETE of everything waits twice this long before answering.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_millis(100);

/// Directories are readable by the access point's group, like the access point's root.
const DIR_MODE: u32 = 0o750;

/// Message files are readable by the access point's group, writable only by its owner.
const MESSAGE_FILE_MODE: u32 = 0o640;

/// Why a store operation failed, in terms the HTTP layer can map to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No message has this id.
    #[error("message not found")]
    NotFound,
    /// The file system is missing, unmounted, read-only, denies access, or failed.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] std::io::Error),
    /// The file system has no room (or quota) left for the message.
    #[error("storage full: {0}")]
    Full(#[source] std::io::Error),
    /// A file named like a message does not hold one.
    #[error("message {0} is not in the message file format")]
    Corrupt(MessageId),
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => {
                Self::Full(error)
            }
            _ => Self::Unavailable(error),
        }
    }
}

impl From<rustix::io::Errno> for StoreError {
    fn from(errno: rustix::io::Errno) -> Self {
        std::io::Error::from(errno).into()
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// One page of a listing, in the order asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<Message>,
    /// The cursor for the next page (the last id of this one), or `None` on the last page.
    pub next: Option<MessageId>,
}

/// The messages directory, shared by every instance of every function.
#[derive(Debug, Clone)]
pub struct MessageStore {
    dir: Arc<Path>,
    /// Mid-level directories this instance used last, kept open (handles.rs).
    handles: Arc<MidHandles>,
}

impl MessageStore {
    /// A store over `dir`. Nothing is touched until the first operation: a missing or unmounted
    /// directory is reported per request (503), not by refusing to start.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::from(dir.into()),
            handles: Arc::default(),
        }
    }

    /// The directory this store works in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the message `id` lives (whether or not it exists), for tools that seed or inspect a
    /// store directly.
    pub fn message_path(&self, id: MessageId) -> PathBuf {
        message_path(&self.dir, id)
    }

    /// Stores a new message and returns its id once it is durable and visible to every reader.
    pub async fn publish(&self, content_type: &str, body: &[u8]) -> Result<MessageId, StoreError> {
        let id = MessageId::generate();
        let bytes = format::encode(content_type, body);
        let (dir, handles) = (Arc::clone(&self.dir), Arc::clone(&self.handles));
        blocking(move || publish_file(&dir, &handles, id, &bytes)).await?;
        Ok(id)
    }

    /// Reads one message.
    pub async fn read(&self, id: MessageId) -> Result<Message, StoreError> {
        let (dir, dir2) = (Arc::clone(&self.dir), Arc::clone(&self.dir));
        let handles = Arc::clone(&self.handles);
        // The message and the cut-off are read at once: two round trips in the time of one.
        let (message, cutoff) = tokio::try_join!(
            blocking(move || read_message(&dir, &handles, id)),
            blocking(move || cutoff::read(&dir2)),
        )?;
        match message {
            Some(message) if id.unix_millis() >= cutoff => Ok(message),
            _ => Err(self.not_found().await),
        }
    }

    /// Lists up to `limit` messages after the cursor `after` in `order` (oldest first, or newest
    /// first).
    ///
    /// `after` need not name a stored message: paging goes by id order, so a cursor whose
    /// message was deleted meanwhile still continues where it left off. Messages deleted between
    /// the directory listing and the read are skipped and the page is filled from later ones.
    pub async fn list(
        &self,
        order: Order,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let dir = Arc::clone(&self.dir);
        let mut walk = blocking(move || Walk::start(dir, order, after)).await?;
        let mut messages = Vec::with_capacity(limit.min(1024));
        while messages.len() < limit {
            let batch = walk.take(limit - messages.len()).await?;
            if batch.is_empty() {
                break;
            }
            let read = concurrently(batch, |found: Found| read_found(&found)).await?;
            messages.extend(read.into_iter().flatten());
        }
        let next = match messages.last() {
            Some(last) if messages.len() == limit && walk.has_more().await? => Some(last.id),
            _ => None,
        };
        Ok(Page { messages, next })
    }

    /// Deletes one message.
    pub async fn delete(&self, id: MessageId) -> Result<(), StoreError> {
        let (dir, dir2) = (Arc::clone(&self.dir), Arc::clone(&self.dir));
        let handles = Arc::clone(&self.handles);
        let (removed, cutoff) = tokio::join!(
            blocking(move || remove_message(&dir2, &handles, id)),
            blocking(move || cutoff::read(&dir)),
        );
        let cutoff = cutoff?;
        match removed {
            // Below the cut-off it was deleted already, whoever unlinks the file.
            Ok(()) if id.unix_millis() >= cutoff => Ok(()),
            Ok(()) => Err(StoreError::NotFound),
            Err(StoreError::Unavailable(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(self.not_found().await)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes every message, at once whatever is stored: raises the cut-off, then waits out
    /// the clock-skew bound so that no instance can still create a message below it. The files
    /// are removed later by [`Self::reclaim`].
    ///
    /// When it returns, no message whose POST completed before it began is listed or readable
    /// anywhere; a POST running concurrently is wholly kept or wholly gone (its id is on one side
    /// of the cut-off); a POST that begins afterwards gets an id above the cut-off and is kept.
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let skew = duration_millis(MAX_CLOCK_SKEW);
        let at_least = now_millis() + skew + 1;
        let dir = Arc::clone(&self.dir);
        let cutoff = blocking(move || cutoff::raise(&dir, at_least)).await?;
        // The cut-off in force may be another DELETE's later one: wait out that one.
        let wait = (cutoff + skew).saturating_sub(now_millis());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Ok(())
    }

    /// Removes, within `budget`, what deleting left behind: the files of messages below the
    /// cut-off, temporaries older than [`STALE_TEMPORARY_AGE`] among them, and the directories
    /// that emptied. Oldest first; safe to stop at any point and to run in many instances.
    pub async fn reclaim(&self, budget: ReclaimBudget) -> Result<Reclaimed, StoreError> {
        reclaim::run(Arc::clone(&self.dir), budget).await
    }

    /// The error for a message that is not there: `NotFound` if the directory itself is
    /// reachable, otherwise why it is not (a missing mount must not look like a missing message).
    async fn not_found(&self) -> StoreError {
        let dir = Arc::clone(&self.dir);
        match blocking(move || fs::metadata(&dir)).await {
            Ok(meta) if meta.is_dir() => StoreError::NotFound,
            Ok(_) => {
                StoreError::Unavailable(std::io::Error::from(std::io::ErrorKind::NotADirectory))
            }
            Err(e) => e,
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_millis)
}

fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Writes a temporary in the message's directory, flushes it to stable storage, then renames it
/// to the message's name. The directory is opened once (relative to its kept mid-level
/// directory) and the rest is relative to it, so no path is walked three times.
fn publish_file(
    dir: &Path,
    handles: &MidHandles,
    id: MessageId,
    bytes: &[u8],
) -> std::io::Result<()> {
    let leaf_dir = open_or_create_leaf(dir, handles, Bucket::leaf_of(id))?;
    let temporary = temporary_name(id);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let mut file = File::from(rustix::fs::openat(
        &leaf_dir,
        temporary.as_str(),
        flags,
        Mode::from_raw_mode(MESSAGE_FILE_MODE),
    )?);
    let written = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        crash_point("publish.synced");
        // The rename is the moment of publication. Its own durability needs no directory fsync
        // on EFS, where NFS metadata operations are committed before the server replies.
        rustix::fs::renameat(&leaf_dir, temporary.as_str(), &leaf_dir, id.to_string())?;
        Ok(())
    })();
    if written.is_err() {
        // Best effort: whatever is left is a temporary that listings ignore and reclaiming removes.
        let _ = rustix::fs::unlinkat(&leaf_dir, temporary.as_str(), AtFlags::empty());
    }
    written
}

/// A handle on a leaf directory, created (with its parents) if missing, opened relative to the
/// kept handle on its mid-level directory.
fn open_or_create_leaf(
    dir: &Path,
    handles: &MidHandles,
    leaf: Bucket,
) -> std::io::Result<rustix::fd::OwnedFd> {
    let mid = Bucket::at(Level::Mid, leaf.first_millis());
    for _ in 0..2 {
        let mid_dir = match handles.get(dir, mid) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                create_dirs(dir, leaf)?;
                handles.get(dir, mid)?
            }
            other => other?,
        };
        match open_dir(&*mid_dir, leaf.name(), true) {
            Ok(leaf_dir) => return Ok(leaf_dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mode = Mode::from_raw_mode(DIR_MODE);
                match rustix::fs::mkdirat(&*mid_dir, leaf.name(), mode) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {
                        return open_dir(&*mid_dir, leaf.name(), true)
                    }
                    // The kept mid-level directory is gone: again, from the path.
                    Err(rustix::io::Errno::NOENT | rustix::io::Errno::STALE) => handles.forget(mid),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) if is_stale(&e) => handles.forget(mid),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::ErrorKind::NotFound.into())
}

/// Creates the message directories down to `leaf` (never the messages directory itself: if
/// that is missing, the file system is, and this fails).
fn create_dirs(dir: &Path, leaf: Bucket) -> std::io::Result<()> {
    let mut path = dir.to_path_buf();
    for level in [Level::Top, Level::Mid, Level::Leaf] {
        path.push(Bucket::at(level, leaf.first_millis()).name());
        match fs::DirBuilder::new().mode(DIR_MODE).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads and decodes one message; `Ok(None)` when it does not exist (or no longer does).
fn read_message(
    dir: &Path,
    handles: &MidHandles,
    id: MessageId,
) -> Result<Option<Message>, StoreError> {
    let name = format!("{}/{id}", Bucket::leaf_of(id).name());
    let opened = at_mid(dir, handles, id, |mid_dir| {
        rustix::fs::openat(
            mid_dir,
            name.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    })?;
    match opened {
        Some(fd) => read_to_end(&mut File::from(fd), id),
        None => Ok(None),
    }
}

/// Unlinks one message's file, relative to its kept mid-level directory.
fn remove_message(dir: &Path, handles: &MidHandles, id: MessageId) -> std::io::Result<()> {
    let name = format!("{}/{id}", Bucket::leaf_of(id).name());
    at_mid(dir, handles, id, |mid_dir| {
        rustix::fs::unlinkat(mid_dir, name.as_str(), AtFlags::empty())
    })?
    .ok_or_else(|| std::io::ErrorKind::NotFound.into())
}

/// Runs `call` on the mid-level directory of `id`'s time, through the kept handle; if the name
/// is not there, once more through freshly opened handles (a kept one may be on a directory that
/// was removed and made again since: a restore, say). `Ok(None)`: the name is not there.
fn at_mid<T>(
    dir: &Path,
    handles: &MidHandles,
    id: MessageId,
    call: impl Fn(&rustix::fd::OwnedFd) -> rustix::io::Result<T>,
) -> std::io::Result<Option<T>> {
    let mid = Bucket::at(Level::Mid, id.unix_millis());
    for fresh in [false, true] {
        if fresh {
            handles.forget(mid);
        }
        let mid_dir = match handles.get(dir, mid) {
            Ok(mid_dir) => mid_dir,
            Err(e) if listing::is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match call(&mid_dir) {
            Ok(value) => return Ok(Some(value)),
            Err(
                rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::STALE,
            ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Reads a message the walk found, relative to its leaf directory.
fn read_found(found: &Found) -> Result<Option<Message>, StoreError> {
    let opened = rustix::fs::openat(
        &*found.leaf,
        found.id.to_string(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let mut file = match opened {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    read_to_end(&mut file, found.id)
}

/// Reads an open message file and decodes it; `Ok(None)` if it vanished meanwhile.
fn read_to_end(file: &mut File, id: MessageId) -> Result<Option<Message>, StoreError> {
    // Messages are mostly small: one read fills this, the next finds the end. (Reading through
    // `Take` skips the fstat and lseek that `File::read_to_end` makes for a size hint.)
    let mut bytes = Vec::with_capacity(4096);
    match file.take(u64::MAX).read_to_end(&mut bytes) {
        Ok(_) => decode(id, bytes).map(Some),
        Err(e) if listing::is_absent(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn decode(id: MessageId, bytes: Vec<u8>) -> Result<Message, StoreError> {
    let (content_type, body) = format::decode(bytes).map_err(|_| StoreError::Corrupt(id))?;
    Ok(Message {
        id,
        content_type,
        body,
    })
}

/// The environment variable that makes a test build abort at a named step (crash tests).
#[cfg(feature = "crash-points")]
pub const CRASH_AT: &str = "EFS_MESSAGES_CRASH_AT";

/// Whether the test asked this process to die at `step` (always false in a normal build).
pub(crate) fn crash_point_enabled(step: &str) -> bool {
    #[cfg(feature = "crash-points")]
    {
        std::env::var(CRASH_AT).is_ok_and(|at| at == step)
    }
    #[cfg(not(feature = "crash-points"))]
    {
        let _ = step;
        false
    }
}

/// Dies here, as a killed Lambda instance would, if a crash test asked for it.
pub(crate) fn crash_point(step: &str) {
    if crash_point_enabled(step) {
        std::process::abort();
    }
}
