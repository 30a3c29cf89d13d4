//! The HTTP side shared by the three functions: reading ids, queries and bodies out of a request,
//! building JSON responses, and turning a handler's result into the response it owes.

use base64::Engine;
use lambda_http::{
    http::{header, HeaderValue, Method, StatusCode},
    request::RequestContext,
    Body, Request, RequestExt, Response,
};
use serde::Serialize;

use crate::{
    content_safety,
    format::MAX_CONTENT_TYPE_LEN,
    store::{Order, PageSink},
    ApiError, Message, MessageId,
};

/// The Content-Type of a message posted without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// The largest page a client may ask for.
pub const MAX_PAGE_LIMIT: usize = 1000;
/// The largest response a function may give: Lambda's limit on a synchronous invocation's
/// response, which is the whole API Gateway response document, the body JSON-escaped inside it.
pub const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
/// What a page's messages may take in that document, leaving room for the status, the headers
/// and the envelope.
pub const PAGE_BUDGET: usize = RESPONSE_LIMIT - 256 * 1024;

/// A handler's outcome before it becomes a response.
pub type ApiResult = Result<Response<Body>, ApiError>;

/// Which resource a request is about: the whole collection (`/`, `/messages`) or one message
/// (`/messages/{id}`). The route's path parameter decides, as both API Gateway and
/// `cargo lambda watch` fill it in from the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Collection,
    Message(MessageId),
}

impl Target {
    /// Reads the target from the `id` path parameter, validating it before it can touch a path.
    pub fn of(request: &Request) -> Result<Self, ApiError> {
        match request.path_parameters_ref().and_then(|p| p.first("id")) {
            None => Ok(Self::Collection),
            Some(id) => MessageId::parse(id)
                .map(Self::Message)
                .map_err(|_| ApiError::InvalidId),
        }
    }
}

/// Refuses a method this function does not serve (the route table should never send one).
pub fn require_method(request: &Request, method: Method) -> Result<(), ApiError> {
    if request.method() == method {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// The query of `GET /messages`: `limit` (1..=1000, default 100), `order` (`asc`, the default,
/// oldest first; `desc`, newest first) and `after` (an exclusive id cursor in that order). A
/// parameter given more than once is ambiguous and rejected; unknown ones are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub order: Order,
    pub after: Option<MessageId>,
}

impl ListQuery {
    /// Parses the query string of `request`.
    pub fn of(request: &Request) -> Result<Self, ApiError> {
        let params = request.query_string_parameters_ref();
        let single = |name: &str| -> Result<Option<&str>, ApiError> {
            match params.and_then(|p| p.all(name)).as_deref() {
                None | Some([]) => Ok(None),
                Some([value]) => Ok(Some(*value)),
                Some(_) => Err(ApiError::InvalidQuery(format!(
                    "The query parameter {name} may be given only once."
                ))),
            }
        };
        let limit = match single("limit")? {
            None => DEFAULT_PAGE_LIMIT,
            Some(raw) => parse_limit(raw).ok_or_else(|| {
                ApiError::InvalidQuery(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE_LIMIT}."
                ))
            })?,
        };
        let order = match single("order")? {
            None | Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(_) => {
                return Err(ApiError::InvalidQuery(
                    "order must be asc (oldest first) or desc (newest first).".into(),
                ))
            }
        };
        let after = single("after")?
            .map(|raw| {
                MessageId::parse(raw).map_err(|_| {
                    ApiError::InvalidQuery("after must be a message id (a UUID version 7).".into())
                })
            })
            .transpose()?;
        Ok(Self {
            limit,
            order,
            after,
        })
    }
}

/// Plain decimal digits only: no sign, exponent, space or leading `+`.
fn parse_limit(raw: &str) -> Option<usize> {
    if raw.is_empty() || raw.len() > 4 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse()
        .ok()
        .filter(|n| (1..=MAX_PAGE_LIMIT).contains(n))
}

/// The Content-Type to keep with a posted message: the header as sent, or
/// [`DEFAULT_CONTENT_TYPE`] when there is none. It must be exactly one media type
/// ([`content_safety::media_type`]): a list (a comma, or the header twice) is refused, since a
/// browser would read its last type.
pub fn message_content_type(request: &Request) -> Result<&str, ApiError> {
    let invalid = || ApiError::InvalidContentType {
        max: MAX_CONTENT_TYPE_LEN,
    };
    let mut values = request.headers().get_all(header::CONTENT_TYPE).iter();
    let Some(value) = values.next() else {
        return Ok(DEFAULT_CONTENT_TYPE);
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text.is_empty()
        || text.len() > MAX_CONTENT_TYPE_LEN
        || content_safety::media_type(text).is_none()
    {
        return Err(invalid());
    }
    Ok(text)
}

/// The id that ties log lines to one request: API Gateway's request id where there is one (it is
/// in the access log too), else the Lambda invocation's.
pub fn request_id(request: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() {
        if let Some(id) = &context.request_id {
            return id.clone();
        }
    }
    request
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .unwrap_or_default()
}

/// Turns a handler's result into its response, logging server-side failures with the request id.
pub fn respond(request: &Request, result: ApiResult) -> Response<Body> {
    result.unwrap_or_else(|error| {
        if error.is_server_error() {
            let source = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_default();
            lambda_http::tracing::error!(
                request_id = %request_id(request),
                method = %request.method(),
                path = %request.uri().path(),
                code = error.code(),
                error = %source,
                "request failed on the server side"
            );
        }
        error.into_response()
    })
}

/// A JSON response with `status`, hardened like every response ([`content_safety::harden`]).
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    // Serialising our own plain structs and `json!` values cannot fail.
    let body = serde_json::to_string(value).unwrap_or_default();
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    content_safety::harden(response.headers_mut());
    response
}

