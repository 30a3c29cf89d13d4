//! Lambda entry point of the DELETE function: wiring only.

use lambda_http::Error;
use shared::{lambda, AppState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_logging();
    let state = AppState::from_env()?;
    lambda::serve(env!("CARGO_BIN_NAME"), state, delete_messages::handle).await
}
