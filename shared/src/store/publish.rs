//! Publishing a message: written whole to a temporary, flushed, then renamed to its id, which is
//! the time the file system stamped on the temporary.
//!
//! Why the id comes from the server, and last: readers page by id, and a page oldest first must
//! never pass the id of a message still being written (its reader would never see it). So the id
//! is the server's time of the write (its mtime, read back after the flush; the local clock only
//! refines it within the server's timestamp resolution, [`id_time`]), the rename must be done
//! within [`PUBLISH_DEADLINE`] of the write (else the POST undoes it and answers `503`), and
//! oldest-first pages stop [`SETTLE`](super::clock::SETTLE) behind the reader's clock. And since every id is on the server's clock, a DELETE's cut-off,
//! also on the server's clock, puts every POST completed before it below and every POST begun
//! after it above, whatever the instances' clocks say.
//!
//! The cut-off is also read while the body is written, and decides before the rename: a POST
//! whose id would fall below it (a DELETE of everything raced it), or that could not read it, is
//! refused without publishing anything rather than answered `201` and hidden. A POST refused
//! after its rename (too slow, or the rename failed) takes its message back, and confirms it is
//! gone, before it answers: a message whose POST failed is never stored.
//! And an instance whose clock is certainly more than the bound off refuses (clock.rs): its id
//! would be right, but such an instance is broken and should be noticed.

