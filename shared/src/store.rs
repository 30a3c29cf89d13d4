//! The message store: one immutable file per message, spread over 64 shard directories on the
//! shared file system:
//!
//! ```text
//! MESSAGES_DIR/
//!   00/ 01/ … 3f/        shard = the id's last random byte mod 64
//!     <id>               a published message (format.rs)
//!     .tmp-<id>          a message being written, or a crashed writer's leftover
//! ```
//!
//! Why shards: the Linux VFS locks a directory for every create, rename and unlink in it, on the
//! NFS client that mounts EFS too, so operations on many files in *one* directory run one after
//! another whatever the parallelism above them. Spread over 64 directories, deleting 10,000
//! messages overlaps 64 round trips at a time, and listing reads 64 small directories in
//! parallel instead of one large one page of entries after another (BENCHMARKS.md).
//!
//! Every function instance, in any number of processes, works on the same directories without
//! locks. That is safe because of three rules:
//!
//! * **Unique names.** A message file is named by its [`MessageId`], which no other writer can
//!   produce, so writers never contend for a name.
//! * **Atomic publication.** A message is written to a temporary file in the same directory,
//!   flushed to stable storage and then renamed to its id. A rename within one file system is
//!   atomic (on EFS too: NFSv4 RENAME is one server-side operation), so a reader sees either no
//!   message or all of it. A writer that dies mid-write leaves only a temporary, which listings
//!   ignore and [`MessageStore::sweep_stale_temporaries`] removes later.
//! * **Immutability.** A published file is never written again, only removed.
//!
//! On EFS every open, read, readdir and unlink is a network round trip, so operations on many
//! files (a page of messages, deleting everything) run up to [`IO_CONCURRENCY`] of them at once
//! on the blocking thread pool instead of one after another. Shard directories are created by
//! the first message that needs one; the messages directory itself must exist (the access point
//! creates it), else every operation reports the storage unavailable.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use futures_util::{stream, StreamExt, TryStreamExt};

use crate::{format, MessageId};

/// How many file operations one request keeps in flight. EFS serves many parallel requests per
/// client; 64 hides its per-operation latency without flooding a small Lambda instance with
/// threads.
pub const IO_CONCURRENCY: usize = 64;

/// How old a temporary file must be before it is taken for a crashed writer's leftover. A Lambda
/// invocation lasts at most 15 minutes, so no live writer can own a temporary this old.
pub const STALE_TEMPORARY_AGE: Duration = Duration::from_secs(15 * 60);

/// Temporary files start with a dot, so they never parse as a [`MessageId`].
const TEMPORARY_PREFIX: &str = ".tmp-";

/// How many shard directories messages are spread over.
const SHARDS: u8 = 64;

/// Shard directories are readable by the access point's group, like the access point's root.
const SHARD_DIR_MODE: u32 = 0o750;

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
    Unavailable(#[source] io::Error),
    /// The file system has no room (or quota) left for the message.
    #[error("storage full: {0}")]
    Full(#[source] io::Error),
    /// A file named like a message does not hold one.
    #[error("message {0} is not in the message file format")]
    Corrupt(MessageId),
}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::FileTooLarge => Self::Full(error),
            _ => Self::Unavailable(error),
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// One page of a listing, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<Message>,
    /// The cursor for the next page (the last id of this one), or `None` on the last page.
    pub next: Option<MessageId>,
}

/// What listing the shards found: the published messages in id order, and the temporaries.
struct Scan {
    ids: Vec<MessageId>,
    temporaries: Vec<PathBuf>,
}

/// The messages directory, shared by every instance of every function.
#[derive(Debug, Clone)]
pub struct MessageStore {
    dir: Arc<Path>,
}

