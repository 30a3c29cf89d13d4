//! The DELETE function: deletes one message, or every message; and, on a schedule, reclaims the
//! space of what deleting every message left behind.

use std::time::Duration;

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    audit,
    http::{self, ApiResult, Target},
    metrics::Metrics,
    store::ReclaimBudget,
    ApiError, AppState, Operation,
};

/// The binary's name: the `Function` of its metrics.
const FUNCTION: &str = env!("CARGO_PKG_NAME");

/// One scheduled run's share of reclaiming: well inside the function's 10 s timeout at 128 MB,
/// whatever is stored; what is left waits for the next run.
pub const RECLAIM_BUDGET: ReclaimBudget = ReclaimBudget {
    max_operations: 50_000,
    max_time: Duration::from_secs(4),
};

/// Answers `DELETE /`, `DELETE /messages` and `DELETE /messages/{id}`.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let mut metrics =
        Metrics::for_route(FUNCTION, &request, Operation::DeleteAll, Operation::Delete);
    let result = serve(state, &request, &mut metrics).await;
    metrics.respond(&request, result)
}

async fn serve(state: &AppState, request: &Request, metrics: &mut Metrics) -> ApiResult {
    http::require_method(request, Method::DELETE)?;
    match Target::of(request)? {
        target @ Target::Collection => {
            // No MessagesDeleted: the cut-off deletes without counting (reclaiming counts).
            metrics.store(state.store.delete_all()).await?;
            audit::record(request, Operation::DeleteAll, target);
            Ok(http::no_content())
        }
        target @ Target::Message(id) => {
            metrics.store(state.store.delete(id)).await?;
            metrics.deleted(1);
            audit::record(request, Operation::Delete, target);
            Ok(http::no_content())
        }
    }
}

/// Answers the schedule's tick: one bounded step of reclaiming, returned as JSON and, when it
/// removed anything or failed, logged and counted in a `reclaim` metrics document.
pub async fn reclaim(state: &AppState) -> serde_json::Value {
    let mut metrics = Metrics::new(FUNCTION, Operation::Reclaim);
    let result = metrics.store(state.store.reclaim(RECLAIM_BUDGET)).await;
    match result {
        // A run that found nothing to reclaim (the store at rest) writes no metrics and no log
        // line: a metric that receives data every minute is billed as a custom metric every
        // hour, and the schedule must cost nothing while nothing is deleted.
        Ok(done) if done.finished && done.removed() == 0 => {
            serde_json::json!({ "reclaimed": done })
        }
        Ok(done) => {
            metrics.deleted(done.messages);
            metrics.finish(None);
            lambda_http::tracing::info!(
                messages = done.messages,
                temporaries = done.temporaries,
                directories = done.directories,
                skipped = done.skipped,
                finished = done.finished,
                "reclaimed"
            );
            serde_json::json!({ "reclaimed": done })
        }
        Err(error) => {
            lambda_http::tracing::error!(error = %error, "reclaiming failed");
            metrics.finish(Some(ApiError::from(error).code()));
            let error = "reclaiming failed: the storage is unavailable or full";
            serde_json::json!({ "error": error.to_string() })
        }
    }
}
