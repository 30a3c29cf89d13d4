//! A number that only ever goes up, kept in one small file that any number of instances on any
//! number of NFS clients read and raise, without locks: the delete-all cut-off (cutoff.rs) and how
//! far reclaiming has swept (reclaim.rs).
//!
//! Why this shape, on NFS:
//!
//! * **One file, opened by name every time, rewritten in place.** Opening a file revalidates it
//!   (close-to-open), so a reader that opens it after a writer closed it reads what was written;
//!   a new name or a renamed file could hide behind another client's cached directory for a
//!   minute.
//! * **No lock.** A lock held by an instance that froze (a Lambda environment is frozen between
//!   invocations, and may never thaw) stays held on the server until its lease runs out; nothing
//!   here waits for anyone.
//! * **Two slots, the larger wins.** The file holds two checksummed 32-byte slots; a reader
//!   believes the larger valid one. A writer writes its value into the slot holding the smaller
//!   one (or a damaged one), flushes, then opens the file again and checks that the larger slot is
//!   at least its value, writing again if a concurrent writer overwrote it. A writer killed half-way
//!   leaves at worst a torn slot that fails its checksum, and the other slot still holds the
//!   larger of the two values. So the value never goes down and never tears.
//! * **Checked against the server's clock.** Each slot carries the server time it was written at
//!   (learned by touching the file first: the server stamps its own time). A reader caps a slot's
//!   value at that time plus [`Register::lead`], so a writer with a wrong clock, or a forged slot,
//!   cannot put the value far in the future. Slots written by store v2 (version 1, no time) are
//!   capped by the file's modification time.
//!
//! ```text
//! slot: magic (4) | version 2 (1) | 0 (3) | value u64 | written at u64 | FNV-1a of the 24 before
//! ```

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::Path,
    time::SystemTime,
};

use rustix::fs::{Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};

use super::{clock::millis, listing::open_dir};

const SLOT_LEN: usize = 32;
const VERSION: u8 = 2;
/// Store v2's cut-off slots: sequence, value, checksum; no time.
const VERSION_1: u8 = 1;
/// How often a writer tries again when concurrent writers keep overwriting its slot.
const ATTEMPTS: usize = 8;

/// The files are readable by the access point's group, like the messages.
const FILE_MODE: u32 = 0o640;

/// One register: its file name and magic, and how far past its writing time a value may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Register {
    pub name: &'static str,
    magic: [u8; 4],
    /// A slot's value is at most its writing time plus this many milliseconds.
    pub lead: u64,
}

impl Register {
    pub(crate) const fn new(name: &'static str, magic: [u8; 4], lead: u64) -> Self {
        Self { name, magic, lead }
    }
}

/// One slot as read: its value, and the server time it was written at if it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    value: u64,
    written_at: Option<u64>,
}

/// FNV-1a, 64 bits: enough to tell a torn slot from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

impl Register {
    fn encode(&self, value: u64, written_at: u64) -> [u8; SLOT_LEN] {
        let mut bytes = [0; SLOT_LEN];
        bytes[..4].copy_from_slice(&self.magic);
        bytes[4] = VERSION;
        bytes[8..16].copy_from_slice(&value.to_be_bytes());
        bytes[16..24].copy_from_slice(&written_at.to_be_bytes());
        let checksum = fnv1a(&bytes[..24]);
        bytes[24..].copy_from_slice(&checksum.to_be_bytes());
        bytes
    }

    /// `None` for anything but an intact slot: zeros, a torn write, a foreign file.
    fn decode(&self, bytes: &[u8]) -> Option<Slot> {
        if bytes.len() != SLOT_LEN
            || bytes[..4] != self.magic
            || word(bytes, 24) != fnv1a(&bytes[..24])
        {
            return None;
        }
        match bytes[4] {
            VERSION => Some(Slot {
                value: word(bytes, 8),
                written_at: Some(word(bytes, 16)),
            }),
            VERSION_1 => Some(Slot {
                value: word(bytes, 16),
                written_at: None,
            }),
            _ => None,
        }
    }

