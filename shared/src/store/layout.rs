//! Where a message lives: a path made only of its id, filed by the time in the id.
//!
//! ```text
//! MESSAGES_DIR/
//!   cutoff                       the delete-all cut-off (cutoff.rs)
//!   <top>/                       the id's millisecond >> 24, 6 hex digits: 4.66 hours
//!     <mid>/                     (ms >> 16) & 0xff, 2 hex digits: 65.5 seconds
//!       <leaf>/                  (ms >> 8) & 0xff, 2 hex digits: 256 milliseconds
//!         <id>                   a published message (format.rs)
//!         .tmp-<id>              a message being written, or a crashed writer's leftover
//! ```
//!
//! The directory names are the leading hex digits of the id's timestamp, so the path is a split
//! of the id itself (`0193b2c4-5e6f-7…` lives in `0193b2/c4/5e/`), names sort like the times
//! they stand for, and a page can go straight to the directories around its cursor instead of
//! listing the store. Every directory holds at most 256 children below the top level, and a leaf
//! holds a quarter of a second of messages: a burst of thousands a minute is spread over
//! hundreds of small directories, so no listing reads more than a few hundred names, and
//! reclaiming unlinks in many directories at once (the VFS serialises operations within one).
//! The top level grows by one name per 4.66 hours that saw a message.

use std::path::{Path, PathBuf};

use crate::MessageId;

/// Temporary files start with a dot, so they never parse as a [`MessageId`].
pub(crate) const TEMPORARY_PREFIX: &str = ".tmp-";

/// The three directory levels below the messages directory, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Level {
    Top,
    Mid,
    Leaf,
}

impl Level {
    /// How far a millisecond timestamp is shifted right to give this level's key.
    const fn shift(self) -> u32 {
        match self {
            Self::Top => 24,
            Self::Mid => 16,
            Self::Leaf => 8,
        }
    }

    /// The level of this level's subdirectories, if it has any.
    pub(crate) const fn below(self) -> Option<Self> {
        match self {
            Self::Top => Some(Self::Mid),
            Self::Mid => Some(Self::Leaf),
            Self::Leaf => None,
        }
    }
}

/// One directory of the tree: a level and the timestamp prefix it holds (`ms >> shift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Bucket {
    pub level: Level,
    pub key: u64,
}

impl Bucket {
    /// The directory of `level` that holds messages created at `unix_millis`.
    pub(crate) fn at(level: Level, unix_millis: u64) -> Self {
        Self {
            level,
            key: unix_millis >> level.shift(),
        }
    }

    /// The leaf directory a message belongs in.
    pub(crate) fn leaf_of(id: MessageId) -> Self {
        Self::at(Level::Leaf, id.unix_millis())
    }

    /// The first millisecond this directory holds.
    pub(crate) fn first_millis(self) -> u64 {
        self.key << self.level.shift()
    }

    /// The last millisecond this directory holds.
    pub(crate) fn last_millis(self) -> u64 {
        self.first_millis() | ((1 << self.level.shift()) - 1)
    }

    /// This directory's own name: 6 hex digits at the top, 2 below.
    pub(crate) fn name(self) -> String {
        match self.level {
            Level::Top => format!("{:06x}", self.key),
            Level::Mid | Level::Leaf => format!("{:02x}", self.key & 0xff),
        }
    }

    /// Its path relative to the messages directory: `top`, `top/mid` or `top/mid/leaf`.
    pub(crate) fn relative_path(self) -> PathBuf {
        let mut path = PathBuf::new();
        for level in [Level::Top, Level::Mid, Level::Leaf] {
            let bucket = Self::at(level, self.first_millis());
            path.push(bucket.name());
            if level == self.level {
                break;
            }
        }
        path
    }

    /// A top-level directory from its name, if the name is one (6 lowercase hex digits).
    pub(crate) fn top_named(name: &str) -> Option<Self> {
        parse_hex(name, 6).map(|key| Self {
            level: Level::Top,
            key,
        })
    }

    /// A subdirectory of this one from its name (2 lowercase hex digits), if it is one.
    pub(crate) fn child_named(self, name: &str) -> Option<Self> {
        let level = self.level.below()?;
        parse_hex(name, 2).map(|low| Self {
            level,
            key: (self.key << 8) | low,
        })
    }

    /// Whether a message with this id belongs in this (leaf) directory.
    pub(crate) fn holds(self, id: MessageId) -> bool {
        Self::at(self.level, id.unix_millis()) == self
    }
}

/// Exactly `digits` lowercase hex digits, nothing else.
fn parse_hex(name: &str, digits: usize) -> Option<u64> {
    let valid =
        name.len() == digits && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| u64::from_str_radix(name, 16).ok()).flatten()
}

/// Where the message `id` lives below `dir`.
pub(crate) fn message_path(dir: &Path, id: MessageId) -> PathBuf {
    let mut path = dir.join(Bucket::leaf_of(id).relative_path());
    path.push(id.to_string());
    path
}

/// The name of the temporary a writer of `id` publishes from.
pub(crate) fn temporary_name(id: MessageId) -> String {
    format!("{TEMPORARY_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_a_split_of_the_ids_timestamp() {
        let id = MessageId::parse("0193b2c4-5e6f-7c3a-8b4c-5d6e7f8a9b0c").unwrap();
        assert_eq!(
            message_path(Path::new("/m"), id),
            Path::new("/m/0193b2/c4/5e/0193b2c4-5e6f-7c3a-8b4c-5d6e7f8a9b0c")
        );
        let leaf = Bucket::leaf_of(id);
        assert!(leaf.holds(id));
        assert!(leaf.first_millis() <= id.unix_millis() && id.unix_millis() <= leaf.last_millis());
        assert_eq!(leaf.last_millis() - leaf.first_millis(), 255);
    }

    #[test]
    fn names_parse_back_and_sort_like_time() {
        let mut ids: Vec<MessageId> = (0..2000)
            .map(|i| MessageId::at_millis(1_700_000_000_000 + i * 7_919_993))
            .collect();
        ids.sort();
        let paths: Vec<PathBuf> = ids
            .iter()
            .map(|id| message_path(Path::new("/"), *id))
            .collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted, "path order is id order");
        for id in ids {
            let leaf = Bucket::leaf_of(id);
            let top = Bucket::at(Level::Top, id.unix_millis());
            let mid = top
                .child_named(&Bucket::at(Level::Mid, id.unix_millis()).name())
                .unwrap();
            assert_eq!(Bucket::top_named(&top.name()), Some(top));
            assert_eq!(mid.child_named(&leaf.name()), Some(leaf));
            assert_eq!(leaf.child_named("00"), None, "a leaf has no subdirectories");
        }
    }

    #[test]
    fn only_canonical_names_are_directories_of_ours() {
        let top = Bucket::top_named("0193b2").unwrap();
        for bad in ["0193B2", "0193b", "0193b2c", "", "-193b2", "cutoff"] {
            assert_eq!(Bucket::top_named(bad), None, "{bad:?}");
        }
        for bad in ["C4", "c", "c4c", "g0", " 1", ".."] {
            assert_eq!(top.child_named(bad), None, "{bad:?}");
        }
    }
}
