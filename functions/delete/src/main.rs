//! Lambda entry point of the DELETE function: wiring only.

use lambda_http::Error;
use shared::{lambda, AppState};

fn main() -> Result<(), Error> {
    lambda::runtime()?.block_on(async {
        lambda::init_logging();
        let state = AppState::from_env()?;
        lambda::serve_with_schedule(
            env!("CARGO_BIN_NAME"),
            state,
            delete_messages::handle,
            delete_messages::reclaim,
        )
        .await
    })
}
