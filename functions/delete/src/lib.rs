//! The DELETE function: deletes one message, or every message.

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    audit,
    http::{self, ApiResult, Target},
    AppState, Operation,
};

/// Answers `DELETE /`, `DELETE /messages` and `DELETE /messages/{id}`.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let result = serve(state, &request).await;
    http::respond(&request, result)
}

async fn serve(state: &AppState, request: &Request) -> ApiResult {
    http::require_method(request, Method::DELETE)?;
    match Target::of(request)? {
        target @ Target::Collection => {
            let deleted = state.store.delete_all().await?;
            audit::record(request, Operation::DeleteAll, target);
            Ok(http::deleted(deleted))
        }
        target @ Target::Message(id) => {
            state.store.delete(id).await?;
            audit::record(request, Operation::Delete, target);
            Ok(http::no_content())
        }
    }
}
