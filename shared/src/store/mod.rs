//! The message store: one immutable file per message, filed by time on the shared file system,
//! one cut-off that deletes everything older at once, and the rules that make it safe for any
//! number of instances on any number of NFS clients, each with its own caches and its own clock:
//!
//! ```text
//! MESSAGES_DIR/
//!   cutoff                     messages created before the time in it are deleted (cutoff.rs)
//!   reclaimed                  how far reclaiming has swept emptied directories (reclaim.rs)
//!   0193b2/c4/5e/<id>          a message, in the directory of its id's time (layout.rs)
//!   0193b2/c4/5e/.tmp-<id>     a message being written, or a crashed writer's leftover
//! ```
//!
//! Why this shape: a Lambda instance at 128 MB has 7 % of a CPU, so a request must cost what it
//! returns, not what is stored or what happened before. Ids are UUID v7, ordered by time, and the
//! directories are the leading digits of that time, so a page lists only the few small
//! directories around its cursor (listing.rs), in either order. `DELETE /messages` only raises
//! the cut-off; the files it condemns are invisible at once and removed afterwards, in bounded
//! steps (reclaim.rs), as are directories that deleting emptied.
//!
//! On EFS every Lambda execution environment is its own NFS client: it caches attributes, names
//! (found and not found) and listings for up to a minute, and its clock is its own. No lock is
//! taken anywhere, and no rule relies on another client noticing a change by itself:
//!
//! * **Unique names.** A message file is named by its [`MessageId`], which no other writer can
//!   produce, so writers never contend for a name.
//! * **Atomic publication, id last.** A message is written to a temporary file, flushed, and then
//!   given its id, the time the server stamped on it, and renamed to it (publish.rs): a reader sees
//!   no message or all of it, and the message appears within [`PUBLISH_DEADLINE`] of its id.
//! * **Immutability.** A published file is never written again, only removed.
//! * **Open, don't trust.** What must be current is opened by name, which revalidates it
//!   (close-to-open): the cut-off file on every operation, every directory a page lists. A "no
//!   such name" a client may have cached is confirmed before it is believed (by_id.rs), and a
//!   stale handle is confirmed by name before what it named is taken for gone.
//! * **The file system's clock.** Ids and cut-offs are times the server stamped on files, not any
//!   instance's clock (clock.rs, cutoff.rs). So a POST completed before a DELETE began is below its
//!   cut-off, one begun after it answered is above it, whatever the instances' clocks say, and no
//!   acknowledged POST is ever hidden by a cut-off.
//! * **Settled before listed.** An oldest-first page stops [`SETTLE`] behind the reader's clock:
//!   nothing can still be published there, so following `next` never skips a message.
//! * **Bounded pages.** A page is read in windows of up to 128 messages, at most
//!   [`IO_CONCURRENCY`] at a time and no further ahead than the caller's [`PageSink`] has room
//!   for, each window handed to the sink (which stops the page at Lambda's response limit) before
//!   the next is read: open files and memory are bounded whatever the page spans. A file that does not decode
//!   is skipped and counted, never the page's failure.
//!
//! Directories are created by the first message that needs one and removed once empty and closed
//! (their time range ended [`SETTLE`] ago, so nothing can be written into them): by the DELETE of
//! a message that empties one, or by reclaiming. The messages directory itself must exist (the
//! access point creates it), else every operation reports the storage unavailable.

mod by_id;
mod clock;
mod cutoff;
mod handles;
mod io;
mod layout;
mod listing;
mod publish;
mod reclaim;
mod register;

use std::{
    fs::{self, File},
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use rustix::fs::Mode;

use self::{
    clock::{duration_millis, now_millis},
    handles::MidHandles,
    io::{blocking, concurrently, deal},
    layout::{message_path, Bucket, Level},
    listing::{is_denied, is_link, is_missing, is_stale, open_dir, Found, Walk},
};
pub use self::{
    clock::{MAX_CLOCK_SKEW, PUBLISH_DEADLINE, SETTLE, STAMP_RESOLUTION},
    io::IO_CONCURRENCY,
    listing::Order,
    reclaim::{ReclaimBudget, Reclaimed},
};
use crate::{format, MessageId};

/// How old a temporary file must be before it is taken for a crashed writer's leftover. A Lambda
/// invocation lasts at most 15 minutes, so no live writer can own a temporary this old.
pub const STALE_TEMPORARY_AGE: Duration = Duration::from_secs(15 * 60);

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
    /// The store would not publish: it could not do so without risking the message being hidden
    /// or skipped.
    #[error("not stored: {0}")]
    Refused(Refusal),
}

