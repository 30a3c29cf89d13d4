//! Time across instances: the file system's clock, and the bounds the store's rules rest on.
//!
//! Every instance has its own clock, and they disagree. So the store takes the times it depends
//! on from the file system: an NFS server (EFS) stamps its own time on a file when the file is
//! written or touched, and the client reads it back with the file's attributes. A message's id is
//! the time the server stamped on its file (publish.rs), a DELETE's cut-off the time the server
//! stamped on the cut-off file (cutoff.rs), reclaiming's "now" the same (reclaim.rs). What is
//! left on an instance's own clock is what only a reader does (where a newest-first page starts,
//! where an oldest-first page stops, where retention begins), and that clock is trusted to
//! [`MAX_CLOCK_SKEW`], as Lambda keeps clocks with the Amazon Time Sync Service.
//!
//! Writers still compare: the server's stamp on a write lies between the local clock's readings
//! before and after it, which bounds the local clock's offset; an instance whose clock is
//! certainly more than [`MAX_CLOCK_SKEW`] off refuses to publish, as a sign that it is broken
//! (its messages would be stored right, but its other answers would not).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far apart two clocks the store relies on may be: a reader's and the file system's, or the
/// file system's as seen through two mount targets. A DELETE of everything sets its cut-off this
/// far past the server's time and waits as long again before answering.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_millis(100);

/// The longest a POST may take from the write of its body to its rename being done. A POST that
/// takes longer undoes its rename and answers `503`: past this, a reader may already have paged
/// past its id.
pub const PUBLISH_DEADLINE: Duration = Duration::from_secs(1);

/// The coarsest timestamps the store allows the file system to stamp: an id may be this much
/// later than the server's stamp on its message's write (publish.rs), so that messages written
/// within one tick of a coarse clock still sort in the order they were written.
pub const STAMP_RESOLUTION: Duration = Duration::from_millis(20);

/// How long after a millisecond no message with an id of that millisecond can still appear: the
/// publish deadline, plus twice the clock bound (the server's stamps and the reader's clock), plus
/// 50 ms, more than the stamp resolution. Oldest-first pages stop this far behind the
/// reader's clock, and a directory whose time range ended this long ago can be removed once
/// empty: nothing can be written into it any more.
pub const SETTLE: Duration = Duration::from_millis(
    PUBLISH_DEADLINE.as_millis() as u64 + 2 * MAX_CLOCK_SKEW.as_millis() as u64 + 50,
);

// The horizon covers what it must, checked when the crate compiles.
const _: () = assert!(
    SETTLE.as_millis()
        >= PUBLISH_DEADLINE.as_millis()
            + 2 * MAX_CLOCK_SKEW.as_millis()
            + STAMP_RESOLUTION.as_millis()
);

/// The local wall clock, in Unix milliseconds.
pub(crate) fn now_millis() -> u64 {
    millis(SystemTime::now())
}

/// A wall-clock time in Unix milliseconds.
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A whole number of milliseconds of a duration.
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn signed_millis(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// The local clock's offset from the server's (`server − local`, milliseconds) if it is certainly
/// more than [`MAX_CLOCK_SKEW`]: the server stamped `stamped` on a write made between the local
/// readings `before` and `after`. A slow write widens the interval, so it can never make a clock
/// that is right look wrong.
pub(crate) fn certainly_off(
    before: SystemTime,
    after: SystemTime,
    stamped: SystemTime,
) -> Option<(f64, f64)> {
    let stamped = signed_millis(stamped);
    let (low, high) = (
        stamped - signed_millis(after),
        stamped - signed_millis(before),
    );
    let bound = MAX_CLOCK_SKEW.as_secs_f64() * 1000.0;
    (low > bound || high < -bound).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn only_a_clock_certainly_off_is_refused() {
        assert_eq!(
            certainly_off(at(1_000), at(1_004), at(1_002)),
            None,
            "on time"
        );
        assert!(
            certainly_off(at(1_000), at(1_004), at(1_300)).is_some(),
            "300 ms behind"
        );
        assert!(
            certainly_off(at(1_000), at(1_004), at(800)).is_some(),
            "200 ms ahead"
        );
        // A write whose reply took 500 ms cannot tell: not refused.
        assert_eq!(certainly_off(at(1_000), at(1_500), at(1_300)), None);
    }
}
