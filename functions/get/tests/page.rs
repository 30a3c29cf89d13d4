//! Content negotiation of `GET /` and the message wall's headers, on real API Gateway events.

use get_messages::{
    handle,
    page::{prefers_html, WALL_CSP, WALL_HTML},
};
use lambda_http::{
    http::{header, HeaderValue},
    Body, Request,
};
use test_support::{json_of, Event, TestEnv};

/// Chromium's Accept for a navigation.
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

fn accepting(accepts: &[&str]) -> Request {
    let mut request = Request::new(Body::Empty);
    for accept in accepts {
        request
            .headers_mut()
            .append(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
    }
    request
}

fn root(accept: Option<&str>) -> Event {
    Event::fixture("get-root").with_header("accept", accept)
}

#[tokio::test]
async fn a_browser_at_the_root_gets_the_wall_with_its_security_headers() {
    let env = TestEnv::new();
    env.state.store.publish("text/plain", b"hi").await.unwrap();
    let response = handle(&env.state, root(Some(BROWSER)).request()).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-security-policy"], WALL_CSP);
    assert_eq!(headers["vary"], "accept");
    let body = std::str::from_utf8(response.body().as_ref()).unwrap();
    assert_eq!(body, WALL_HTML);
    assert!(body.starts_with("<!doctype html>"));
    assert!(
        !body.contains("hi\n"),
        "the page holds no message: it fetches them"
    );
}

#[tokio::test]
async fn curl_json_clients_and_the_messages_route_keep_json() {
    let env = TestEnv::new();
    let events = [
        root(None),
        root(Some("*/*")),
        root(Some("application/json")),
        root(Some("text/html;q=0.5, application/json")),
        // /messages never answers the page, whatever the client prefers.
        Event::fixture("get-messages")
            .with_query("")
            .with_header("accept", Some(BROWSER)),
    ];
    for event in events {
        let response = handle(&env.state, event.request()).await;
        assert_eq!(response.headers()["content-type"], "application/json");
        let (status, body) = json_of(&response);
        assert_eq!(status, 200);
        assert_eq!(body, serde_json::json!({ "messages": [], "next": null }));
    }
    let response = handle(&env.state, root(None).request()).await;
    assert_eq!(
        response.headers()["vary"],
        "accept",
        "the root's JSON varies too"
    );
}

#[tokio::test]
async fn a_browser_opening_one_message_gets_the_message_not_the_page() {
    let env = TestEnv::new();
    let id = env
        .state
        .store
        .publish("text/plain", b"just text")
        .await
        .unwrap();
    let event = Event::fixture("get-message")
        .with_path_id(&id.to_string())
        .with_header("accept", Some(BROWSER));
    let response = handle(&env.state, event.request()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"just text");
    assert_eq!(response.headers()["content-type"], "text/plain");
}

#[tokio::test]
async fn the_wall_needs_no_storage() {
    // The page is in the binary: it loads even when the file system is not there, and then
    // its own requests show the 503.
    let env = TestEnv::new();
    let state = env.unmounted();
    let response = handle(&state, root(Some(BROWSER)).request()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
}

#[test]
fn browsers_get_html() {
    for accept in [
        BROWSER,
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "text/html",
        "TEXT/HTML",
        "text/*",
        "application/json;q=0.5, text/html",
        "text/html;level=1;q=1.0, application/json;q=0.999",
        "text/html ; q=0.9 , application/json ; q=0.8",
    ] {
        assert!(prefers_html(&accepting(&[accept])), "{accept}");
    }
    assert!(prefers_html(&accepting(&[
        "application/json;q=0.1",
        "text/html"
    ])));
}

#[test]
fn everyone_else_keeps_json() {
    for accept in [
        "*/*",
        "application/json",
        "application/json, text/html",
        "text/html;q=0.5, application/json",
        "text/html;q=0, */*",
        "text/*;q=0.5, */*",
        "",
        "text/html;q=2",
        "text/html;q=1.5",
        "text/html;q=0.0001",
        "text/html;q=abc",
        "text/html;q=",
        "*/html",
        "html",
        "image/png",
        "text/plain",
    ] {
        assert!(!prefers_html(&accepting(&[accept])), "{accept:?}");
    }
    assert!(!prefers_html(&accepting(&[])));
}

#[test]
fn the_most_specific_range_sets_the_quality() {
    // text/html is refused explicitly even though text/* is welcome.
    assert!(!prefers_html(&accepting(&["text/*, text/html;q=0"])));
    // application/json is refused explicitly; */* alone would have tied with HTML.
    assert!(prefers_html(&accepting(&["*/*, application/json;q=0"])));
    // q-values in thousandths: 0.801 beats 0.8.
    assert!(prefers_html(&accepting(&[
        "text/html;q=0.801, application/json;q=0.8"
    ])));
    assert!(!prefers_html(&accepting(&[
        "text/html;q=0.8, application/json;q=0.8"
    ])));
}

#[test]
fn the_csp_allows_exactly_the_hashed_inline_code() {
    assert!(WALL_CSP.starts_with("default-src 'none';"), "{WALL_CSP}");
    assert_eq!(WALL_CSP.matches("'sha256-").count(), 2, "{WALL_CSP}");
    for forbidden in ["unsafe-inline", "unsafe-eval", "http:", "https:", "*"] {
        assert!(!WALL_CSP.contains(forbidden), "{forbidden} in {WALL_CSP}");
    }
    for directive in [
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(WALL_CSP.contains(directive), "{directive} in {WALL_CSP}");
    }
    assert_eq!(WALL_HTML.matches("<script>").count(), 1);
    assert_eq!(WALL_HTML.matches("<style>").count(), 1);
    assert!(!WALL_HTML.contains("innerHTML"));
    assert!(!WALL_HTML.contains("insertAdjacentHTML"));
    assert!(
        !WALL_HTML.contains("style=\""),
        "style attributes would need 'unsafe-hashes'"
    );
    for external in ["src=\"http", "href=\"http", "//cdn", "@import"] {
        assert!(
            !WALL_HTML.contains(external),
            "{external}: the page is self-contained"
        );
    }
}
