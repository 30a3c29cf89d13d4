//! The POST function: stores the request body as a new message.

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    audit,
    http::{self, ApiResult, MessageSummary, Target},
    metrics::Metrics,
    ApiError, AppState, Operation,
};

/// The binary's name: the `Function` of its metrics.
const FUNCTION: &str = env!("CARGO_PKG_NAME");

/// Answers `POST /` and `POST /messages`.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let mut metrics = Metrics::new(FUNCTION, Operation::Publish);
    let result = serve(state, &request, &mut metrics).await;
    metrics.respond(&request, result)
}

async fn serve(state: &AppState, request: &Request, metrics: &mut Metrics) -> ApiResult {
    http::require_method(request, Method::POST)?;
    if Target::of(request)? != Target::Collection {
        return Err(ApiError::RouteNotFound);
    }
    let body: &[u8] = request.body().as_ref();
    if body.is_empty() {
        return Err(ApiError::EmptyMessage);
    }
    let limit = state.config.max_message_bytes;
    if body.len() > limit {
        return Err(ApiError::MessageTooLarge { limit });
    }
    let content_type = http::message_content_type(request)?;
    let id = metrics
        .store(state.store.publish(content_type, body))
        .await?;
    metrics.stored(body.len());
    audit::record(request, Operation::Publish, Target::Message(id));
    Ok(http::created(&MessageSummary::new(
        id,
        body.len(),
        content_type,
    )))
}
