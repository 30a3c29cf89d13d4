//! What a function instance builds once at start-up and every invocation shares.

use crate::{
    config::{self, ConfigError},
    metrics, Config, MessageStore,
};

/// The configuration and the store, built once per instance (cold start) from the environment.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: MessageStore,
}

impl AppState {
    /// Builds the state from a configuration (tests point it at a temporary directory).
    pub fn new(config: Config) -> Self {
        let store =
            MessageStore::new(config.messages_dir.clone()).with_retention(config.retention());
        Self { config, store }
    }

    /// Builds the state from the process environment: a function instance starting, which
    /// from now on writes its metrics to stdout, the first document with its init time.
    pub fn from_env() -> Result<Self, ConfigError> {
        let state = Self::from_lookup(|key| std::env::var(key).ok())?;
        metrics::instance_ready();
        Ok(state)
    }

    /// Builds the state from settings read through `lookup`. Locally, with
    /// [`config::LOCAL_CREATE_MESSAGES_DIR`], it first creates a missing messages directory;
    /// otherwise the store never creates it (missing means not mounted: `503`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Config::from_lookup(&lookup)?;
        if config::create_messages_dir(&lookup)? {
            if let Err(error) = std::fs::create_dir_all(&config.messages_dir) {
                // Not fatal: every request then says 503, which is the truth.
                lambda_http::tracing::warn!(
                    dir = %config.messages_dir.display(),
                    %error,
                    "cannot create the messages directory"
                );
            }
        }
        Ok(Self::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    fn state(dir: &std::path::Path, create: Option<&str>) -> AppState {
        let dir = dir.display().to_string();
        AppState::from_lookup(|key| match key {
            "MESSAGES_DIR" => Some(dir.clone()),
            config::LOCAL_CREATE_MESSAGES_DIR => create.map(str::to_owned),
            _ => None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_missing_directory_is_unavailable_unless_local_creation_is_asked_for() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("fresh-clone").join(".efs");
        for create in [None, Some("false")] {
            let state = state(&dir, create);
            assert!(!dir.exists(), "created with {create:?}");
            assert!(matches!(
                state.store.publish("text/plain", b"hello").await,
                Err(StoreError::Unavailable(_))
            ));
            assert!(!dir.exists(), "a POST does not create it either");
        }
        let state = state(&dir, Some("true"));
        assert!(dir.is_dir());
        let id = state.store.publish("text/plain", b"hello").await.unwrap();
        assert_eq!(state.store.read(id).await.unwrap().body, b"hello");
    }
}
