//! The delete-all cut-off: every message created before it is deleted, wherever its file is.
//!
//! `DELETE /messages` does not unlink a million files while the client waits. It raises one
//! number, the cut-off (Unix milliseconds), kept in the file `MESSAGES_DIR/cutoff`; every read,
//! listing and delete treats a message whose id's time is below it as gone, and reclaiming
//! removes those files later, in bounded steps (reclaim.rs).
//!
//! Why a file rewritten in place, not a new directory or a renamed file: other EFS clients may
//! cache directory entries and attributes for up to a minute, but NFS close-to-open consistency
//! guarantees that *opening a file* revalidates it, so an instance that opens `cutoff` after a
//! DELETE returned reads what that DELETE wrote. The file is created once and only ever
//! overwritten, never replaced.
//!
//! The file holds two 32-byte slots, each `magic | version | sequence | cut-off | checksum`. A
//! writer takes an exclusive lock on the file (an NFS lock on EFS, which also revalidates the
//! cache), reads both slots, and writes the next sequence number into the *other* slot, then
//! flushes it: a writer killed mid-write leaves at worst a torn slot that fails its checksum, and
//! readers fall back to the intact one. The cut-off never goes down: a writer stores the larger of
//! its own and the current one. Readers take no lock; they read both slots and believe the valid
//! one with the higher sequence number.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{self, Read},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::Path,
    thread,
    time::{Duration, Instant},
};

/// The cut-off's file name in the messages directory (not hex: never taken for a directory of
/// messages).
pub(crate) const FILE_NAME: &str = "cutoff";

const MAGIC: &[u8; 4] = b"EFSC";
const VERSION: u8 = 1;
const SLOT_LEN: usize = 32;

/// How long a DELETE waits for another DELETE's lock before it reports the storage unavailable.
const LOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// The cut-off file is readable by the access point's group, like the messages.
const FILE_MODE: u32 = 0o640;

/// One slot: which write it was, and the cut-off it set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    sequence: u64,
    cutoff: u64,
}

impl Slot {
    fn encode(self) -> [u8; SLOT_LEN] {
        let mut bytes = [0; SLOT_LEN];
        bytes[..4].copy_from_slice(MAGIC);
        bytes[4] = VERSION;
        bytes[8..16].copy_from_slice(&self.sequence.to_be_bytes());
        bytes[16..24].copy_from_slice(&self.cutoff.to_be_bytes());
        let checksum = fnv1a(&bytes[..24]);
        bytes[24..].copy_from_slice(&checksum.to_be_bytes());
        bytes
    }

    /// `None` for anything but an intact slot: zeros, a torn write, a foreign file.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; SLOT_LEN] = bytes.try_into().ok()?;
        let word = |range: std::ops::Range<usize>| {
            u64::from_be_bytes(bytes[range].try_into().unwrap_or([0; 8]))
        };
        let intact =
            &bytes[..4] == MAGIC && bytes[4] == VERSION && word(24..32) == fnv1a(&bytes[..24]);
        intact.then(|| Self {
            sequence: word(8..16),
            cutoff: word(16..24),
        })
    }
}

/// FNV-1a, 64 bits: enough to tell a torn slot from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The newest intact slot of the file's first bytes, if any.
fn newest(bytes: &[u8]) -> Option<Slot> {
    bytes
        .chunks(SLOT_LEN)
        .take(2)
        .filter_map(Slot::decode)
        .max_by_key(|slot| slot.sequence)
}

