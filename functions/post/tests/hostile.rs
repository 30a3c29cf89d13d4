//! Hostile bodies through the whole adapter (`lambda::answer`), as the runtime delivers them.

use post_message::handle;
use test_support::{Event, TestEnv};

async fn answer(env: &TestEnv, event: &Event) -> (i64, serde_json::Value) {
    test_support::answer(env, &handle, event).await
}

#[tokio::test]
async fn bodies_at_and_over_the_limit_through_base64() {
    let env = TestEnv::new();
    let at = vec![0xfe; 262_144];
    let (status, body) = answer(
        &env,
        &Event::fixture("post-message-binary").with_body(&at, Some("application/octet-stream")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"], 262_144);
    let over = vec![0xfe; 262_145];
    let (status, body) = answer(
        &env,
        &Event::fixture("post-message-binary").with_body(&over, Some("application/octet-stream")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("message_too_large"))
    );
    // Far over the limit (Lambda accepts up to 6 MB): refused the same way, nothing stored.
    let huge = vec![b'a'; 5 << 20];
    let (status, _) = answer(
        &env,
        &Event::fixture("post-message-text").with_body(&huge, Some("text/plain")),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(env.files().len(), 1);
}

#[tokio::test]
async fn invalid_base64_in_every_shape_is_400_invalid_body() {
    let env = TestEnv::new();
    for encoded in [
        "!!!!",
        "abc",
        "a===",
        "YWJj\u{0}",
        "4pyT4pyT4pyT=x",
        "%%%%",
        "\u{1F600}",
    ] {
        let mut event = Event::fixture("post-message-binary");
        event.0["body"] = encoded.into();
        let (status, body) = answer(&env, &event).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{encoded:?}"
        );
    }
    assert!(env.files().is_empty());
    // And the instance goes on serving.
    assert_eq!(
        answer(&env, &Event::fixture("post-message-binary")).await.0,
        201
    );
}

#[tokio::test]
async fn empty_base64_is_an_empty_message() {
    let env = TestEnv::new();
    let mut event = Event::fixture("post-message-binary");
    event.0["body"] = "".into();
    let (status, body) = answer(&env, &event).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("empty_message"))
    );
}

#[tokio::test]
async fn hostile_content_types_are_refused_or_kept_verbatim() {
    let env = TestEnv::new();
    let (status, body) = answer(
        &env,
        &Event::fixture("post-message-text").with_header("content-type", Some(&"a".repeat(1025))),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_content_type"))
    );
    // Quoted parameters may hold anything printable: kept verbatim, never a path.
    let odd = "text/plain; charset=\"utf-8\"; x=\"../../etc, <b>\"";
    let (status, body) = answer(
        &env,
        &Event::fixture("post-message-text").with_header("content-type", Some(odd)),
    )
    .await;
    assert_eq!((status, body["contentType"].as_str()), (201, Some(odd)));
    assert_eq!(
        env.files().len(),
        1,
        "the Content-Type never becomes a path"
    );
    // Anything but exactly one media type is refused: a browser reads the last type of a list.
    for refused in [
        "text/plain;a=b,text/html",
        "text/plain; charset=utf-8, text/html",
        "application/json;x=1,image/svg+xml",
        // Two Content-Type headers, as API Gateway joins them.
        "text/plain,text/html",
        "text/plain; x=../../etc",
        "text/plain; charset",
        "text/html text/plain",
        "text",
    ] {
        let (status, body) = answer(
            &env,
            &Event::fixture("post-message-text").with_header("content-type", Some(refused)),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_content_type")),
            "{refused}"
        );
    }
    assert_eq!(env.files().len(), 1, "nothing refused was stored");
}