impl MessageStore {
    /// A store over `dir`. Nothing is touched until the first operation: a missing or unmounted
    /// directory is reported per request (503), not by refusing to start.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Arc::from(dir.into()),
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
        let dir = Arc::clone(&self.dir);
        blocking(move || publish_file(&dir, id, &bytes)).await?;
        Ok(id)
    }

    /// Reads one message.
    pub async fn read(&self, id: MessageId) -> Result<Message, StoreError> {
        let dir = Arc::clone(&self.dir);
        match blocking(move || read_message(&dir, id)).await? {
            Some(message) => Ok(message),
            None => Err(self.not_found().await),
        }
    }

    /// Lists up to `limit` messages with ids greater than `after`, oldest first.
    ///
    /// `after` need not name a stored message: paging goes by id order, so a cursor whose
    /// message was deleted meanwhile still continues where it left off. Messages deleted between
    /// the directory listing and the read are skipped and the page is filled from later ones.
    pub async fn list(&self, after: Option<MessageId>, limit: usize) -> Result<Page, StoreError> {
        let scan = self.scan().await?;
        let start = after.map_or(0, |after| scan.ids.partition_point(|id| *id <= after));
        let mut candidates = scan.ids[start..].iter().copied();
        let mut messages = Vec::with_capacity(limit.min(scan.ids.len() - start));
        while messages.len() < limit {
            let batch: Vec<MessageId> = candidates.by_ref().take(limit - messages.len()).collect();
            if batch.is_empty() {
                break;
            }
            let dir = Arc::clone(&self.dir);
            let read = concurrently(batch, move |id| read_message(&dir, id)).await?;
            messages.extend(read.into_iter().flatten());
        }
        let next = match candidates.next() {
            Some(_) => messages.last().map(|message| message.id),
            None => None,
        };
        Ok(Page { messages, next })
    }

    /// Deletes one message.
    pub async fn delete(&self, id: MessageId) -> Result<(), StoreError> {
        let path = message_path(&self.dir, id);
        match blocking(move || fs::remove_file(path)).await {
            Ok(()) => Ok(()),
            Err(StoreError::Unavailable(e)) if e.kind() == io::ErrorKind::NotFound => {
                Err(self.not_found().await)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes every message and returns how many this call removed.
    ///
    /// Design: list the shards once, then unlink every listed message in parallel. A POST
    /// that completed before this call began has renamed its file into place before the listing
    /// is taken, so it is listed and removed. A POST running concurrently renames its file either
    /// before the listing (removed) or after it (kept): each message is wholly present or wholly
    /// gone, never partial, because files are only ever renamed in whole. Unlike swapping the
    /// directory for a new one, this never leaves a moment without a directory for writers, and
    /// it needs no lock. Because messages are spread over 64 directories, the unlinks really do
    /// overlap (one directory would serialise them). Stale temporaries found on the way are
    /// swept too.
    pub async fn delete_all(&self) -> Result<usize, StoreError> {
        let scan = self.scan().await?;
        let dir = Arc::clone(&self.dir);
        let removed = concurrently(scan.ids, move |id| {
            match fs::remove_file(message_path(&dir, id)) {
                Ok(()) => Ok(true),
                // Deleted meanwhile by another request: not ours to count.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await?;
        sweep(scan.temporaries, STALE_TEMPORARY_AGE).await?;
        Ok(removed.into_iter().filter(|removed| *removed).count())
    }

    /// Removes temporaries older than `max_age`: what writers that crashed mid-write left.
    /// Returns how many were removed.
    pub async fn sweep_stale_temporaries(&self, max_age: Duration) -> Result<usize, StoreError> {
        let scan = self.scan().await?;
        sweep(scan.temporaries, max_age).await
    }

    /// Lists every shard, in parallel: message ids in order, and temporaries. Anything else is
    /// ignored. Reading the messages directory first both finds the shards that exist and
    /// reports a missing or unmounted file system.
    async fn scan(&self) -> Result<Scan, StoreError> {
        let dir = Arc::clone(&self.dir);
        let shards = blocking(move || {
            let mut shards = Vec::new();
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                if let Some(shard) = entry.file_name().to_str().and_then(parse_shard) {
                    shards.push(shard);
                }
            }
            Ok::<_, io::Error>(shards)
        })
        .await?;
        let dir = Arc::clone(&self.dir);
        let listed = concurrently(shards, move |shard| {
            let shard_dir = shard_path(&dir, shard);
            let mut ids = Vec::new();
            let mut temporaries = Vec::new();
            let entries = match fs::read_dir(&shard_dir) {
                Ok(entries) => entries,
                // Not a directory after all, or gone meanwhile: nothing of ours in it.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok((ids, temporaries));
                }
                Err(e) => return Err(e),
            };
            for entry in entries {
                let name = entry?.file_name();
                let Some(text) = name.to_str() else { continue };
                match MessageId::parse(text) {
                    // A message in the wrong shard was not written by us: not ours to serve.
                    Ok(id) if shard_of(id) == shard => ids.push(id),
                    Ok(_) => {}
                    Err(_) if text.starts_with(TEMPORARY_PREFIX) => {
                        temporaries.push(shard_dir.join(&name));
                    }
                    Err(_) => {}
                }
            }
            Ok::<_, io::Error>((ids, temporaries))
        })
        .await?;
        let mut scan = Scan {
            ids: Vec::new(),
            temporaries: Vec::new(),
        };
        for (ids, temporaries) in listed {
            scan.ids.extend(ids);
            scan.temporaries.extend(temporaries);
        }
        scan.ids.sort_unstable();
        Ok(scan)
    }

    /// The error for a message that is not there: `NotFound` if the directory itself is
    /// reachable, otherwise why it is not (a missing mount must not look like a missing message).
    async fn not_found(&self) -> StoreError {
        let dir = Arc::clone(&self.dir);
        match blocking(move || fs::metadata(&dir)).await {
            Ok(meta) if meta.is_dir() => StoreError::NotFound,
            Ok(_) => StoreError::Unavailable(io::Error::from(io::ErrorKind::NotADirectory)),
            Err(e) => e,
        }
    }
}

/// Removes the temporaries among `temporaries` that are older than `max_age`.
async fn sweep(temporaries: Vec<PathBuf>, max_age: Duration) -> Result<usize, StoreError> {
    let removed = concurrently(temporaries, move |path: PathBuf| {
        let modified = match fs::symlink_metadata(&path).and_then(|m| m.modified()) {
            Ok(modified) => modified,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        if age < max_age {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await?;
    Ok(removed.into_iter().filter(|removed| *removed).count())
}

/// The shard a message belongs to: its id's random last byte, mod [`SHARDS`].
fn shard_of(id: MessageId) -> u8 {
    id.random_byte() % SHARDS
}

/// A shard directory's name is its number in two lowercase hex digits: `00` to `3f`.
fn shard_path(dir: &Path, shard: u8) -> PathBuf {
    dir.join(format!("{shard:02x}"))
}

fn parse_shard(name: &str) -> Option<u8> {
    let valid = name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid
        .then(|| u8::from_str_radix(name, 16).ok())
        .flatten()
        .filter(|shard| *shard < SHARDS)
}

fn message_path(dir: &Path, id: MessageId) -> PathBuf {
    shard_path(dir, shard_of(id)).join(id.to_string())
}

/// Writes a temporary, flushes it to stable storage, then renames it to the message's name.
fn publish_file(dir: &Path, id: MessageId, bytes: &[u8]) -> io::Result<()> {
    let shard_dir = shard_path(dir, shard_of(id));
    let temporary = shard_dir.join(format!("{TEMPORARY_PREFIX}{id}"));
    let written = (|| {
        let mut file = match create_new(&temporary) {
            // The first message of its shard creates the shard (never the messages directory:
            // if that is missing, the file system is, and creating the shard fails too).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match fs::DirBuilder::new()
                    .mode(SHARD_DIR_MODE)
                    .create(&shard_dir)
                {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                create_new(&temporary)?
            }
            other => other?,
        };
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        // The rename is the moment of publication. Its own durability needs no directory fsync
        // on EFS, where NFS metadata operations are committed before the server replies.
        fs::rename(&temporary, message_path(dir, id))
    })();
    if written.is_err() {
        // Best effort: whatever is left is a temporary that listings ignore and sweeps remove.
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn create_new(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MESSAGE_FILE_MODE)
        .open(path)
}

/// Reads and decodes one message; `Ok(None)` when it does not exist (or no longer does).
fn read_message(dir: &Path, id: MessageId) -> Result<Option<Message>, StoreError> {
    let bytes = match fs::read(message_path(dir, id)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (content_type, body) = format::decode(bytes).map_err(|_| StoreError::Corrupt(id))?;
    Ok(Some(Message {
        id,
        content_type,
        body,
    }))
}

/// Runs blocking file-system work off the async worker threads.
async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    E: Into<StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(join) => Err(StoreError::Unavailable(io::Error::other(join))),
    }
}

/// Applies blocking `work` to every item with up to [`IO_CONCURRENCY`] in flight, keeping the
/// items' order in the results. Stops at the first error.
async fn concurrently<I, T, E, F>(items: Vec<I>, work: F) -> Result<Vec<T>, StoreError>
where
    I: Send + 'static,
    T: Send + 'static,
    E: Into<StoreError> + Send + 'static,
    F: Fn(I) -> Result<T, E> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    stream::iter(items)
        .map(|item| {
            let work = Arc::clone(&work);
            blocking(move || work(item))
        })
        .buffered(IO_CONCURRENCY)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_are_two_lowercase_hex_digits_below_64() {
        assert_eq!(parse_shard("00"), Some(0));
        assert_eq!(parse_shard("3f"), Some(63));
        for bad in ["40", "ff", "3F", "0", "000", "g0", "-1", " 1", ""] {
            assert_eq!(parse_shard(bad), None, "{bad:?}");
        }
        let dir = Path::new("/m");
        for _ in 0..1000 {
            let id = MessageId::generate();
            let path = message_path(dir, id);
            let shard = path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap();
            assert_eq!(parse_shard(shard), Some(shard_of(id)));
            assert_eq!(path.file_name().unwrap().to_str().unwrap(), id.to_string());
        }
    }

    #[test]
    fn ids_spread_evenly_over_the_shards() {
        let mut counts = [0usize; SHARDS as usize];
        for _ in 0..64_000 {
            counts[usize::from(shard_of(MessageId::generate()))] += 1;
        }
        // 1,000 expected per shard; a uniform byte keeps every count far inside these bounds.
        assert!(
            counts.iter().all(|&n| (700..1300).contains(&n)),
            "{counts:?}"
        );
    }
}
