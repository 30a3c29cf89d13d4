//! The GET function: lists messages a page at a time, or returns one message's raw bytes; a
//! browser asking for `/` gets the message wall, an HTML page over the same API.
//!
//! Read-only by design: in the cloud its EFS grant is `ClientMount` alone.

pub mod page;

use lambda_http::{
    http::{header, HeaderValue, Method},
    Body, Request, Response,
};
use shared::{
    http::{self, ApiResult, ListQuery, PageWriter, Target},
    metrics::Metrics,
    AppState, Operation,
};

/// The binary's name: the `Function` of its metrics.
const FUNCTION: &str = env!("CARGO_PKG_NAME");

/// Answers `GET /`, `GET /messages` (`?limit=&order=&after=`) and `GET /messages/{id}`; `GET /`
/// from a client that prefers `text/html` gets the message wall instead of the JSON list.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let wall = page::is_root(&request) && page::prefers_html(&request);
    let mut metrics = if wall {
        Metrics::new(FUNCTION, Operation::Page)
    } else {
        Metrics::for_route(FUNCTION, &request, Operation::List, Operation::Read)
    };
    let result = serve(state, &request, wall, &mut metrics).await;
    let mut response = metrics.respond(&request, result);
    if page::is_root(&request) {
        // The same URL answers HTML or JSON depending on Accept: caches must keep both apart.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept"));
    }
    response
}

async fn serve(
    state: &AppState,
    request: &Request,
    wall: bool,
    metrics: &mut Metrics,
) -> ApiResult {
    http::require_method(request, Method::GET)?;
    match Target::of(request)? {
        Target::Collection if wall => Ok(page::wall()),
        Target::Collection => {
            let query = ListQuery::of(request)?;
            let mut page = PageWriter::new();
            let listed = metrics
                .store(
                    state
                        .store
                        .list_into(query.order, query.after, query.limit, &mut page),
                )
                .await?;
            let (messages, bytes) = page.counts();
            metrics.returned_counts(messages, bytes);
            metrics.skipped(listed.skipped);
            Ok(page.finish(listed.next))
        }
        Target::Message(id) => {
            let message = metrics.store(state.store.read(id)).await?;
            metrics.returned(std::slice::from_ref(&message));
            Ok(http::raw_message(message))
        }
    }
}
