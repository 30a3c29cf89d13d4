//! The message store: one immutable file per message in one directory on the shared file system.
//!
//! Every function instance, in any number of processes, works on the same directory without
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
//! on the blocking thread pool instead of one after another.

use std::{
    ffi::OsString,
    fs,
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
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

/// What a directory listing found: the published messages in id order, and the temporaries.
struct Scan {
    ids: Vec<MessageId>,
    temporaries: Vec<OsString>,
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
    /// Design: list the directory once, then unlink every listed message in parallel. A POST
    /// that completed before this call began has renamed its file into place before the listing
    /// is taken, so it is listed and removed. A POST running concurrently renames its file either
    /// before the listing (removed) or after it (kept): each message is wholly present or wholly
    /// gone, never partial, because files are only ever renamed in whole. Unlike swapping the
    /// directory for a new one, this never leaves a moment without a directory for writers, and
    /// it needs no lock. Stale temporaries found on the way are swept too.
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
        self.sweep(scan.temporaries, STALE_TEMPORARY_AGE).await?;
        Ok(removed.into_iter().filter(|removed| *removed).count())
    }

    /// Removes temporaries older than `max_age`: what writers that crashed mid-write left.
    /// Returns how many were removed.
    pub async fn sweep_stale_temporaries(&self, max_age: Duration) -> Result<usize, StoreError> {
        let scan = self.scan().await?;
        self.sweep(scan.temporaries, max_age).await
    }

    async fn sweep(
        &self,
        temporaries: Vec<OsString>,
        max_age: Duration,
    ) -> Result<usize, StoreError> {
        let dir = Arc::clone(&self.dir);
        let removed = concurrently(temporaries, move |name| {
            let path = dir.join(name);
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

    /// Lists the directory: message ids in order, and temporaries. Anything else is ignored.
    async fn scan(&self) -> Result<Scan, StoreError> {
        let dir = Arc::clone(&self.dir);
        blocking(move || {
            let mut scan = Scan {
                ids: Vec::new(),
                temporaries: Vec::new(),
            };
            for entry in fs::read_dir(&dir)? {
                let name = entry?.file_name();
                let Some(text) = name.to_str() else { continue };
                if let Ok(id) = MessageId::parse(text) {
                    scan.ids.push(id);
                } else if text.starts_with(TEMPORARY_PREFIX) {
                    scan.temporaries.push(name);
                }
            }
            scan.ids.sort_unstable();
            Ok::<_, io::Error>(scan)
        })
        .await
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

fn message_path(dir: &Path, id: MessageId) -> PathBuf {
    dir.join(id.to_string())
}

/// Writes a temporary, flushes it to stable storage, then renames it to the message's name.
fn publish_file(dir: &Path, id: MessageId, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!("{TEMPORARY_PREFIX}{id}"));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MESSAGE_FILE_MODE)
            .open(&temporary)?;
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
