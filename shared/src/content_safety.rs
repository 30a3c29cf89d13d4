//! What keeps stored bytes inert on the API's origin, and on every other origin.
//!
//! Anyone who may POST chooses a message's bytes and its Content-Type, and `GET /messages/{id}`
//! answers both unchanged. Served as they are, a `text/html` or SVG message would be a page *on
//! the API's origin*, a `text/javascript` one a script any website could embed. The bytes and the
//! Content-Type must stay exactly as posted (that is the API), so the defence is what is accepted
//! and the headers around what is served:
//!
//! * **One media type, or nothing.** A POST's Content-Type must be exactly one media type with
//!   optional parameters (RFC 9110: `type/subtype *( OWS ";" OWS name=value )`), else `400
//!   invalid_content_type`. A comma list (`text/plain, text/html`, or two Content-Type headers,
//!   which API Gateway joins with a comma) is refused: browsers take the last type of such a
//!   list, so no check of the first could be trusted.
//! * **Inline only by allowlist.** A stored message is shown in place only if its type is one a
//!   browser never treats as a document or a script: [`INLINE`] (plain text, JSON, raster
//!   images). Every other type, and any stored value that does not parse, is sent with
//!   `Content-Disposition: attachment`: downloaded, never rendered. PDF is not on the list: a PDF
//!   viewer is a document with its own scripts and links, and Chromium will not run it inside the
//!   sandbox below anyway.
//! * `X-Content-Type-Options: nosniff`: the browser takes the Content-Type as given and never
//!   guesses HTML or script from the bytes.
//! * `Content-Security-Policy: default-src 'none'; sandbox`: whatever the browser renders loads
//!   nothing, runs no script and gets an opaque origin.
//! * `Cross-Origin-Resource-Policy: same-origin`: no other website can embed a message (as a
//!   `<script>`, an `<img>`, anything loaded without CORS): a public deployment is not free script
//!   or file hosting.
//!
//! The JSON responses carry the same three headers.

use lambda_http::http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::MessageId;

/// Stops browsers from guessing a type other than the declared one.
pub const NOSNIFF: &str = "nosniff";

/// Loads nothing, runs nothing, and puts a rendered document in an opaque origin.
pub const SANDBOX_POLICY: &str = "default-src 'none'; sandbox";

/// Only this origin may load a response (browsers refuse it to other origins' no-CORS loads).
pub const SAME_ORIGIN: &str = "same-origin";

/// `Cross-Origin-Resource-Policy`.
pub const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");

/// The types served inline (type, subtype; parameters do not matter): ones a browser shows as
/// text or as an image, never as a document that could link, load or run anything.
pub const INLINE: [(&str, &str); 7] = [
    ("text", "plain"),
    ("application", "json"),
    ("image", "png"),
    ("image", "jpeg"),
    ("image", "gif"),
    ("image", "webp"),
    ("image", "avif"),
];

/// Adds `nosniff`, the sandboxing policy and `same-origin`: for every response the API builds.
pub fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static(NOSNIFF),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX_POLICY),
    );
    headers.insert(
        CROSS_ORIGIN_RESOURCE_POLICY,
        HeaderValue::from_static(SAME_ORIGIN),
    );
}

/// Hardens the response that carries message `id`'s stored bytes: [`harden`], and, unless its
/// Content-Type is on the [`INLINE`] allowlist, `Content-Disposition: attachment` with the id as
/// the file name (36 characters of `[0-9a-f-]`, so nothing to quote or escape).
pub fn harden_stored(headers: &mut HeaderMap, id: MessageId, content_type: &str) {
    harden(headers);
    if !is_inline(content_type) {
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
}

/// Whether a message of `content_type` may be shown in place: exactly one media type whose
/// type and subtype (case-insensitive) are on the [`INLINE`] allowlist.
pub fn is_inline(content_type: &str) -> bool {
    media_type(content_type).is_some_and(|(kind, subtype)| {
        INLINE
            .iter()
            .any(|(k, s)| kind.eq_ignore_ascii_case(k) && subtype.eq_ignore_ascii_case(s))
    })
}

/// The type and subtype of `value` if it is exactly one media type with optional parameters
/// (RFC 9110 section 8.3.1), surrounding whitespace allowed; `None` for anything else: a list,
/// a stray character, an unterminated quoted string, a parameter without a value.
pub fn media_type(value: &str) -> Option<(&str, &str)> {
    let value = value.trim_matches(is_whitespace);
    let (kind, rest) = value.split_once('/')?;
    let subtype_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
    let (subtype, mut rest) = rest.split_at(subtype_end);
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    // parameters = *( OWS ";" OWS [ parameter ] ), parameter = token "=" ( token / quoted )
    loop {
        rest = rest.trim_start_matches(is_whitespace);
        if rest.is_empty() {
            return Some((kind, subtype));
        }
        rest = rest.strip_prefix(';')?.trim_start_matches(is_whitespace);
        if rest.is_empty() || rest.starts_with(';') {
            continue;
        }
        let name_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_end);
        if name.is_empty() {
            return None;
        }
        rest = after.strip_prefix('=')?;
        rest = match rest.strip_prefix('"') {
            Some(quoted) => skip_quoted(quoted)?,
            None => {
                let end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
                if end == 0 {
                    return None;
                }
                &rest[end..]
            }
        };
    }
}

