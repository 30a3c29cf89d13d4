//! The GET function: lists messages a page at a time, or returns one message's raw bytes.
//!
//! Read-only by design: in the cloud its EFS grant is `ClientMount` alone.

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    http::{self, ApiResult, ListQuery, Target},
    AppState,
};

/// Answers `GET /`, `GET /messages` (`?limit=&order=&after=`) and `GET /messages/{id}`.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let result = serve(state, &request).await;
    http::respond(&request, result)
}

async fn serve(state: &AppState, request: &Request) -> ApiResult {
    http::require_method(request, Method::GET)?;
    match Target::of(request)? {
        Target::Collection => {
            let query = ListQuery::of(request)?;
            let page = state
                .store
                .list(query.order, query.after, query.limit)
                .await?;
            Ok(http::page(&page))
        }
        Target::Message(id) => Ok(http::raw_message(state.store.read(id).await?)),
    }
}
