//! The glue between the Lambda runtime and a handler.
//!
//! `lambda_http`'s own adapter panics on input API Gateway can deliver (a body marked base64
//! that is not, a `Host` header its URL parser rejects); a panic would reach the client as a bare
//! `500`, or kill the instance. This adapter takes the raw API Gateway HTTP API (payload 2.0)
//! event instead, builds the same `Request` without those panics, and answers a body it cannot
//! decode with a JSON `400`.
//!
//! Every answer it gives, the handler's or its own, carries `x-served-by` ([`ServedBy`]), so a
//! client can see which function and which instance of it answered.

use std::{future::Future, time::Duration};

use base64::Engine;
use lambda_http::{
    aws_lambda_events::{
        apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse},
        query_map::QueryMap,
    },
    http::{
        header::{COOKIE, SET_COOKIE},
        HeaderName, HeaderValue, Uri,
    },
    lambda_runtime::{self, LambdaEvent},
    request::RequestContext,
    service_fn, Body, Error, Request, RequestExt, Response,
};

use crate::{store::IO_CONCURRENCY, ApiError, AppState};

/// Sets up logging as Lambda's standard controls say (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL`): JSON in the cloud, text locally, INFO by default.
pub fn init_logging() {
    lambda_http::tracing::init_default_subscriber();
}

/// The async runtime every function runs on: one thread for the event loop (a Lambda instance
/// serves one request at a time, and at 128 MB has 7 % of one CPU) and a blocking pool for the
/// file system of at most [`IO_CONCURRENCY`] threads, kept alive between invocations so a warm
/// instance does not start them again for every page.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(IO_CONCURRENCY)
        .thread_keep_alive(Duration::from_secs(15 * 60))
        .build()
}

/// The response header that names the function and the instance that answered.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// Who answers: `<function>; instance=<id>`, the id short, random and fixed for the process, so
/// that a client sees which of several instances of a function served each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBy(HeaderValue);

impl ServedBy {
    /// The identity of this process, as `function` (the binary's name, e.g. `get-messages`)
    /// with a fresh random instance id of 8 hex digits.
    pub fn new(function: &str) -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self::with_instance(function, random.get(..8).unwrap_or(&random))
    }

    /// The identity with a given instance id (tests pin it).
    pub fn with_instance(function: &str, instance: &str) -> Self {
        let text = format!("{function}; instance={instance}");
        Self(
            HeaderValue::from_str(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown; instance=unknown")),
        )
    }

    /// The header value, `<function>; instance=<id>`.
    pub fn value(&self) -> &HeaderValue {
        &self.0
    }

    /// Adds the `x-served-by` header to an answer.
    pub fn stamp(&self, mut response: ApiGatewayV2httpResponse) -> ApiGatewayV2httpResponse {
        response.headers.insert(SERVED_BY, self.0.clone());
        response
    }
}

/// Runs the Lambda runtime loop as `function` (the binary's name), answering every invocation
/// with `handler` and stamping every answer with [`ServedBy`].
pub async fn serve<H, F>(function: &str, state: AppState, handler: H) -> Result<(), Error>
where
    H: Fn(&'static AppState, Request) -> F,
    F: Future<Output = Response<Body>>,
{
    // The state lives as long as the instance; leaking it once lets every invocation borrow it.
    let state: &'static AppState = Box::leak(Box::new(state));
    let served_by = &ServedBy::new(function);
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(served_by.stamp(answer(state, handler, event).await))
        },
    ))
    .await
}

/// Like [`serve`], for a function that also runs on a schedule: an EventBridge scheduled event
/// goes to `on_schedule` (its JSON result is the invocation's result), anything else is an API
/// Gateway request for `handler`. API Gateway events never have the scheduled event's top-level
/// `source`, so no HTTP caller can trigger the scheduled work.
pub async fn serve_with_schedule<H, F, S, G>(
    function: &str,
    state: AppState,
    handler: H,
    on_schedule: S,
) -> Result<(), Error>
where
    H: Fn(&'static AppState, Request) -> F,
    F: Future<Output = Response<Body>>,
    S: Fn(&'static AppState) -> G,
    G: Future<Output = serde_json::Value>,
{
    let state: &'static AppState = Box::leak(Box::new(state));
    let served_by = &ServedBy::new(function);
    let (handler, on_schedule) = (&handler, &on_schedule);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(dispatch(state, served_by, handler, on_schedule, event).await)
        },
    ))
    .await
}

