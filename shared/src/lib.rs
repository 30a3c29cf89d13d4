//! Everything the get, post and delete functions have in common.
//!
//! The three Lambda functions are thin: each one maps its HTTP routes onto a [`MessageStore`]
//! that lives in a directory on the shared EFS access point. This crate holds the store, the
//! HTTP mapping (ids, query parameters, the error enum and the JSON responses) and the glue
//! between the Lambda runtime and a handler, so that no logic is written three times.

pub mod audit;
pub mod config;
pub mod content_safety;
pub mod error;
pub mod format;
pub mod http;
pub mod id;
pub mod lambda;
pub mod metrics;
pub mod operation;
pub mod state;
pub mod store;

pub use config::Config;
pub use error::ApiError;
pub use id::MessageId;
pub use operation::Operation;
pub use state::AppState;
pub use store::{Message, MessageStore, Order, Page, StoreError};
