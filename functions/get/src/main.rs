//! Lambda entry point of the GET function: wiring only.

use lambda_http::Error;
use shared::{lambda, AppState};

fn main() -> Result<(), Error> {
    lambda::runtime()?.block_on(async {
        lambda::init_logging();
        let state = AppState::from_env()?;
        lambda::serve(env!("CARGO_BIN_NAME"), state, get_messages::handle).await
    })
}