/// Answers one invocation of a function that also runs on a schedule (see
/// [`serve_with_schedule`]): the scheduled work's result, or the API Gateway response as JSON,
/// stamped with `served_by`.
pub async fn dispatch<H, F, S, G>(
    state: &'static AppState,
    served_by: &ServedBy,
    handler: &H,
    on_schedule: &S,
    event: LambdaEvent<serde_json::Value>,
) -> serde_json::Value
where
    H: Fn(&'static AppState, Request) -> F,
    F: Future<Output = Response<Body>>,
    S: Fn(&'static AppState) -> G,
    G: Future<Output = serde_json::Value>,
{
    if is_scheduled(&event.payload) {
        return on_schedule(state).await;
    }
    let LambdaEvent { payload, context } = event;
    let response = match serde_json::from_value::<ApiGatewayV2httpRequest>(payload) {
        Ok(payload) => answer(state, handler, LambdaEvent { payload, context }).await,
        // Not an event this function is invoked with: refuse it like any malformed request.
        Err(_) => response_to_event(ApiError::InvalidBody.into_response()),
    };
    serde_json::to_value(served_by.stamp(response)).unwrap_or_default()
}

/// Whether an invocation is EventBridge's scheduled event (`"source": "aws.events"`,
/// `"detail-type": "Scheduled Event"`).
pub fn is_scheduled(event: &serde_json::Value) -> bool {
    event.get("source").and_then(serde_json::Value::as_str) == Some("aws.events")
        && event.get("detail-type").and_then(serde_json::Value::as_str) == Some("Scheduled Event")
}

/// Answers one invocation: event in, API Gateway response out. Never panics on the event.
pub async fn answer<H, F>(
    state: &'static AppState,
    handler: &H,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> ApiGatewayV2httpResponse
where
    H: Fn(&'static AppState, Request) -> F,
    F: Future<Output = Response<Body>>,
{
    let response = match request_from_event(event) {
        Ok(request) => handler(state, request).await,
        // The client's fault, and nothing was stored: no log line needed.
        Err(error) => error.into_response(),
    };
    response_to_event(response)
}

/// Builds the `http` request a handler sees from an API Gateway event.
///
/// This is `lambda_http`'s conversion, minus its panics: it decodes a base64 body itself (bad
/// base64 is a `400`), and it never parses the `Host` or `X-Forwarded-Proto` headers into a URL
/// (`lambda_http` unwraps that parse, so a hostile `Host` would kill the instance). Nothing
/// routes on the URI, so it is the raw path and query when they form one, else just `/`.
pub fn request_from_event(
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<Request, ApiError> {
    let LambdaEvent {
        payload: event,
        context,
    } = event;
    let body = match (event.body, event.is_base64_encoded) {
        (None, _) => Body::Empty,
        (Some(text), false) => Body::Text(text),
        (Some(encoded), true) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Body::Binary)
            .map_err(|_| ApiError::InvalidBody)?,
    };
    let raw_path = event.raw_path.unwrap_or_default();
    let raw_query = event.raw_query_string.unwrap_or_default();
    let mut headers = event.headers;
    // API Gateway moves the Cookie header into `cookies`; put it back, as lambda_http does.
    if let Some(cookies) = event.cookies {
        if let Ok(value) = HeaderValue::from_str(&cookies.join("; ")) {
            headers.insert(COOKIE, value);
        }
    }
    let mut request = Request::new(body);
    *request.method_mut() = event.request_context.http.method.clone();
    *request.uri_mut() = uri_of(&raw_path, &raw_query);
    *request.headers_mut() = headers;
    let query: QueryMap = raw_query.parse().unwrap_or_default();
    Ok(request
        .with_raw_http_path(raw_path)
        .with_query_string_parameters(query)
        .with_path_parameters(QueryMap::from(event.path_parameters))
        .with_stage_variables(QueryMap::from(event.stage_variables))
        .with_request_context(RequestContext::ApiGatewayV2(event.request_context))
        .with_lambda_context(context))
}

fn uri_of(path: &str, query: &str) -> Uri {
    let path_and_query = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    path_and_query
        .parse()
        .or_else(|_| path.parse())
        .unwrap_or_else(|_| Uri::from_static("/"))
}

/// Turns a handler's response into an API Gateway HTTP API (payload 2.0) response.
pub fn response_to_event(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok().map(str::to_owned))
        .collect();
    headers.remove(SET_COOKIE);
    // A binary body is serialised as base64, which the flag tells API Gateway to decode.
    let (body, is_base64_encoded) = match body {
        Body::Empty => (None, false),
        text @ Body::Text(_) => (Some(text), false),
        binary @ Body::Binary(_) => (Some(binary), true),
        _ => (None, false),
    };
    let mut event = ApiGatewayV2httpResponse::default();
    event.status_code = i64::from(parts.status.as_u16());
    event.headers = headers;
    event.cookies = cookies;
    event.body = body;
    event.is_base64_encoded = is_base64_encoded;
    event
}
