//! The DELETE function: deletes one message, or every message; and, on a schedule, reclaims the
//! space of what deleting every message left behind.

use std::time::Duration;

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    http::{self, ApiResult, Target},
    store::ReclaimBudget,
    AppState,
};

/// One scheduled run's share of reclaiming: well inside the function's 10 s timeout at 128 MB,
/// whatever is stored; what is left waits for the next run.
pub const RECLAIM_BUDGET: ReclaimBudget = ReclaimBudget {
    max_removals: 50_000,
    max_time: Duration::from_secs(4),
};

/// Answers `DELETE /`, `DELETE /messages` and `DELETE /messages/{id}`.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let result = serve(state, &request).await;
    http::respond(&request, result)
}

async fn serve(state: &AppState, request: &Request) -> ApiResult {
    http::require_method(request, Method::DELETE)?;
    match Target::of(request)? {
        Target::Collection => {
            state.store.delete_all().await?;
            Ok(http::no_content())
        }
        Target::Message(id) => {
            state.store.delete(id).await?;
            Ok(http::no_content())
        }
    }
}

/// Answers the schedule's tick: one bounded step of reclaiming, logged and returned as JSON.
pub async fn reclaim(state: &AppState) -> serde_json::Value {
    match state.store.reclaim(RECLAIM_BUDGET).await {
        Ok(done) => {
            lambda_http::tracing::info!(
                messages = done.messages,
                temporaries = done.temporaries,
                directories = done.directories,
                finished = done.finished,
                "reclaimed"
            );
            serde_json::json!({ "reclaimed": done })
        }
        Err(error) => {
            lambda_http::tracing::error!(error = %error, "reclaiming failed");
            serde_json::json!({ "error": error.to_string() })
        }
    }
}
