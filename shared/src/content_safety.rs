//! Response headers that keep stored bytes inert on the API's origin.
//!
//! Anyone who may POST chooses a message's bytes and its Content-Type, and `GET /messages/{id}`
//! answers both unchanged. Served as they are, a `text/html` or SVG message with a script would
//! run in the reader's browser *on the API's origin*: a stored cross-site scripting hole. The
//! bytes and the Content-Type must stay exactly as posted (that is the API), so the defence is
//! in the headers around them:
//!
//! * `X-Content-Type-Options: nosniff`: the browser takes the Content-Type as given and never
//!   guesses HTML or script from the bytes.
//! * `Content-Security-Policy: default-src 'none'; sandbox`: whatever the browser renders loads
//!   nothing, runs no script and gets an opaque origin, so it can reach nothing of the API's.
//! * `Content-Disposition: attachment` for the types a browser renders as a document (HTML,
//!   XHTML, SVG, any XML, and a type that does not parse): downloaded, never opened in place.
//!
//! The JSON responses carry the same two headers: the API never serves anything a browser
//! should execute or interpret beyond the body's declared type.

use lambda_http::http::{header, HeaderMap, HeaderValue};

use crate::MessageId;

/// Stops browsers from guessing a type other than the declared one.
pub const NOSNIFF: &str = "nosniff";

/// Loads nothing, runs nothing, and puts a rendered document in an opaque origin.
pub const SANDBOX_POLICY: &str = "default-src 'none'; sandbox";

/// Adds `nosniff` and the sandboxing policy: for every response the API builds.
pub fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static(NOSNIFF),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX_POLICY),
    );
}

/// Hardens the response that carries message `id`'s stored bytes: [`harden`], and, when its
/// Content-Type is one a browser renders as a document, `Content-Disposition: attachment` with
/// the id as the file name (36 characters of `[0-9a-f-]`, so nothing to quote or escape).
pub fn harden_stored(headers: &mut HeaderMap, id: MessageId, content_type: &str) {
    harden(headers);
    if renders_as_document(content_type) {
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
}

/// Whether a browser would render `content_type` as a document that can run script or load
/// resources: HTML, XHTML, SVG, XML (`text/xml`, `application/xml`, any `+xml` suffix), XSL, and
/// `multipart/x-mixed-replace` (whose parts a browser renders as they come). A value that is not
/// a media type at all counts as one: a browser's reading of it cannot be predicted.
///
/// The type is read as the WHATWG MIME Sniffing standard parses it: surrounding whitespace
/// ignored, `type/subtype` before any `;` parameters, both tokens, case-insensitive.
pub fn renders_as_document(content_type: &str) -> bool {
    let Some((kind, subtype)) = essence(content_type) else {
        return true;
    };
    match (kind.as_str(), subtype.as_str()) {
        ("text", "html" | "xml" | "xsl")
        | ("application", "xml")
        | ("multipart", "x-mixed-replace") => true,
        (_, subtype) => subtype.ends_with("+xml"),
    }
}

/// The lowercased type and subtype of a media type, or `None` if it does not parse.
fn essence(content_type: &str) -> Option<(String, String)> {
    let (kind, rest) = content_type
        .trim_start_matches(is_http_whitespace)
        .split_once('/')?;
    let subtype = rest
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_end_matches(is_http_whitespace);
    let is_token = |s: &str| !s.is_empty() && s.bytes().all(is_token_byte);
    (is_token(kind) && is_token(subtype))
        .then(|| (kind.to_ascii_lowercase(), subtype.to_ascii_lowercase()))
}

fn is_http_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_types_are_recognised_however_they_are_written() {
        for content_type in [
            "text/html",
            "TEXT/HTML",
            "Text/Html; charset=utf-8",
            "text/html ; charset=utf-8",
            " \ttext/html\t;charset=utf-8",
            "text/html;",
            "application/xhtml+xml",
            "image/svg+xml",
            "IMAGE/SVG+XML; charset=utf-8",
            "text/xml",
            "application/xml",
            "application/rss+xml",
            "application/atom+xml; type=feed",
            "application/xslt+xml",
            "text/xsl",
            "multipart/x-mixed-replace; boundary=x",
            // Not a media type: a browser's reading cannot be predicted.
            "",
            "html",
            "text/",
            "/html",
            "text/html, text/plain",
            "text /html",
            "text/ht ml",
        ] {
            assert!(renders_as_document(content_type), "{content_type:?}");
        }
    }

    #[test]
    fn other_types_are_served_inline() {
        for content_type in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/json",
            "application/octet-stream",
            "image/png",
            "image/svg",
            "application/xml-dtd",
            "application/vnd.example+json",
            "text/html-sandboxed",
            "text/plain; note=\"text/html\"",
            "  application/json  ",
        ] {
            assert!(!renders_as_document(content_type), "{content_type:?}");
        }
    }

    #[test]
    fn stored_documents_become_attachments_named_by_their_id() {
        let id = MessageId::generate();
        let mut headers = HeaderMap::new();
        harden_stored(&mut headers, id, "image/svg+xml");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; sandbox"
        );
        assert_eq!(
            headers["content-disposition"],
            format!("attachment; filename=\"{id}\"")
        );

        let mut headers = HeaderMap::new();
        harden_stored(&mut headers, id, "text/plain");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.get("content-disposition").is_none());
    }
}
