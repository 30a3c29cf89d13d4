//! Stored messages are never active content on the API's origin: `GET /messages/{id}` fed real
//! API Gateway events, through the handler and through the whole adapter.

use get_messages::handle;
use lambda_http::{Body, Response};
use shared::{format, lambda, MessageId};
use test_support::{assert_error, json_of, Event, TestEnv};

const POLICY: &str = "default-src 'none'; sandbox";

async fn get_one(env: &TestEnv, id: MessageId) -> Response<Body> {
    let event = Event::fixture("get-message").with_path_id(&id.to_string());
    handle(&env.state, event.request()).await
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Every answer's three headers: no sniffing, the sandbox, no other origin.
fn assert_hardened(response: &Response<Body>, what: &str) {
    assert_eq!(
        header(response, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        header(response, "content-security-policy"),
        Some(POLICY),
        "{what}"
    );
    assert_eq!(
        header(response, "cross-origin-resource-policy"),
        Some("same-origin"),
        "{what}"
    );
}

#[tokio::test]
async fn only_allowlisted_types_are_inline_everything_else_an_attachment() {
    let env = TestEnv::new();
    let markup = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    let cases: [(&str, &[u8], bool); 21] = [
        (
            "text/plain; charset=utf-8",
            b"<script>alert(1)</script>",
            true,
        ),
        ("TEXT/PLAIN", b"plain", true),
        ("application/json", br#"{"a":"<b>"}"#, true),
        ("image/png", &[0x89, 0x50, 0x4e, 0x47], true),
        ("image/jpeg", &[0xff, 0xd8, 0xff], true),
        ("image/gif", b"GIF89a", true),
        ("image/webp", b"RIFF", true),
        ("image/avif", b"....ftypavif", true),
        ("text/html", markup, false),
        ("text/html; charset=utf-8", markup, false),
        ("application/xhtml+xml", markup, false),
        ("image/svg+xml", markup, false),
        ("Image/SVG+XML ; charset=utf-8", markup, false),
        ("text/xml", markup, false),
        ("application/xml", markup, false),
        ("application/rss+xml", markup, false),
        ("text/javascript", b"document.title='ran'", false),
        ("application/javascript", b"document.title='ran'", false),
        ("text/css", b"body{}", false),
        ("application/pdf", b"%PDF-1.7", false),
        (
            "application/octet-stream",
            b"<html><script>x</script>",
            false,
        ),
    ];
    for (content_type, body, inline) in cases {
        let id = env.state.store.publish(content_type, body).await.unwrap();
        let response = get_one(&env, id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), body, "{content_type}");
        assert_eq!(header(&response, "content-type"), Some(content_type));
        assert_hardened(&response, content_type);
        let attachment = format!("attachment; filename=\"{id}\"");
        assert_eq!(
            header(&response, "content-disposition"),
            (!inline).then_some(attachment.as_str()),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn a_stored_list_of_types_is_an_attachment() {
    // Stored before POST refused lists (or written by anything else): served as an attachment,
    // whatever its first type says, with its Content-Type as stored.
    let env = TestEnv::new();
    for content_type in [
        "text/plain;a=b,text/html",
        "text/plain; charset=utf-8, text/html",
        "application/json;x=1,image/svg+xml",
    ] {
        let id = MessageId::generate();
        let path = env.state.store.message_path(id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format::encode(content_type, b"<p>spoof</p>")).unwrap();
        let response = get_one(&env, id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), Some(content_type));
        assert_hardened(&response, content_type);
        assert_eq!(
            header(&response, "content-disposition"),
            Some(format!("attachment; filename=\"{id}\"").as_str()),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn the_headers_reach_api_gateway_through_the_adapter() {
    let env = TestEnv::new();
    let id = env
        .state
        .store
        .publish("text/html", b"<h1>hi</h1>")
        .await
        .unwrap();
    let event = Event::fixture("get-message").with_path_id(&id.to_string());
    let response = lambda::answer(env.leaked_state(), &handle, event.invocation()).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(response.headers["content-type"], "text/html");
    assert_eq!(response.headers["x-content-type-options"], "nosniff");
    assert_eq!(response.headers["content-security-policy"], POLICY);
    assert_eq!(
        response.headers["cross-origin-resource-policy"],
        "same-origin"
    );
    assert_eq!(
        response.headers["content-disposition"],
        format!("attachment; filename=\"{id}\"")
    );
}

#[tokio::test]
async fn errors_and_listings_are_json_with_nosniff_and_the_policy() {
    let env = TestEnv::new();
    env.state
        .store
        .publish("text/html", b"<b>listed</b>")
        .await
        .unwrap();
    let unknown = MessageId::generate();
    let responses = [
        get_one(&env, unknown).await,
        handle(
            &env.state,
            Event::fixture("get-message").with_path_id("..").request(),
        )
        .await,
        handle(&env.state, Event::fixture("get-messages").request()).await,
        handle(&env.state, Event::fixture("get-root").request()).await,
    ];
    assert_error(&responses[0], 404, "not_found");
    assert_error(&responses[1], 400, "invalid_id");
    assert_eq!(json_of(&responses[2]).0, 200);
    assert_eq!(json_of(&responses[3]).0, 200);
    for response in &responses {
        assert_eq!(header(response, "content-type"), Some("application/json"));
        assert_hardened(response, "a JSON answer");
        assert_eq!(header(response, "content-disposition"), None);
    }
}
