//! The POST function: stores the request body as a new message.

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    http::{self, ApiResult, MessageSummary, Target},
    ApiError, AppState,
};

/// Answers `POST /` and `POST /messages`.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let result = serve(state, &request).await;
    http::respond(&request, result)
}

async fn serve(state: &AppState, request: &Request) -> ApiResult {
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
    let id = state.store.publish(content_type, body).await?;
    Ok(http::created(&MessageSummary::new(
        id,
        body.len(),
        content_type,
    )))
}