    /// The slots of a file's first bytes, by position (`None`: empty or damaged).
    fn slots(&self, bytes: &[u8]) -> [Option<Slot>; 2] {
        let slot = |i: usize| {
            bytes
                .get(i * SLOT_LEN..(i + 1) * SLOT_LEN)
                .and_then(|b| self.decode(b))
        };
        [slot(0), slot(1)]
    }

    /// The value in force: the larger valid slot, each capped at its writing time plus the lead
    /// (`file_mtime` for slots that carry no time).
    fn value(
        &self,
        slots: &[Option<Slot>; 2],
        file_mtime: impl Fn() -> io::Result<u64>,
    ) -> io::Result<u64> {
        let mut value = 0;
        for slot in slots.iter().flatten() {
            let written_at = match slot.written_at {
                Some(at) => at,
                None => file_mtime()?,
            };
            value = value.max(slot.value.min(written_at.saturating_add(self.lead)));
        }
        Ok(value)
    }

    /// Reads the value under `dir`: 0 when the file does not exist or holds no valid slot.
    ///
    /// Writers open it with `O_CREAT` (creating it is how a store gets its cut-off file before
    /// its first message); readers, who may not write, do not trust a cached "no such file": they
    /// revalidate the directory (opening it) and look again before they believe it.
    pub(crate) fn read(&self, dir: &Path, create: bool) -> io::Result<u64> {
        let file = match self.open(dir, create) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => {
                drop(open_dir(rustix::fs::CWD, dir, false)?);
                match self.open(dir, false) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(self.state(&file)?.1)
    }

    /// An open file's slots, and the value in force.
    fn state(&self, file: &File) -> io::Result<([Option<Slot>; 2], u64)> {
        let mut bytes = [0; 2 * SLOT_LEN];
        let read = read_at_most(file, &mut bytes)?;
        let slots = self.slots(&bytes[..read]);
        let value = self.value(&slots, || Ok(millis(file.metadata()?.modified()?)))?;
        Ok((slots, value))
    }

    fn open(&self, dir: &Path, write: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(write)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(libc_o_nofollow())
            .open(dir.join(self.name))
    }

    /// Opens the file for raising it and asks the server for its time: the file is touched (the
    /// server stamps its own clock as the modification time) and its attributes read back.
    /// Returns the file and the server's time.
    pub(crate) fn touch(&self, dir: &Path) -> io::Result<(File, SystemTime)> {
        let file = self.open(dir, true)?;
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        };
        let omit = Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        };
        rustix::fs::futimens(
            &file,
            &Timestamps {
                last_access: omit,
                last_modification: now,
            },
        )?;
        let server = file.metadata()?.modified()?;
        Ok((file, server))
    }

    /// Raises the value under `dir` to at least `value`, written at the server time
    /// `written_at` (from [`Self::touch`], whose `file` this is), and returns the value in force
    /// (larger than `value` if another writer raised it further). Durable when it returns.
    pub(crate) fn raise(
        &self,
        dir: &Path,
        file: &File,
        value: u64,
        written_at: u64,
    ) -> io::Result<u64> {
        let value = value.min(written_at.saturating_add(self.lead));
        let mut file = file.try_clone()?;
        for _ in 0..ATTEMPTS {
            let (slots, in_force) = self.state(&file)?;
            if in_force >= value {
                return Ok(in_force);
            }
            // The slot with the smaller value, or a damaged one, is the one to overwrite: the
            // other keeps the larger value if this write tears.
            let target = match slots {
                [None, _] => 0,
                [_, None] => 1,
                [Some(a), Some(b)] => usize::from(b.value < a.value),
            };
            let encoded = self.encode(value, written_at);
            let offset = (target * SLOT_LEN) as u64;
            if super::crash_point_enabled("cutoff.torn") {
                // A writer killed half-way through its write: half a slot reaches the file.
                file.write_all_at(&encoded[..SLOT_LEN / 2], offset)?;
                file.sync_all()?;
                super::crash_point("cutoff.torn");
            }
            file.write_all_at(&encoded, offset)?;
            super::crash_point("cutoff.written");
            file.sync_all()?;
            super::crash_point("cutoff.synced");
            // Open it again: close-to-open shows what other writers wrote meanwhile.
            file = self.open(dir, true)?;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("concurrent writers kept overwriting {}", self.name),
        ))
    }
}

