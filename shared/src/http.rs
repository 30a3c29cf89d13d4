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
    content_safety, format::MAX_CONTENT_TYPE_LEN, store::Order, ApiError, Message, MessageId, Page,
};

/// The Content-Type of a message posted without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// The largest page a client may ask for.
pub const MAX_PAGE_LIMIT: usize = 1000;

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
/// [`DEFAULT_CONTENT_TYPE`] when there is none.
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
    if text.is_empty() || text.len() > MAX_CONTENT_TYPE_LEN {
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

#[derive(Serialize)]
struct Listing<'a> {
    messages: Vec<ListedMessage<'a>>,
    next: Option<MessageId>,
}

/// `200` with a page of messages: UTF-8 bodies as text, anything else as base64.
pub fn page(page: &Page) -> Response<Body> {
    let messages = page
        .messages
        .iter()
        .map(|message| {
            let (body, body_encoding) = match std::str::from_utf8(&message.body) {
                Ok(text) => (text.to_owned(), "utf8"),
                Err(_) => (
                    base64::engine::general_purpose::STANDARD.encode(&message.body),
                    "base64",
                ),
            };
            ListedMessage {
                summary: MessageSummary::new(message.id, message.body.len(), &message.content_type),
                body,
                body_encoding,
            }
        })
        .collect();
    json_response(
        StatusCode::OK,
        &Listing {
            messages,
            next: page.next,
        },
    )
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