/// What follows a quoted string's closing quote (`text` starts after its opening one).
fn skip_quoted(text: &str) -> Option<&str> {
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(&text[i + 1..]),
            // quoted-pair: a backslash and any visible character, space or tab.
            '\\' => match chars.next() {
                Some((_, c)) if c == '\t' || c == ' ' || c.is_ascii_graphic() => {}
                _ => return None,
            },
            c if c == '\t' || c == ' ' || c.is_ascii_graphic() => {}
            _ => return None,
        }
    }
    None
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t')
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// RFC 9110 `tchar`.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_media_type_with_parameters_parses() {
        for (value, expected) in [
            ("text/plain", ("text", "plain")),
            ("Text/Plain", ("Text", "Plain")),
            ("text/plain; charset=utf-8", ("text", "plain")),
            (
                "  text/plain ;charset=utf-8 ; format=flowed  ",
                ("text", "plain"),
            ),
            ("text/plain;", ("text", "plain")),
            ("text/plain;;a=b", ("text", "plain")),
            (
                "application/json; x=\"a,b;c\\\"d\"",
                ("application", "json"),
            ),
            ("application/vnd.api+json", ("application", "vnd.api+json")),
            ("image/svg+xml", ("image", "svg+xml")),
        ] {
            assert_eq!(media_type(value), Some(expected), "{value:?}");
        }
    }

    #[test]
    fn lists_and_bad_grammar_do_not_parse() {
        for value in [
            "",
            "text",
            "text/",
            "/plain",
            "text/plain,text/html",
            "text/plain;a=b,text/html",
            "text/plain; charset=utf-8, text/html",
            "application/json;x=1,image/svg+xml",
            "text/plain, text/plain",
            "text/plain text/html",
            "text/plain; charset",
            "text/plain; charset=",
            "text/plain; =utf-8",
            "text/plain; a=\"unterminated",
            "text/plain; a=b c",
            "text/pl@in",
            "te xt/plain",
            "text/plain/html",
            "text/plain\u{0}",
        ] {
            assert_eq!(media_type(value), None, "{value:?}");
        }
    }

    #[test]
    fn only_allowlisted_types_are_inline() {
        for inline in [
            "text/plain",
            "TEXT/PLAIN; charset=utf-8",
            "application/json",
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "image/avif",
        ] {
            assert!(is_inline(inline), "{inline}");
        }
        for attachment in [
            "text/html",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/xml",
            "text/javascript",
            "application/javascript",
            "text/css",
            "application/pdf",
            "application/octet-stream",
            "multipart/x-mixed-replace; boundary=x",
            "video/mp4",
            "text/plain;a=b,text/html",
            "not a type",
            "",
        ] {
            assert!(!is_inline(attachment), "{attachment}");
        }
    }

    #[test]
    fn stored_messages_are_attachments_unless_allowlisted_and_never_embeddable() {
        let id = MessageId::generate();
        let mut headers = HeaderMap::new();
        harden_stored(&mut headers, id, "text/javascript");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; sandbox"
        );
        assert_eq!(headers["cross-origin-resource-policy"], "same-origin");
        assert_eq!(
            headers["content-disposition"],
            format!("attachment; filename=\"{id}\"")
        );

        let mut headers = HeaderMap::new();
        harden_stored(&mut headers, id, "text/plain");
        assert_eq!(headers["cross-origin-resource-policy"], "same-origin");
        assert!(headers.get("content-disposition").is_none());
    }
}
