//! The delete-all cut-off: every message created before it is deleted, wherever its file is.
//!
//! `DELETE /messages` does not unlink a million files while the client waits. It raises one
//! number, the cut-off (Unix milliseconds), kept in the register file `MESSAGES_DIR/cutoff`
//! (register.rs: opened by name by every operation, raised without locks, never lowered); every
//! read, listing and delete treats a message whose id's time is below it as gone, and reclaiming
//! removes those files later, in bounded steps (reclaim.rs).
//!
//! The cut-off comes from the server's clock, not the deleting instance's: the DELETE touches the
//! file (the server stamps its own time `m`), sets the cut-off to `m` + [`MAX_CLOCK_SKEW`] + 1 ms,
//! and answers once the server's time is [`MAX_CLOCK_SKEW`] past it (measured on the monotonic
//! clock from the touch: 201 ms, whatever any clock says). Message ids are the server's times of
//! their writes too (publish.rs), so a POST completed before the DELETE began has an id below the
//! cut-off, and one begun after it answered an id above it, even if the two went through mount
//! targets whose clocks differ by up to the bound. A cut-off can never be far in the future: each
//! slot is capped at its writing time plus the bound.
//!
//! The file is created by the first POST (writers open it with `O_CREAT`), before the first
//! message exists: so an instance that looked for it earlier and cached "no such file" is never
//! asked to believe that while there is anything to delete; readers confirm an absence anyway.

use std::{
    io,
    path::Path,
    time::{Duration, Instant},
};

use super::{
    clock::{duration_millis, millis, MAX_CLOCK_SKEW},
    register::Register,
};

/// The register holding the cut-off: a value is at most the bound plus 1 ms past its writing.
pub(crate) const CUTOFF: Register =
    Register::new("cutoff", *b"EFSC", MAX_CLOCK_SKEW.as_millis() as u64 + 1);

/// The cut-off under `dir`: 0 when nothing was ever deleted. `create`: the caller may write (it
/// creates the file if missing, without a second look).
pub(crate) fn read(dir: &Path, create: bool) -> io::Result<u64> {
    CUTOFF.read(dir, create)
}

/// Raises the cut-off above everything the server stored before now. Returns how much longer
/// the caller must wait before answering, so that no instance within the clock bound can still
/// create a message below the cut-off in force. Durable when it returns; bounded whatever the
/// clocks say (at most 201 ms).
pub(crate) fn raise(dir: &Path) -> io::Result<Duration> {
    let (file, server) = CUTOFF.touch(dir)?;
    let touched = Instant::now();
    super::crash_point("cutoff.touched");
    let now = millis(server);
    let bound = duration_millis(MAX_CLOCK_SKEW);
    let in_force = CUTOFF.raise(dir, &file, now + bound + 1, now)?;
    // The cut-off in force may be another DELETE's later one (capped at its writing time plus the
    // bound): wait until the server's clock is the bound past it.
    let until = Duration::from_millis((in_force + bound).saturating_sub(now));
    Ok(until.saturating_sub(touched.elapsed()))
}