/// `O_NOFOLLOW`: a link planted under the register's name is refused, not followed.
fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
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

    const TEST: Register = Register::new("test-register", *b"EFST", 101);

    #[test]
    fn slots_round_trip_and_torn_ones_are_refused() {
        let bytes = TEST.encode(7, 5);
        assert_eq!(
            TEST.decode(&bytes),
            Some(Slot {
                value: 7,
                written_at: Some(5)
            })
        );
        for cut in [0, 1, 8, 16, 24, 31] {
            let mut torn = bytes;
            torn[cut..].fill(0);
            assert_eq!(TEST.decode(&torn), None, "cut at {cut}");
        }
        let mut flipped = bytes;
        flipped[20] ^= 1;
        assert_eq!(TEST.decode(&flipped), None);
        assert_eq!(TEST.decode(&[0; SLOT_LEN]), None);
        let other = Register::new("other", *b"EFSX", 0);
        assert_eq!(other.decode(&bytes), None, "another register's slot");
    }

    #[test]
    fn the_larger_valid_slot_wins_capped_by_its_time() {
        let low = TEST.encode(10, 10);
        let high = TEST.encode(20, 20);
        let value = |bytes: &[u8]| TEST.value(&TEST.slots(bytes), || Ok(0)).unwrap();
        assert_eq!(value(&[high, low].concat()), 20);
        assert_eq!(value(&[low, high].concat()), 20);
        let mut torn = high;
        torn[30] ^= 0xff;
        assert_eq!(value(&[torn, low].concat()), 10);
        assert_eq!(value(&[]), 0);
        // Far in the future for its writing time: capped at the time plus the lead.
        let forged = TEST.encode(1_000_000, 50);
        assert_eq!(value(&[forged, low].concat()), 50 + 101);
    }

    #[test]
    fn store_v2_slots_are_read_and_capped_by_the_files_time() {
        // Version 1: magic | 1 | pad | sequence | cut-off | checksum.
        let mut v1 = [0u8; SLOT_LEN];
        v1[..4].copy_from_slice(b"EFST");
        v1[4] = VERSION_1;
        v1[8..16].copy_from_slice(&3u64.to_be_bytes());
        v1[16..24].copy_from_slice(&5_000u64.to_be_bytes());
        let checksum = fnv1a(&v1[..24]);
        v1[24..].copy_from_slice(&checksum.to_be_bytes());
        let slots = TEST.slots(&v1);
        assert_eq!(TEST.value(&slots, || Ok(10_000)).unwrap(), 5_000);
        assert_eq!(
            TEST.value(&slots, || Ok(1_000)).unwrap(),
            1_101,
            "in the future: capped"
        );
    }

    #[test]
    fn raising_never_lowers_and_writes_in_place() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(TEST.read(dir.path(), false).unwrap(), 0);
        assert!(
            !dir.path().join(TEST.name).exists(),
            "a reader creates nothing"
        );
        let now = millis(SystemTime::now());
        let (file, ..) = TEST.touch(dir.path()).unwrap();
        assert_eq!(
            TEST.raise(dir.path(), &file, now - 100, now).unwrap(),
            now - 100
        );
        assert_eq!(
            TEST.raise(dir.path(), &file, now - 200, now).unwrap(),
            now - 100,
            "never lowered"
        );
        assert_eq!(
            TEST.raise(dir.path(), &file, now + 50, now).unwrap(),
            now + 50
        );
        assert_eq!(
            TEST.raise(dir.path(), &file, now + 5_000, now).unwrap(),
            now + 101,
            "capped"
        );
        assert_eq!(TEST.read(dir.path(), false).unwrap(), now + 101);
        let bytes = std::fs::read(dir.path().join(TEST.name)).unwrap();
        assert_eq!(bytes.len(), 2 * SLOT_LEN, "two slots, rewritten in place");
    }
}
