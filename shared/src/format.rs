//! The on-disk form of one message: a small header carrying the Content-Type, then the body.
//!
//! EFS has no extended attributes, and a second file per message would double the round trips
//! of every read, so the Content-Type travels inside the message file:
//!
//! ```text
//! magic "EFSM" | version 1 (1 byte) | Content-Type length (u16, big endian) | Content-Type | body
//! ```

/// Identifies a message file written by this crate.
const MAGIC: &[u8; 4] = b"EFSM";
const VERSION: u8 = 1;
const HEADER_FIXED_LEN: usize = MAGIC.len() + 1 + 2;

/// The longest Content-Type kept with a message. Real media types are far shorter; the bound
/// keeps the header small and lets its length fit the two-byte field.
pub const MAX_CONTENT_TYPE_LEN: usize = 1024;

/// The largest file that can hold a message: the header with the longest Content-Type and the
/// largest body any setting lets a POST store. A reader reads no more than this (and one byte to
/// know there is more): a larger file named like a message is not one, whatever its size.
pub const MAX_FILE_LEN: usize =
    HEADER_FIXED_LEN + MAX_CONTENT_TYPE_LEN + crate::config::MAX_MESSAGE_BYTES_CEILING;

/// A file's bytes that are not a message in this format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a message file")]
pub struct CorruptMessage;

/// Serialises a message for writing. `content_type` must be at most [`MAX_CONTENT_TYPE_LEN`]
/// bytes (the HTTP layer checks this before anything is stored).
pub fn encode(content_type: &str, body: &[u8]) -> Vec<u8> {
    debug_assert!(content_type.len() <= MAX_CONTENT_TYPE_LEN);
    let content_type = &content_type.as_bytes()[..content_type.len().min(MAX_CONTENT_TYPE_LEN)];
    let mut out = Vec::with_capacity(HEADER_FIXED_LEN + content_type.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    // MAX_CONTENT_TYPE_LEN fits in a u16.
    out.extend_from_slice(&(content_type.len() as u16).to_be_bytes());
    out.extend_from_slice(content_type);
    out.extend_from_slice(body);
    out
}

/// Splits a message file into its Content-Type and its body, taking ownership to avoid a copy
/// of the body.
pub fn decode(mut bytes: Vec<u8>) -> Result<(String, Vec<u8>), CorruptMessage> {
    if bytes.len() < HEADER_FIXED_LEN || &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return Err(CorruptMessage);
    }
    let len = usize::from(u16::from_be_bytes([bytes[5], bytes[6]]));
    let header_len = HEADER_FIXED_LEN + len;
    if len > MAX_CONTENT_TYPE_LEN || bytes.len() < header_len {
        return Err(CorruptMessage);
    }
    let content_type = std::str::from_utf8(&bytes[HEADER_FIXED_LEN..header_len])
        .map_err(|_| CorruptMessage)?
        .to_owned();
    bytes.drain(..header_len);
    Ok((content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_body() {
        for body in [
            &b""[..],
            b"hello",
            &[0u8, 255, 10, 13, 0][..],
            &[7u8; 70_000][..],
        ] {
            let encoded = encode("application/x-thing; charset=binary", body);
            let (ct, decoded) = decode(encoded).unwrap();
            assert_eq!(ct, "application/x-thing; charset=binary");
            assert_eq!(decoded, body);
        }
    }

    #[test]
    fn rejects_foreign_and_truncated_files() {
        let good = encode("text/plain", b"hi");
        assert_eq!(decode(Vec::new()), Err(CorruptMessage));
        assert_eq!(decode(b"hello world".to_vec()), Err(CorruptMessage));
        assert_eq!(decode(good[..8].to_vec()), Err(CorruptMessage));
        let mut wrong_version = good.clone();
        wrong_version[4] = 2;
        assert_eq!(decode(wrong_version), Err(CorruptMessage));
        let mut too_long = good;
        too_long[5] = 0xff;
        assert_eq!(decode(too_long), Err(CorruptMessage));
    }
}
