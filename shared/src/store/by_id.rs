//! One message by its id: reading it, deleting it, and removing the directories deleting empties.
//!
//! A read or delete opens `leaf/id` relative to the instance's kept handle on the id's mid-level
//! directory (handles.rs): two lookups, not four. A name not found there may be this client's
//! cached "no such name" (an NFS client trusts one until the directory's attributes are
//! revalidated and show a change: up to a minute), for a directory or a message created since by
//! another instance. So a miss is confirmed before it is believed: the id's directories are opened
//! again from the messages directory, one by one, each with an open that revalidates it
//! (close-to-open, not `O_PATH`), so that every name is looked up under a directory the client has
//! just checked with the server. Only a miss pays for that; a hit costs what it always did.
//!
//! Deleting a message whose directory's time range is over (no message can be written into it any
//! more, clock.rs's [`SETTLE`]) also removes the directory if that emptied it, and its parents if
//! that emptied them: messages deleted one by one leave nothing a page must walk. Directories of
//! ranges still open are left to reclaiming, which removes them once they close (reclaim.rs).

use std::{fs::File, io::Read, os::fd::OwnedFd, path::Path};

use rustix::{
    fs::{AtFlags, Mode, OFlags, CWD},
    io::Errno,
};

use super::{
    clock::{duration_millis, SETTLE},
    handles::MidHandles,
    layout::{Bucket, Level},
    listing::{is_absent, is_missing, open_dir},
    Message, StoreError,
};
use crate::{format, MessageId};

/// How a message file is opened: never through a link planted under a message's name.
pub(super) const OPEN_MESSAGE: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// Reads and decodes one message; `Ok(None)` when it does not exist.
pub(super) fn read(
    dir: &Path,
    handles: &MidHandles,
    id: MessageId,
) -> Result<Option<Message>, StoreError> {
    let name = format!("{}/{id}", Bucket::leaf_of(id).name());
    let open = |parent: &OwnedFd, name: &str| {
        rustix::fs::openat(parent, name, OPEN_MESSAGE, Mode::empty())
    };
    let by_path = || at_leaf_revalidated(dir, id, |leaf| open(leaf, &id.to_string()));
    let opened = match at_mid(dir, handles, id, |mid| open(mid, &name)) {
        Ok(Some(fd)) => Some(fd),
        Ok(None) => by_path()?,
        Err(e) => return Err(not_a_message(id, e)),
    };
    let Some(fd) = opened else {
        return Ok(None);
    };
    match read_file(File::from(fd), id) {
        // The file went stale while read (removed by a DELETE, or a stale answer): once more by
        // its path, whose answer is believed.
        Err(StoreError::Unavailable(e)) if super::listing::is_stale(&e) => match by_path()? {
            Some(fd) => read_file(File::from(fd), id),
            None => Ok(None),
        },
        other => other,
    }
}

/// Removes one message's file; `Ok(false)` when it does not exist.
pub(super) fn remove(dir: &Path, handles: &MidHandles, id: MessageId) -> Result<bool, StoreError> {
    let name = format!("{}/{id}", Bucket::leaf_of(id).name());
    let removed = match at_mid(dir, handles, id, |mid| {
        rustix::fs::unlinkat(mid, name.as_str(), AtFlags::empty())
    }) {
        Ok(Some(())) => true,
        Ok(None) => at_leaf_revalidated(dir, id, |leaf| {
            rustix::fs::unlinkat(leaf, id.to_string(), AtFlags::empty())
        })?
        .is_some(),
        Err(e) => return Err(not_a_message(id, e)),
    };
    Ok(removed)
}

