//! Lambda entry point of the POST function: wiring only.

use lambda_http::Error;
use shared::{lambda, AppState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_logging();
    let state = AppState::from_env()?;
    post_message::spawn_housekeeping(&state);
    lambda::serve(env!("CARGO_BIN_NAME"), state, post_message::handle).await
}
