//! What a function instance builds once at start-up and every invocation shares.

use crate::{config::ConfigError, metrics, Config, MessageStore};

/// The configuration and the store, built once per instance (cold start) from the environment.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub store: MessageStore,
}

impl AppState {
    /// Builds the state from a configuration (tests point it at a temporary directory).
    pub fn new(config: Config) -> Self {
        let store = MessageStore::new(config.messages_dir.clone());
        Self { config, store }
    }

    /// Builds the state from the process environment: a function instance starting, which
    /// from now on writes its metrics to stdout, the first document with its init time.
    pub fn from_env() -> Result<Self, ConfigError> {
        let state = Config::from_env().map(Self::new)?;
        metrics::instance_ready();
        Ok(state)
    }
}