/// Why a POST was refused; the client may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// This instance's clock is certainly more than [`MAX_CLOCK_SKEW`] off the file system's.
    #[error("this instance's clock is too far off the file system's")]
    ClockSkew,
    /// The rename was not done within [`PUBLISH_DEADLINE`] of the write.
    #[error("publishing took longer than the deadline")]
    TooSlow,
    /// A DELETE of everything raised the cut-off above the new id while it was being stored.
    #[error("a DELETE of everything ran at the same time")]
    RacedDeleteAll,
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

/// One page of a listing, in the order asked for (the whole page in memory: for tools and tests;
/// the functions stream pages through a [`PageSink`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<Message>,
    /// The cursor for the next page (the last id of this one), or `None` on the last page.
    pub next: Option<MessageId>,
}

/// Where a page's messages go, one at a time, in order, as they are read.
pub trait PageSink {
    /// Takes `message`, or refuses it because the page is full (then the page ends before it,
    /// and it starts the next one). The first message of a page must always be taken.
    fn offer(&mut self, message: Message) -> bool;

    /// How many more bytes of message bodies the page might take (a message costs the sink at
    /// least its body's length): the store reads no further ahead than that. Unbounded by
    /// default.
    fn room(&self) -> usize {
        usize::MAX
    }
}

impl PageSink for Vec<Message> {
    fn offer(&mut self, message: Message) -> bool {
        self.push(message);
        true
    }
}

/// How a page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Listed {
    /// The cursor for the next page, or `None` on the last page (for now: oldest first, more
    /// messages may settle later).
    pub next: Option<MessageId>,
    /// Messages the sink took.
    pub returned: usize,
    /// Files named like messages that did not decode (damaged, foreign, a newer format), skipped.
    pub skipped: usize,
}

/// What reading one message the walk found gave.
enum Read {
    Message(Message),
    /// Deleted (or reclaimed) between the listing and the read.
    Gone,
    /// A file named like a message that is not one.
    Undecodable(MessageId),
}

/// The messages directory, shared by every instance of every function.
#[derive(Debug, Clone)]
pub struct MessageStore {
    dir: Arc<Path>,
    /// Mid-level directories this instance used last, kept open (handles.rs).
    handles: Arc<MidHandles>,
    /// Messages older than this are gone, like a DELETE of everything of the past.
    retention: Option<Duration>,
}

