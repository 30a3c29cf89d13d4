//! Stored messages are never active content on the API's origin: `GET /messages/{id}` fed real
//! API Gateway events, through the handler and through the whole adapter.

use get_messages::handle;
use lambda_http::{Body, Response};
use shared::{lambda, MessageId};
use test_support::{assert_error, json_of, Event, TestEnv};

const POLICY: &str = "default-src 'none'; sandbox";

async fn get_one(env: &TestEnv, id: MessageId) -> Response<Body> {
    let event = Event::fixture("get-message").with_path_id(&id.to_string());
    handle(&env.state, event.request()).await
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn documents_are_attachments_with_their_bytes_and_type_unchanged() {
    let env = TestEnv::new();
    let script = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    for content_type in [
        "text/html",
        "text/html; charset=utf-8",
        "TEXT/HTML",
        "application/xhtml+xml",
        "image/svg+xml",
        "Image/SVG+XML ; charset=utf-8",
        "text/xml",
        "application/xml",
        "application/rss+xml",
    ] {
        let id = env.state.store.publish(content_type, script).await.unwrap();
        let response = get_one(&env, id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), script, "{content_type}");
        assert_eq!(header(&response, "content-type"), Some(content_type));
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&response, "content-security-policy"), Some(POLICY));
        assert_eq!(
            header(&response, "content-disposition"),
            Some(format!("attachment; filename=\"{id}\"").as_str()),
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn other_types_are_inline_but_sandboxed_and_not_sniffed() {
    let env = TestEnv::new();
    for (content_type, body) in [
        (
            "text/plain; charset=utf-8",
            b"<script>alert(1)</script>".as_slice(),
        ),
        ("application/json", br#"{"a":"<b>"}"#),
        ("image/png", &[0x89, 0x50, 0x4e, 0x47]),
        ("application/octet-stream", b"<html><script>x</script>"),
    ] {
        let id = env.state.store.publish(content_type, body).await.unwrap();
        let response = get_one(&env, id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), body);
        assert_eq!(header(&response, "content-type"), Some(content_type));
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&response, "content-security-policy"), Some(POLICY));
        assert_eq!(
            header(&response, "content-disposition"),
            None,
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
        assert_eq!(header(response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(response, "content-security-policy"), Some(POLICY));
        assert_eq!(header(response, "content-disposition"), None);
    }
}
