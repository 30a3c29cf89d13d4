//! Message ids: UUID version 7, so that ids sort by creation time and name files safely.

use std::{
    fmt,
    str::FromStr,
    sync::{LazyLock, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::{timestamp::context::ContextV7, Timestamp, Uuid, Variant};

/// The length of a lowercase hyphenated UUID, the only form an id may take.
const ID_LEN: usize = 36;
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// One clock sequence for the whole process. Its 12 extra bits of sub-millisecond time (RFC 9562,
/// method 3) keep ids from different instances in creation order even within one millisecond;
/// within this process the sequence is also strictly monotonic.
static CONTEXT: LazyLock<Mutex<ContextV7>> =
    LazyLock::new(|| Mutex::new(ContextV7::new().with_additional_precision()));

/// The id of a stored message: a lowercase hyphenated UUID version 7.
///
/// A `MessageId` can only be made by [`MessageId::generate`] or by parsing text that is exactly
/// such a UUID, so its string form is always 36 characters of `[0-9a-f-]`: it is safe to use as a
/// file name and can never name anything outside the messages directory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(Uuid);

/// Text that is not a lowercase hyphenated UUID version 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a lowercase hyphenated UUID version 7")]
pub struct InvalidId;

impl MessageId {
    /// A new id for a message stored now.
    pub fn generate() -> Self {
        // A poisoned lock only means another thread panicked while holding it; the context is a
        // counter that stays valid, so keep using it.
        let context = CONTEXT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Self(Uuid::new_v7(Timestamp::now(&*context)))
    }

    /// The id of a message stored at `time`, read from the file system's clock (the modification
    /// time the server stamped on the stored file): its millisecond, 12 bits of sub-millisecond
    /// fraction (RFC 9562, method 3), and random bits for the rest. Ids of messages stored one
    /// after another sort in that order, whichever instances stored them and whatever their own
    /// clocks say.
    pub fn stored_at(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let millis = u64::try_from(since.as_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
        let fraction = u64::from(since.subsec_nanos() % 1_000_000) * 4096 / 1_000_000;
        let random = *Uuid::new_v4().as_bytes();
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        bytes[6] = 0x70 | ((fraction >> 8) as u8 & 0x0f);
        bytes[7] = (fraction & 0xff) as u8;
        bytes[8] = 0x80 | (random[8] & 0x3f);
        bytes[9..].copy_from_slice(&random[9..]);
        Self(Uuid::from_bytes(bytes))
    }

    /// Parses the one accepted form: 36 characters, lowercase hex, hyphens at 8, 13, 18 and 23,
    /// version 7, RFC 9562 variant.
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let bytes = text.as_bytes();
        if bytes.len() != ID_LEN {
            return Err(InvalidId);
        }
        let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
            if HYPHENS.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
            }
        });
        if !well_formed {
            return Err(InvalidId);
        }
        let uuid = Uuid::try_parse(text).map_err(|_| InvalidId)?;
        if uuid.get_version_num() != 7 || uuid.get_variant() != Variant::RFC4122 {
            return Err(InvalidId);
        }
        Ok(Self(uuid))
    }

    /// A uniformly random byte of the id (from its final random bits), for spreading messages
    /// over directories without any bias from the clock.
    pub fn random_byte(&self) -> u8 {
        self.0.as_bytes()[15]
    }

    /// When the message was created, in Unix milliseconds: the first 48 bits of a version 7
    /// UUID. The store files messages by it and compares it with the delete-all cut-off.
    pub fn unix_millis(&self) -> u64 {
        self.0.as_bytes()[..6]
            .iter()
            .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// When the message was created, to the millisecond, read from the id itself.
    pub fn created_at(&self) -> DateTime<Utc> {
        i64::try_from(self.unix_millis())
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// An id for a message created at `unix_millis`, with random low bits: for tools that seed
    /// a store with a history (benchmarks, tests), never for a message being posted.
    pub fn at_millis(unix_millis: u64) -> Self {
        let seconds = unix_millis / 1000;
        let nanos = u32::try_from((unix_millis % 1000) * 1_000_000).unwrap_or(0);
        // No counter bits: the uuid crate fills everything below the millisecond at random.
        Self(Uuid::new_v7(Timestamp::from_unix_time(
            seconds, nanos, 0, 0,
        )))
    }

    /// [`Self::created_at`] as RFC 3339 UTC with milliseconds, as the API reports it.
    pub fn created_at_rfc3339(&self) -> String {
        self.created_at()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl FromStr for MessageId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_are_version_7() {
        let id = MessageId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.as_bytes()[14], b'7');
        assert_eq!(MessageId::parse(&text), Ok(id));
    }

    #[test]
    fn ids_generated_one_after_another_sort_in_order() {
        let ids: Vec<MessageId> = (0..10_000).map(|_| MessageId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "ids must be strictly increasing");
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut sorted_texts = texts.clone();
        sorted_texts.sort();
        assert_eq!(texts, sorted_texts, "text order must equal id order");
    }

    #[test]
    fn ids_carry_sub_millisecond_time() {
        // Method 3 of RFC 9562: the 12 bits after the version are a fraction of a millisecond, so
        // two ids made about half a millisecond apart differ there even in the same millisecond.
        let fraction = |id: MessageId| {
            let b = id.0.as_bytes();
            (u16::from(b[6] & 0x0f) << 8) | u16::from(b[7])
        };
        let seen: std::collections::HashSet<u16> = (0..50)
            .map(|_| {
                std::thread::sleep(std::time::Duration::from_micros(300));
                fraction(MessageId::generate())
            })
            .collect();
        assert!(
            seen.len() > 10,
            "sub-millisecond bits look constant: {seen:?}"
        );
    }

    #[test]
    fn created_at_is_the_embedded_millisecond() {
        let before = Utc::now().timestamp_millis();
        let id = MessageId::generate();
        let after = Utc::now().timestamp_millis();
        let at = id.created_at().timestamp_millis();
        assert!(
            (before..=after).contains(&at),
            "{before} <= {at} <= {after}"
        );
        let text = id.created_at_rfc3339();
        assert_eq!(text.len(), "2026-11-26T18:37:30.123Z".len(), "{text}");
        assert!(text.ends_with('Z'));
    }

    #[test]
    fn ids_at_a_given_millisecond_carry_it() {
        let at = 1_790_000_000_123;
        let a = MessageId::at_millis(at);
        let b = MessageId::at_millis(at);
        assert_ne!(a, b, "random low bits");
        assert_eq!((a.unix_millis(), b.unix_millis()), (at, at));
        assert_eq!(MessageId::parse(&a.to_string()), Ok(a));
        assert!(MessageId::at_millis(at + 1) > a);
    }

    #[test]
    fn ids_stored_at_a_time_carry_it_and_sort_by_it() {
        let at = UNIX_EPOCH + std::time::Duration::new(1_790_000_000, 123_456_789);
        let id = MessageId::stored_at(at);
        assert_eq!(id.unix_millis(), 1_790_000_000_123);
        assert_eq!(
            MessageId::parse(&id.to_string()),
            Ok(id),
            "a valid version 7 id"
        );
        assert_ne!(id, MessageId::stored_at(at), "random low bits");
        // Sub-millisecond order: 0.2 ms apart within one millisecond still sort in time order.
        let times: Vec<SystemTime> = (0..5)
            .map(|i| at + std::time::Duration::from_micros(200 * i))
            .collect();
        let ids: Vec<MessageId> = times.iter().map(|t| MessageId::stored_at(*t)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn rejects_everything_but_the_canonical_form() {
        let good = MessageId::generate().to_string();
        let cases = [
            String::new(),
            "../etc/passwd".to_string(),
            "/etc/passwd".to_string(),
            good.to_uppercase(),
            format!("{{{good}}}"),
            format!("urn:uuid:{good}"),
            good.replace('-', ""),
            format!("{good}/"),
            format!("../{good}"),
            format!("{good}%2F.."),
            good.replacen('-', "/", 1),
            "a".repeat(10_000),
            // version 4
            "0b5c3f3e-6d0f-4a6e-9c1e-2b7f2e8a9f10".to_string(),
            // version 7 but NCS variant
            "01936b2e-1e2d-7c3a-0b4c-5d6e7f8a9b0c".to_string(),
            // right length, not hex
            "0193zb2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c".to_string(),
            // non-ASCII of the same byte length
            "0193é2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c".to_string(),
        ];
        for case in cases {
            assert_eq!(MessageId::parse(&case), Err(InvalidId), "{case:?}");
        }
        assert!(MessageId::parse("01936b2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c").is_ok());
    }
}