impl MessageStore {
    /// A store over `dir`, keeping everything. Nothing is touched until the first operation: a
    /// missing or unmounted directory is reported per request (503), not by refusing to start.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::from(dir.into()),
            handles: Arc::default(),
            retention: None,
        }
    }

    /// The same store, where messages older than `retention` are gone (`None`: kept forever).
    pub fn with_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
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

    /// The first millisecond retention keeps (0 when it keeps everything), by this instance's
    /// clock.
    fn retained_from(&self) -> u64 {
        self.retention
            .map_or(0, |r| now_millis().saturating_sub(duration_millis(r)))
    }

    /// Stores a new message and returns its id once it is durable and visible to every reader.
    pub async fn publish(&self, content_type: &str, body: &[u8]) -> Result<MessageId, StoreError> {
        let bytes = format::encode(content_type, body);
        publish::publish(Arc::clone(&self.dir), Arc::clone(&self.handles), bytes).await
    }

    /// Reads one message.
    pub async fn read(&self, id: MessageId) -> Result<Message, StoreError> {
        let (dir, dir2) = (Arc::clone(&self.dir), Arc::clone(&self.dir));
        let handles = Arc::clone(&self.handles);
        // The message and the cut-off are read at once: two round trips in the time of one.
        let (message, cutoff) = tokio::try_join!(
            blocking(move || by_id::read(&dir, &handles, id)),
            blocking(move || cutoff::read(&dir2, false)),
        )?;
        match message {
            Some(message) if id.unix_millis() >= cutoff.max(self.retained_from()) => Ok(message),
            _ => Err(self.not_found().await),
        }
    }

    /// Lists up to `limit` messages after the cursor `after` in `order` (oldest first, or newest
    /// first), all of them in memory (see [`Self::list_into`] for pages of any size).
    pub async fn list(
        &self,
        order: Order,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let mut messages = Vec::new();
        let listed = self.list_into(order, after, limit, &mut messages).await?;
        Ok(Page {
            messages,
            next: listed.next,
        })
    }

    /// Lists up to `limit` messages after the cursor `after` in `order` into `sink`, reading them
    /// in windows ([`read_window`]) and handing each window to the sink before the next is read,
    /// so that open files and memory stay bounded however large the page.
    ///
    /// `after` need not name a stored message: paging goes by id order, so a cursor whose
    /// message was deleted meanwhile still continues where it left off. Messages deleted between
    /// the directory listing and the read are skipped and the page is filled from later ones.
    /// Oldest first, the page stops at the settle horizon ([`SETTLE`] behind this instance's
    /// clock): `next` is then `None`, and asking again later continues from the last id.
    pub async fn list_into(
        &self,
        order: Order,
        after: Option<MessageId>,
        limit: usize,
        sink: &mut impl PageSink,
    ) -> Result<Listed, StoreError> {
        let dir = Arc::clone(&self.dir);
        let retained_from = self.retained_from();
        let mut walk = blocking(move || Walk::start(dir, order, after, retained_from)).await?;
        let mut listed = Listed::default();
        let mut last = None;
        let mut full = false;
        while listed.returned < limit && !full {
            let window = (limit - listed.returned).min(WINDOW);
            let batch = walk.take(window).await?;
            if batch.is_empty() {
                break;
            }
            let (read, unread) = read_window(walk.dir(), batch, sink.room()).await?;
            walk.put_back(unread);
            for read in read {
                match read {
                    Read::Message(message) => {
                        let id = message.id;
                        if !sink.offer(message) {
                            full = true;
                            break;
                        }
                        listed.returned += 1;
                        last = Some(id);
                    }
                    Read::Gone => {}
                    Read::Undecodable(id) => {
                        listed.skipped += 1;
                        lambda_http::tracing::warn!(%id, "skipped a file that is not a message");
                    }
                }
            }
        }
        listed.next = match last {
            Some(last) if full => Some(last),
            Some(last) if listed.returned == limit && walk.has_more().await? => Some(last),
            _ => None,
        };
        Ok(listed)
    }

    /// Deletes one message (and the directories that emptied, once nothing can be written into
    /// them).
    pub async fn delete(&self, id: MessageId) -> Result<(), StoreError> {
        let (dir, dir2) = (Arc::clone(&self.dir), Arc::clone(&self.dir));
        let handles = Arc::clone(&self.handles);
        let (removed, cutoff) = tokio::join!(
            blocking(move || {
                let removed = by_id::remove(&dir2, &handles, id)?;
                if removed {
                    by_id::remove_emptied(&dir2, &handles, id, now_millis());
                }
                Ok::<_, StoreError>(removed)
            }),
            blocking(move || cutoff::read(&dir, true)),
        );
        let cutoff = cutoff?.max(self.retained_from());
        match removed? {
            // Below the cut-off it was deleted already, whoever unlinks the file.
            true if id.unix_millis() >= cutoff => Ok(()),
            true => Err(StoreError::NotFound),
            false => Err(self.not_found().await),
        }
    }

    /// Deletes every message, at once whatever is stored: raises the cut-off past the file
    /// system's clock, then waits out the clock-skew bound (201 ms on the monotonic clock,
    /// whatever the clocks say) so that no instance can still create a message below it. The
    /// files are removed later by [`Self::reclaim`].
    ///
    /// When it returns, no message whose POST completed before it began is listed or readable
    /// anywhere; a POST running concurrently is wholly kept or wholly gone (its id is on one side
    /// of the cut-off); a POST that begins afterwards gets an id above the cut-off and is kept.
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let dir = Arc::clone(&self.dir);
        let wait = blocking(move || cutoff::raise(&dir)).await?;
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Removes, within `budget`, what deleting left behind: the files of messages below the
    /// cut-off (or older than the retention period), crashed writers' temporaries among them, and
    /// directories that are empty and closed. Oldest first; safe to stop at any point and to run
    /// in many instances at once.
    pub async fn reclaim(&self, budget: ReclaimBudget) -> Result<Reclaimed, StoreError> {
        reclaim::run(Arc::clone(&self.dir), self.retention, budget).await
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

/// The most messages a page reads at once: two per blocking task, as many tasks as
/// [`IO_CONCURRENCY`] allows. Two per task take the same round trips as one per task would in
/// two windows, for half the task switches (CPU is what a small instance lacks); and a page of
/// up to 128 messages is read in one window.
const WINDOW: usize = 2 * IO_CONCURRENCY;

/// Reads a window of messages the walk found, in order: runs of consecutive ones, one blocking
/// task per run. A task reads its first message in any case and each next one only while the
/// window has read fewer bytes than the page has `room` for (a message takes at least its size
/// in the page), so a window holds at most one message per task beyond what the page can take.
/// Returns the reads up to the first message left unread, and the messages from there on, to
/// be read again in the next window.
async fn read_window(
    dir: &Arc<Path>,
    batch: Vec<Found>,
    room: usize,
) -> Result<(Vec<Read>, Vec<Found>), StoreError> {
    let dir = Arc::clone(dir);
    let read_bytes = Arc::new(AtomicUsize::new(0));
    let runs = deal(batch, IO_CONCURRENCY);
    let done = concurrently(runs, move |run: Vec<Found>| {
        let mut out = Vec::with_capacity(run.len());
        for found in run {
            let wanted = out.is_empty() || read_bytes.load(Ordering::Relaxed) < room;
            let read = if wanted {
                let read = read_found(&dir, &found)?;
                if let Read::Message(message) = &read {
                    read_bytes.fetch_add(message.body.len(), Ordering::Relaxed);
                }
                Some(read)
            } else {
                None
            };
            out.push((found, read));
        }
        Ok::<_, StoreError>(out)
    })
    .await?;
    let mut read = Vec::new();
    let mut unread = Vec::new();
    for (found, outcome) in done.into_iter().flatten() {
        match outcome {
            Some(outcome) if unread.is_empty() => read.push(outcome),
            _ => unread.push(found),
        }
    }
    Ok((read, unread))
}

/// Reads a message the walk found, relative to its leaf directory. If that handle (or the file)
/// went stale (reclaiming removed the directory, a DELETE the file), the message is looked up
/// once more by its path, whose answer is believed: gone, or read.
fn read_found(dir: &Path, found: &Found) -> Result<Read, StoreError> {
    let flags = by_id::OPEN_MESSAGE;
    let name = found.id.to_string();
    let by_path = || {
        let path = dir.join(found.bucket().relative_path()).join(&name);
        read_opened(rustix::fs::open(&path, flags, Mode::empty()), found.id)
    };
    match read_opened(
        rustix::fs::openat(&*found.leaf, name.as_str(), flags, Mode::empty()),
        found.id,
    ) {
        Err(StoreError::Unavailable(e)) if is_stale(&e) => by_path(),
        other => other,
    }
}

/// What an open of a message file, then reading it, gives.
fn read_opened(
    opened: rustix::io::Result<rustix::fd::OwnedFd>,
    id: MessageId,
) -> Result<Read, StoreError> {
    let file = match opened {
        Ok(fd) => File::from(fd),
        Err(e) => {
            let e = std::io::Error::from(e);
            return if is_missing(&e) {
                Ok(Read::Gone)
            } else if is_link(&e) || is_denied(&e) {
                // Not a message file, or one no instance may read (another POSIX user's): the
                // page goes on without it. (Denied on a directory is the store's failure: 503.)
                Ok(Read::Undecodable(id))
            } else {
                Err(e.into())
            };
        }
    };
    match by_id::read_file(file, id) {
        Ok(Some(message)) => Ok(Read::Message(message)),
        Ok(None) => Ok(Read::Gone),
        Err(StoreError::Corrupt(id)) => Ok(Read::Undecodable(id)),
        Err(e) => Err(e),
    }
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
