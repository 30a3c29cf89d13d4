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
    http::{self, ApiResult, ListQuery, Target},
    AppState,
};

/// Answers `GET /`, `GET /messages` (`?limit=&after=`) and `GET /messages/{id}`; `GET /` from a
/// client that prefers `text/html` gets the message wall instead of the JSON list.
pub async fn handle(state: &AppState, request: Request) -> Response<Body> {
    let result = serve(state, &request).await;
    let mut response = http::respond(&request, result);
    if page::is_root(&request) {
        // The same URL answers HTML or JSON depending on Accept: caches must keep both apart.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept"));
    }
    response
}

async fn serve(state: &AppState, request: &Request) -> ApiResult {
    http::require_method(request, Method::GET)?;
    match Target::of(request)? {
        Target::Collection if page::is_root(request) && page::prefers_html(request) => {
            Ok(page::wall())
        }
        Target::Collection => {
            let query = ListQuery::of(request)?;
            let page = state.store.list(query.after, query.limit).await?;
            Ok(http::page(&page))
        }
        Target::Message(id) => Ok(http::raw_message(state.store.read(id).await?)),
    }
}