/// The current cut-off under `dir`: 0 when nothing was ever deleted (no file, or no intact slot).
pub(crate) fn read(dir: &Path) -> io::Result<u64> {
    let mut bytes = Vec::with_capacity(2 * SLOT_LEN);
    match File::open(dir.join(FILE_NAME)) {
        Ok(file) => file.take(2 * SLOT_LEN as u64).read_to_end(&mut bytes)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    Ok(newest(&bytes).map_or(0, |slot| slot.cutoff))
}

/// Raises the cut-off under `dir` to at least `at_least` and returns the cut-off now in force
/// (higher than `at_least` if another DELETE set a later one). Durable when it returns.
pub(crate) fn raise(dir: &Path, at_least: u64) -> io::Result<u64> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(dir.join(FILE_NAME))?;
    lock(&file)?;
    crate::store::crash_point("cutoff.locked");
    let mut bytes = [0; 2 * SLOT_LEN];
    let read = read_at_most(&file, &mut bytes)?;
    let current = newest(&bytes[..read]).unwrap_or(Slot {
        sequence: 0,
        cutoff: 0,
    });
    if current.cutoff >= at_least {
        return Ok(current.cutoff);
    }
    let next = Slot {
        sequence: current.sequence + 1,
        cutoff: at_least,
    };
    let offset = (next.sequence % 2) * SLOT_LEN as u64;
    let encoded = next.encode();
    if crate::store::crash_point_enabled("cutoff.torn") {
        // A writer killed half-way through its write: half a slot reaches the file.
        file.write_all_at(&encoded[..SLOT_LEN / 2], offset)?;
        file.sync_all()?;
        crate::store::crash_point("cutoff.torn");
    }
    file.write_all_at(&encoded, offset)?;
    crate::store::crash_point("cutoff.written");
    file.sync_all()?;
    crate::store::crash_point("cutoff.synced");
    // Closing the file releases the lock.
    Ok(next.cutoff)
}

/// Takes the exclusive lock, waiting at most [`LOCK_TIMEOUT`] for another writer.
fn lock(file: &File) -> io::Result<()> {
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "another delete-all holds the cut-off lock",
                ))
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn read_at_most(file: &File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn slots_round_trip_and_torn_ones_are_refused() {
        let slot = Slot {
            sequence: 7,
            cutoff: 1_790_000_000_000,
        };
        let bytes = slot.encode();
        assert_eq!(Slot::decode(&bytes), Some(slot));
        for cut in [0, 1, 8, 16, 24, 31] {
            let mut torn = bytes;
            torn[cut..].fill(0);
            assert_eq!(Slot::decode(&torn), None, "cut at {cut}");
        }
        let mut flipped = bytes;
        flipped[20] ^= 1;
        assert_eq!(Slot::decode(&flipped), None);
        assert_eq!(Slot::decode(&[0; SLOT_LEN]), None);
    }

    #[test]
    fn the_newest_intact_slot_wins() {
        let old = Slot {
            sequence: 1,
            cutoff: 10,
        }
        .encode();
        let new = Slot {
            sequence: 2,
            cutoff: 20,
        }
        .encode();
        assert_eq!(newest(&[new, old].concat()).map(|s| s.cutoff), Some(20));
        assert_eq!(newest(&[old, new].concat()).map(|s| s.cutoff), Some(20));
        let mut torn = new;
        torn[30] ^= 0xff;
        assert_eq!(newest(&[torn, old].concat()).map(|s| s.cutoff), Some(10));
        assert_eq!(newest(&[]), None);
    }

    #[test]
    fn raising_never_lowers_and_alternates_slots() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), 0);
        assert!(!dir.path().join(FILE_NAME).exists());
        assert_eq!(raise(dir.path(), 100).unwrap(), 100);
        assert_eq!(raise(dir.path(), 50).unwrap(), 100, "never lowered");
        assert_eq!(raise(dir.path(), 300).unwrap(), 300);
        assert_eq!(read(dir.path()).unwrap(), 300);
        let bytes = fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(bytes.len(), 2 * SLOT_LEN, "two slots, rewritten in place");
        let slots: Vec<_> = bytes.chunks(SLOT_LEN).map(Slot::decode).collect();
        assert_eq!(
            slots,
            [
                Some(Slot {
                    sequence: 2,
                    cutoff: 300
                }),
                Some(Slot {
                    sequence: 1,
                    cutoff: 100
                })
            ]
        );
    }
}
