//! The DELETE function: deletes one message, or every message.

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    audit,
    http::{self, ApiResult, Target},
    metrics::Metrics,
    AppState, Operation,
};

/// The binary's name: the `Function` of its metrics.
const FUNCTION: &str = env!("CARGO_PKG_NAME");

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
            // No MessagesDeleted: DELETE /messages is to answer 204 without a count.
            let deleted = metrics.store(state.store.delete_all()).await?;
            audit::record(request, Operation::DeleteAll, target);
            Ok(http::deleted(deleted))
        }
        target @ Target::Message(id) => {
            metrics.store(state.store.delete(id)).await?;
            metrics.deleted(1);
            audit::record(request, Operation::Delete, target);
            Ok(http::no_content())
        }
    }
}