use std::{
    fs::File,
    io::Write,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use rustix::{
    fd::OwnedFd,
    fs::{AtFlags, Mode, OFlags},
};

use super::{
    clock::{certainly_off, PUBLISH_DEADLINE, STAMP_RESOLUTION},
    crash_point, cutoff,
    handles::MidHandles,
    io::blocking,
    layout::{temporary_name, Bucket},
    open_or_create_leaf, Refusal, StoreError, MESSAGE_FILE_MODE,
};
use crate::MessageId;

/// The time a message's id carries: the server's stamp on its write, refined by the local clock
/// within the stamp's resolution. A server may stamp coarse times (Linux file systems stamp a new
/// file with a clock that ticks every few milliseconds), and messages written one after another
/// within one tick must still sort in that order; the local clock read right after the write is
/// finer, and is used where it is no earlier than the stamp and less than
/// [`STAMP_RESOLUTION`] after it. So the id is always within that resolution of the server's time
/// of the write, whatever the local clock says.
fn id_time(stamped: SystemTime, after: SystemTime) -> SystemTime {
    if after <= stamped {
        stamped
    } else {
        after.min(stamped + STAMP_RESOLUTION)
    }
}

/// Stores `bytes` (an encoded message) under a new id; see the module's documentation.
pub(super) async fn publish(
    dir: Arc<Path>,
    handles: Arc<MidHandles>,
    bytes: Vec<u8>,
) -> Result<MessageId, StoreError> {
    // The cut-off is read while the body is written, and decides before anything is published:
    // a POST must never have to take back what it could not check. Writers may create its file:
    // a store gets it before its first message.
    let (write_dir, write_handles, cutoff_dir) =
        (Arc::clone(&dir), Arc::clone(&handles), Arc::clone(&dir));
    let (written, cutoff) = tokio::join!(
        blocking(move || Written::write(&write_dir, &write_handles, &bytes)),
        blocking(move || cutoff::read(&cutoff_dir, true)),
    );
    let written = written?;
    let refusal = match cutoff {
        Ok(cutoff) if written.id.unix_millis() >= cutoff => None,
        Ok(_) => Some(StoreError::Refused(Refusal::RacedDeleteAll)),
        Err(e) => Some(e),
    };
    blocking(move || match refusal {
        None => written.publish(&dir, &handles),
        Some(refusal) => {
            written.discard();
            Err(refusal)
        }
    })
    .await
}

/// A message written and flushed to its temporary, its id known, not yet published.
struct Written {
    id: MessageId,
    /// The leaf the temporary is in, and a handle on it.
    leaf: Bucket,
    leaf_dir: OwnedFd,
    temporary: String,
    /// When the write began: the rename must be done within [`PUBLISH_DEADLINE`] of it.
    started: Instant,
}

impl Written {
    /// Temporary, flush, clock check, id.
    fn write(dir: &Path, handles: &MidHandles, bytes: &[u8]) -> Result<Self, StoreError> {
        // The temporary goes where the message will most likely go: the leaf of now.
        let provisional = MessageId::generate();
        let leaf = Bucket::leaf_of(provisional);
        let leaf_dir = open_or_create_leaf(dir, handles, leaf)?;
        let temporary = temporary_name(provisional);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::openat(
            &leaf_dir,
            temporary.as_str(),
            flags,
            Mode::from_raw_mode(MESSAGE_FILE_MODE),
        )?);
        let mut written = Self {
            id: provisional,
            leaf,
            leaf_dir,
            temporary,
            started: Instant::now(),
        };
        match written.stamp(file, bytes) {
            Ok(id) => {
                written.id = id;
                Ok(written)
            }
            Err(e) => {
                written.discard();
                Err(e)
            }
        }
    }

    /// Writes and flushes the body; the id is the server's time of that write.
    fn stamp(&self, mut file: File, bytes: &[u8]) -> Result<MessageId, StoreError> {
        let before = SystemTime::now();
        file.write_all(bytes)?;
        file.sync_all()?;
        // The server's time of the write (NFS returns the attributes the server set).
        let stamped = file.metadata()?.modified()?;
        let after = SystemTime::now();
        crash_point("publish.synced");
        if let Some((low, high)) = certainly_off(before, after, stamped) {
            lambda_http::tracing::warn!(
                offset_low_ms = low,
                offset_high_ms = high,
                "this instance's clock is too far off the file system's: not publishing"
            );
            return Err(StoreError::Refused(Refusal::ClockSkew));
        }
        Ok(MessageId::stored_at(id_time(stamped, after)))
    }

    /// Renames the temporary to the id: the moment of publication. Its own durability needs no
    /// directory fsync on EFS, where NFS metadata operations are committed before the server
    /// replies. Too late (an oldest-first reader may have passed the id) or failed (it may have
    /// happened all the same), the message is taken back before the POST answers.
    fn publish(self, dir: &Path, handles: &MidHandles) -> Result<MessageId, StoreError> {
        let target = Bucket::leaf_of(self.id);
        let renamed = (|| -> Result<(), StoreError> {
            // The write may have crossed into the next leaf's time (every 256 ms): rename into it.
            let other_leaf = if target == self.leaf {
                None
            } else {
                Some(open_or_create_leaf(dir, handles, target)?)
            };
            let target_dir = other_leaf.as_ref().unwrap_or(&self.leaf_dir);
            rustix::fs::renameat(
                &self.leaf_dir,
                self.temporary.as_str(),
                target_dir,
                self.id.to_string(),
            )?;
            Ok(())
        })();
        let failure = match renamed {
            Ok(()) if self.started.elapsed() <= PUBLISH_DEADLINE => return Ok(self.id),
            Ok(()) => StoreError::Refused(Refusal::TooSlow),
            Err(e) => e,
        };
        let id = self.id;
        self.discard();
        take_back(dir, handles, id);
        Err(failure)
    }

    /// Removes the temporary. Best effort: whatever is left is a temporary that listings ignore
    /// and reclaiming removes.
    fn discard(self) {
        let _ = rustix::fs::unlinkat(&self.leaf_dir, self.temporary.as_str(), AtFlags::empty());
    }
}

/// Removes a message its POST will not acknowledge, until the store confirms it is not there
/// (removed, or never renamed): a refused POST must leave nothing a reader could find, and a
/// client that retries would post it twice. Tries for [`TAKE_BACK_FOR`]; a file system that
/// fails every try for that long is logged, as the one case where a refused message remains.
fn take_back(dir: &Path, handles: &MidHandles, id: MessageId) {
    let deadline = Instant::now() + TAKE_BACK_FOR;
    let mut pause = Duration::from_millis(10);
    loop {
        match super::by_id::remove(dir, handles, id) {
            Ok(_) => return,
            Err(error) if Instant::now() >= deadline => {
                lambda_http::tracing::error!(
                    %id,
                    %error,
                    "a refused POST's message could not be taken back: it remains stored"
                );
                return;
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// How long a refused POST keeps trying to take its message back.
const TAKE_BACK_FOR: Duration = Duration::from_secs(2);
