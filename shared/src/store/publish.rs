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
//! The cut-off is also read while the body is written: a POST whose id would fall below it (a
//! DELETE of everything raced it) is undone and refused rather than answered `201` and hidden.
//! And an instance whose clock is certainly more than the bound off refuses (clock.rs): its id
//! would be right, but such an instance is broken and should be noticed.

use std::{
    fs::File,
    io::Write,
    path::Path,
    sync::Arc,
    time::{Instant, SystemTime},
};

use rustix::fs::{AtFlags, Mode, OFlags};

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
    // The cut-off is read while the body is written. Writers may create its file: a store gets
    // it before its first message.
    let (write_dir, write_handles, cutoff_dir) =
        (Arc::clone(&dir), Arc::clone(&handles), Arc::clone(&dir));
    let (id, cutoff) = tokio::join!(
        blocking(move || write(&write_dir, &write_handles, &bytes)),
        blocking(move || cutoff::read(&cutoff_dir, true)),
    );
    let id = id?;
    let refusal = match cutoff {
        Ok(cutoff) if id.unix_millis() >= cutoff => return Ok(id),
        Ok(_) => StoreError::Refused(Refusal::RacedDeleteAll),
        Err(e) => e,
    };
    // Not acknowledged, so not kept: undo the rename.
    let (undo_dir, undo_handles) = (Arc::clone(&dir), Arc::clone(&handles));
    let _ = blocking(move || super::by_id::unlink(&undo_dir, &undo_handles, id)).await;
    Err(refusal)
}

/// The blocking part: temporary, flush, clock check, id, rename, deadline.
fn write(dir: &Path, handles: &MidHandles, bytes: &[u8]) -> Result<MessageId, StoreError> {
    // The temporary goes where the message will most likely go: the leaf of now.
    let provisional = MessageId::generate();
    let leaf = Bucket::leaf_of(provisional);
    let leaf_dir = open_or_create_leaf(dir, handles, leaf)?;
    let temporary = temporary_name(provisional);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let mut file = File::from(rustix::fs::openat(
        &leaf_dir,
        temporary.as_str(),
        flags,
        Mode::from_raw_mode(MESSAGE_FILE_MODE),
    )?);
    let written = (|| -> Result<MessageId, StoreError> {
        let started = Instant::now();
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
        let id = MessageId::stored_at(id_time(stamped, after));
        let target = Bucket::leaf_of(id);
        if target == leaf {
            rustix::fs::renameat(&leaf_dir, temporary.as_str(), &leaf_dir, id.to_string())?;
        } else {
            // The write crossed into the next leaf's time (every 256 ms): rename into it.
            let target_dir = open_or_create_leaf(dir, handles, target)?;
            rustix::fs::renameat(&leaf_dir, temporary.as_str(), &target_dir, id.to_string())?;
        }
        // The rename is the moment of publication. Its own durability needs no directory fsync
        // on EFS, where NFS metadata operations are committed before the server replies.
        if started.elapsed() > PUBLISH_DEADLINE {
            let _ = super::by_id::unlink(dir, handles, id);
            return Err(StoreError::Refused(Refusal::TooSlow));
        }
        Ok(id)
    })();
    if written.is_err() {
        // Best effort: whatever is left is a temporary that listings ignore and reclaiming removes.
        let _ = rustix::fs::unlinkat(&leaf_dir, temporary.as_str(), AtFlags::empty());
    }
    written
}
