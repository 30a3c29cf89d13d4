//! Configuration from the environment, read once when a function instance starts.

use std::path::PathBuf;

/// Where messages live when `MESSAGES_DIR` is not set: the access point's mount path on Lambda.
pub const DEFAULT_MESSAGES_DIR: &str = "/mnt/msg";
/// The largest message accepted when `MAX_MESSAGE_BYTES` is not set (256 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;
/// A hard ceiling on `MAX_MESSAGE_BYTES`: one message must always fit in a page, within
/// Lambda's 6 MB response limit, however it is encoded. A body of control characters is valid
/// UTF-8 that grows seven-fold on the way out (`\u0001` in the page's JSON, its backslash escaped
/// again in the response document): 7 × 768 KiB = 5.25 MiB, inside the page budget.
pub const MAX_MESSAGE_BYTES_CEILING: usize = 768 * 1024;
/// How long messages are kept when `MESSAGE_RETENTION_DAYS` is not set.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The longest retention that can be set (about 100 years); `0` keeps everything.
const MAX_RETENTION_DAYS: u32 = 36_500;
/// Local only: `true` lets an instance create a missing `MESSAGES_DIR` at start-up, so a plain
/// `cargo lambda watch` works in a fresh clone (`Cargo.toml` sets it for watch alone). Never set
/// in the cloud, where a missing directory means the file system is not mounted: `503`.
pub const LOCAL_CREATE_MESSAGES_DIR: &str = "LOCAL_CREATE_MESSAGES_DIR";

/// The settings every function reads at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The directory that holds one file per message.
    pub messages_dir: PathBuf,
    /// The largest body a POST may store.
    pub max_message_bytes: usize,
    /// Messages older than this many days are gone for every reader, and reclaimed; `0` keeps
    /// everything.
    pub retention_days: u32,
}

impl Config {
    /// The retention period, or `None` when everything is kept.
    pub fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400))
    }
}

/// A setting in the environment that cannot be used; the instance refuses to start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "MAX_MESSAGE_BYTES must be a whole number from 1 to {MAX_MESSAGE_BYTES_CEILING}, got {0:?}"
    )]
    MaxMessageBytes(String),
    #[error("MESSAGE_RETENTION_DAYS must be a whole number from 0 (keep everything) to {MAX_RETENTION_DAYS}, got {0:?}")]
    RetentionDays(String),
    #[error("MESSAGES_DIR must not be empty")]
    EmptyMessagesDir,
    #[error("{LOCAL_CREATE_MESSAGES_DIR} must be true or false, got {0:?}")]
    CreateMessagesDir(String),
}

/// Reads [`LOCAL_CREATE_MESSAGES_DIR`]: `true` or `1` to create the directory, `false`, `0` or
/// unset not to. Anything else is refused rather than guessed.
pub fn create_messages_dir(lookup: impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match lookup(LOCAL_CREATE_MESSAGES_DIR).as_deref().map(str::trim) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ConfigError::CreateMessagesDir(other.to_owned())),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let messages_dir = match lookup("MESSAGES_DIR") {
            Some(dir) if dir.is_empty() => return Err(ConfigError::EmptyMessagesDir),
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(DEFAULT_MESSAGES_DIR),
        };
        let max_message_bytes = match lookup("MAX_MESSAGE_BYTES") {
            None => DEFAULT_MAX_MESSAGE_BYTES,
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_MESSAGE_BYTES_CEILING).contains(n))
                .ok_or(ConfigError::MaxMessageBytes(raw))?,
        };
        let retention_days = match lookup("MESSAGE_RETENTION_DAYS") {
            None => DEFAULT_RETENTION_DAYS,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|days| *days <= MAX_RETENTION_DAYS)
                .ok_or(ConfigError::RetentionDays(raw))?,
        };
        Ok(Self {
            messages_dir,
            max_message_bytes,
            retention_days,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.messages_dir, PathBuf::from("/mnt/msg"));
        assert_eq!(c.max_message_bytes, 262_144);
        assert_eq!(c.retention_days, 30);
        assert_eq!(
            c.retention(),
            Some(std::time::Duration::from_secs(30 * 86_400))
        );
    }

    #[test]
    fn retention_zero_keeps_everything() {
        let c = config(&[("MESSAGE_RETENTION_DAYS", "0")]).unwrap();
        assert_eq!(c.retention(), None);
        let c = config(&[("MESSAGE_RETENTION_DAYS", "7")]).unwrap();
        assert_eq!(
            c.retention(),
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        for bad in ["-1", "1.5", "x", "", "36501"] {
            assert_eq!(
                config(&[("MESSAGE_RETENTION_DAYS", bad)]),
                Err(ConfigError::RetentionDays(bad.to_string()))
            );
        }
    }

    #[test]
    fn the_largest_message_fits_a_page_however_it_is_encoded() {
        // Seven-fold: a control character becomes \u0001 in JSON, and its backslash is escaped
        // again in the response document.
        const { assert!(7 * MAX_MESSAGE_BYTES_CEILING + 4096 < crate::http::PAGE_BUDGET) };
        assert!(config(&[("MAX_MESSAGE_BYTES", "786432")]).is_ok());
        assert!(config(&[("MAX_MESSAGE_BYTES", "786433")]).is_err());
    }

    #[test]
    fn reads_both_variables() {
        let c = config(&[("MESSAGES_DIR", "/tmp/x"), ("MAX_MESSAGE_BYTES", "10")]).unwrap();
        assert_eq!(c.messages_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.max_message_bytes, 10);
    }

    #[test]
    fn rejects_unusable_values() {
        for bad in ["0", "-1", "abc", "", "99999999999"] {
            assert_eq!(
                config(&[("MAX_MESSAGE_BYTES", bad)]),
                Err(ConfigError::MaxMessageBytes(bad.to_string()))
            );
        }
        assert_eq!(
            config(&[("MESSAGES_DIR", "")]),
            Err(ConfigError::EmptyMessagesDir)
        );
    }

    #[test]
    fn creating_the_directory_is_off_unless_asked_for() {
        let create = |value: Option<&str>| {
            create_messages_dir(|key| {
                assert_eq!(key, LOCAL_CREATE_MESSAGES_DIR);
                value.map(str::to_owned)
            })
        };
        assert_eq!(create(None), Ok(false));
        assert_eq!(create(Some("false")), Ok(false));
        assert_eq!(create(Some("0")), Ok(false));
        assert_eq!(create(Some("true")), Ok(true));
        assert_eq!(create(Some("1")), Ok(true));
        for bad in ["yes", "TRUE", "", "on"] {
            assert_eq!(
                create(Some(bad)),
                Err(ConfigError::CreateMessagesDir(bad.to_owned()))
            );
        }
    }
}