/// The metadata of a message, as POST returns it and each listed message carries.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSummary<'a> {
    pub id: MessageId,
    pub created_at: String,
    pub size: usize,
    pub content_type: &'a str,
}

impl<'a> MessageSummary<'a> {
    pub fn new(id: MessageId, size: usize, content_type: &'a str) -> Self {
        Self {
            id,
            created_at: id.created_at_rfc3339(),
            size,
            content_type,
        }
    }
}

/// `201 Created` for a new message, with its `Location`.
pub fn created(summary: &MessageSummary<'_>) -> Response<Body> {
    let mut response = json_response(StatusCode::CREATED, summary);
    if let Ok(location) = HeaderValue::from_str(&format!("/messages/{}", summary.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedMessage<'a> {
    #[serde(flatten)]
    summary: MessageSummary<'a>,
    body: String,
    body_encoding: &'static str,
}

/// A page of `GET /messages`, written as its messages are read (the store hands them over one
/// at a time): each message is encoded at once and its bytes dropped, and the page ends early,
/// with `next`, before it would take more than [`PAGE_BUDGET`] in the function's response. So a
/// page's memory is its response, not its messages, and no page breaks Lambda's 6 MB limit,
/// whatever was posted (a body of control characters is six times larger once JSON-escaped, and
/// escaped again in the response document). The first message is always taken: the largest
/// message fits alone (`MAX_MESSAGE_BYTES` is bounded for that, config.rs).
#[derive(Debug)]
pub struct PageWriter {
    json: String,
    messages: usize,
    body_bytes: usize,
    /// The size of `json` once escaped into the response document.
    encoded: usize,
}

impl Default for PageWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PageWriter {
    pub fn new() -> Self {
        let json = String::from("{\"messages\":[");
        let encoded = escaped_len(&json);
        Self {
            json,
            messages: 0,
            body_bytes: 0,
            encoded,
        }
    }

    /// How many messages the page holds, and the bytes of their bodies.
    pub fn counts(&self) -> (usize, usize) {
        (self.messages, self.body_bytes)
    }

    /// `200` with the page and `next`, the cursor for the next page.
    pub fn finish(mut self, next: Option<MessageId>) -> Response<Body> {
        self.json.push_str("],\"next\":");
        self.json
            .push_str(&serde_json::to_string(&next).unwrap_or_else(|_| "null".into()));
        self.json.push('}');
        let mut response = Response::new(Body::Text(self.json));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        content_safety::harden(response.headers_mut());
        response
    }
}

impl PageSink for PageWriter {
    fn offer(&mut self, message: Message) -> bool {
        let (body, body_encoding) = match std::str::from_utf8(&message.body) {
            Ok(text) => (text.to_owned(), "utf8"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&message.body),
                "base64",
            ),
        };
        let listed = ListedMessage {
            summary: MessageSummary::new(message.id, message.body.len(), &message.content_type),
            body,
            body_encoding,
        };
        // Serialising our own plain struct cannot fail.
        let text = serde_json::to_string(&listed).unwrap_or_default();
        let cost = escaped_len(&text) + 1;
        if self.messages > 0 && self.encoded + cost > PAGE_BUDGET {
            return false;
        }
        if self.messages > 0 {
            self.json.push(',');
        }
        self.json.push_str(&text);
        self.encoded += cost;
        self.messages += 1;
        self.body_bytes += message.body.len();
        true
    }

    fn room(&self) -> usize {
        PAGE_BUDGET.saturating_sub(self.encoded)
    }
}

/// The length of JSON `text` once it is itself a JSON string in the response document: every
/// quote and backslash gains a backslash (our JSON holds no raw control characters).
fn escaped_len(text: &str) -> usize {
    text.len() + text.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// `200` with one message's stored bytes and its Content-Type, never active content on the
/// API's origin ([`content_safety::harden_stored`]).
pub fn raw_message(message: Message) -> Response<Body> {
    let content_type = HeaderValue::from_str(&message.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    let mut response = Response::new(Body::Binary(message.body));
    content_safety::harden_stored(response.headers_mut(), message.id, &message.content_type);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