/// After `id` was deleted: removes its leaf directory if its time range is over and it emptied,
/// then the mid-level and top-level ones likewise. Best effort: whatever is left, reclaiming
/// removes.
pub(super) fn remove_emptied(dir: &Path, handles: &MidHandles, id: MessageId, now: u64) {
    let over = |bucket: Bucket| bucket.last_millis().saturating_add(duration_millis(SETTLE)) < now;
    let leaf = Bucket::leaf_of(id);
    let mid = Bucket::at(Level::Mid, id.unix_millis());
    let top = Bucket::at(Level::Top, id.unix_millis());
    if !over(leaf) {
        return;
    }
    let Ok(Some(())) = at_mid(dir, handles, id, |mid_dir| {
        rustix::fs::unlinkat(mid_dir, leaf.name(), AtFlags::REMOVEDIR)
    }) else {
        return;
    };
    for bucket in [mid, top] {
        if !over(bucket)
            || rustix::fs::unlinkat(CWD, dir.join(bucket.relative_path()), AtFlags::REMOVEDIR)
                .is_err()
        {
            break;
        }
        if bucket == mid {
            handles.forget(mid);
        }
    }
}

/// Runs `call` on the mid-level directory of `id`'s time, through the kept handle; if the name
/// is not there, once more through freshly opened handles (a kept one may be on a directory that
/// was removed). `Ok(None)`: the name is not there (as far as this client's caches know).
fn at_mid<T>(
    dir: &Path,
    handles: &MidHandles,
    id: MessageId,
    call: impl Fn(&OwnedFd) -> rustix::io::Result<T>,
) -> std::io::Result<Option<T>> {
    let mid = Bucket::at(Level::Mid, id.unix_millis());
    for fresh in [false, true] {
        if fresh {
            handles.forget(mid);
        }
        let mid_dir = match handles.get(dir, mid) {
            Ok(mid_dir) => mid_dir,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match call(&mid_dir) {
            Ok(value) => return Ok(Some(value)),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::STALE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Runs `call` on the leaf directory of `id`, reached from the messages directory by opens that
/// revalidate every directory on the way, so that no cached "no such name" older than the
/// directory's last change is believed. `Ok(None)`: the name really is not there.
fn at_leaf_revalidated<T>(
    dir: &Path,
    id: MessageId,
    call: impl Fn(&OwnedFd) -> rustix::io::Result<T>,
) -> Result<Option<T>, StoreError> {
    let mut current = open_dir(CWD, dir, false)?;
    for level in [Level::Top, Level::Mid, Level::Leaf] {
        let bucket = Bucket::at(level, id.unix_millis());
        current = match open_dir(&current, bucket.name(), false) {
            Ok(fd) => fd,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
    }
    // Stale here, on handles just opened and checked, is not an answer to believe: an error.
    match call(&current) {
        Ok(value) => Ok(Some(value)),
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(e) => Err(not_a_message(id, e.into())),
    }
}

/// An error opening or removing a message's name: something that is not a message file (a link,
/// a directory) is reported as such, anything else as the file system's failure.
fn not_a_message(id: MessageId, error: std::io::Error) -> StoreError {
    match Errno::from_io_error(&error) {
        Some(Errno::LOOP | Errno::ISDIR) => StoreError::Corrupt(id),
        _ => error.into(),
    }
}

/// Reads an open message file and decodes it; `Ok(None)` if it vanished meanwhile.
pub(super) fn read_file(mut file: File, id: MessageId) -> Result<Option<Message>, StoreError> {
    // Messages are mostly small: one read fills this, the next finds the end. (Reading through
    // `Take` skips the fstat and lseek that `File::read_to_end` makes for a size hint, and bounds
    // what a foreign file can cost.)
    let mut bytes = Vec::with_capacity(4096);
    match (&mut file)
        .take(format::MAX_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
    {
        // Larger than any message: not read whole, and not a message.
        Ok(len) if len > format::MAX_FILE_LEN => Err(StoreError::Corrupt(id)),
        Ok(_) => decode(id, bytes).map(Some),
        Err(e) if is_missing(&e) => Ok(None),
        // Stale: the caller confirms by name.
        Err(e) => Err(not_a_message(id, e)),
    }
}

/// A message from its file's bytes.
pub(super) fn decode(id: MessageId, bytes: Vec<u8>) -> Result<Message, StoreError> {
    let (content_type, body) = format::decode(bytes).map_err(|_| StoreError::Corrupt(id))?;
    Ok(Message {
        id,
        content_type,
        body,
    })
}
