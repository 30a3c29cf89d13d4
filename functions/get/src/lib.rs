//! The GET function: lists messages a page at a time, or returns one message's raw bytes.
//!
//! Read-only by design: in the cloud its EFS grant is `ClientMount` alone.

use lambda_http::{http::Method, Body, Request, Response};
use shared::{
    http::{self, ApiResult, ListQuery, Target},
    metrics::Metrics,
    AppState, Operation,
};

/// The binary's name: the `Function` of its metrics.
const FUNCTION: &str = env!("CARGO_PKG_NAME");

/// Answers `GET /`, `GET /messages` (`?limit=&order=&after=`) and `GET /messages/{id}`.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let mut metrics = Metrics::for_route(FUNCTION, &request, Operation::List, Operation::Read);
    let result = serve(state, &request, &mut metrics).await;
    metrics.respond(&request, result)
}

async fn serve(state: &AppState, request: &Request, metrics: &mut Metrics) -> ApiResult {
    http::require_method(request, Method::GET)?;
    match Target::of(request)? {
        Target::Collection => {
            let query = ListQuery::of(request)?;
            let page = metrics
                .store(state.store.list(query.order, query.after, query.limit))
                .await?;
            metrics.returned(&page.messages);
            Ok(http::page(&page))
        }
        Target::Message(id) => {
            let message = metrics.store(state.store.read(id)).await?;
            metrics.returned(std::slice::from_ref(&message));
            Ok(http::raw_message(message))
        }
    }
}
