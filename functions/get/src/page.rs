//! The message wall: the HTML page `GET /` answers to a browser, and the content negotiation that
//! decides who gets it.
//!
//! The page is one self-contained document compiled into the binary: its style and script are
//! inline, allowed by the Content-Security-Policy only through their SHA-256 hashes, which the
//! build script (`build.rs`) computes from the very bytes it embeds, so they cannot drift apart.

use lambda_http::{
    http::{header, HeaderValue, StatusCode},
    request::RequestContext,
    Body, Request, RequestExt, Response,
};

/// The page, assembled by the build script from `page/wall.{html,css,js}`.
pub const WALL_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/wall.html"));

/// The page's Content-Security-Policy: nothing but its own hashed script and style, requests to
/// its own origin, and the `data:` icon.
pub const WALL_CSP: &str = include_str!(concat!(env!("OUT_DIR"), "/wall-csp.txt"));

/// Whether a request is for the root route (`GET /`), the only one that can answer the page.
///
/// API Gateway and `cargo lambda watch` both name the matched route in `routeKey`; without one
/// (a `$default` route), the path decides.
pub fn is_root(request: &Request) -> bool {
    if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() {
        if let Some(route) = context.route_key.as_deref() {
            if let Some((_, path)) = route.split_once(' ') {
                return path == "/";
            }
        }
    }
    request.uri().path() == "/"
}

/// Whether the client prefers `text/html` to `application/json`, by its `Accept` headers.
///
/// Each media type gets the quality of the most specific range that matches it (`text/html`
/// before `text/*` before `*/*`, RFC 9110 section 12.5.1). HTML wins only with a strictly higher
/// quality: a browser's `text/html,…,*/*;q=0.8` gets the page, while no `Accept`, `*/*` (curl)
/// and `application/json` keep JSON.
pub fn prefers_html(request: &Request) -> bool {
    let ranges: Vec<MediaRange<'_>> = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(MediaRange::parse)
        .collect();
    let html = quality(&ranges, "text", "html");
    html > 0 && html > quality(&ranges, "application", "json")
}

/// One element of an `Accept` header, with its quality in thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    quality: u16,
}

impl<'a> MediaRange<'a> {
    /// Parses `type/subtype;param=value;q=0.5`; `None` for anything malformed (ignored, as a
    /// recipient may).
    fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !token(kind) || !token(subtype) || (kind == "*" && subtype != "*") {
            return None;
        }
        let mut quality = 1000;
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    quality = parse_quality(value.trim())?;
                }
            }
        }
        Some(Self {
            kind,
            subtype,
            quality,
        })
    }

    /// How specific the range is when it matches `kind/subtype`: `None` when it does not match.
    fn specificity(&self, kind: &str, subtype: &str) -> Option<u8> {
        let kind_matches = self.kind.eq_ignore_ascii_case(kind);
        let subtype_matches = self.subtype.eq_ignore_ascii_case(subtype);
        match (self.kind, self.subtype) {
            _ if kind_matches && subtype_matches => Some(2),
            (_, "*") if kind_matches => Some(1),
            ("*", "*") => Some(0),
            _ => None,
        }
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_quality(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The quality the client gives `kind/subtype`: that of the most specific matching range, 0 if
/// none matches (an absent or empty `Accept` matches nothing, so JSON stays the answer).
fn quality(ranges: &[MediaRange<'_>], kind: &str, subtype: &str) -> u16 {
    ranges
        .iter()
        .filter_map(|range| range.specificity(kind, subtype).map(|s| (s, range.quality)))
        .max_by_key(|&(specificity, _)| specificity)
        .map_or(0, |(_, quality)| quality)
}

/// `200` with the message wall and its security headers.
pub fn wall() -> Response<Body> {
    let mut response = Response::new(Body::Text(WALL_HTML.to_owned()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(WALL_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Like every answer: no other website loads it.
    headers.insert(
        shared::content_safety::CROSS_ORIGIN_RESOURCE_POLICY,
        HeaderValue::from_static(shared::content_safety::SAME_ORIGIN),
    );
    response
}
