//! The POST function fed real API Gateway HTTP API events.

use post_message::handle;
use shared::{lambda, MessageId};
use test_support::{
    assert_error, json_of, millis_in_id, now_millis, rfc3339_millis, CapturedLogs, Event, TestEnv,
};

#[tokio::test]
async fn stores_a_text_message_and_answers_201_with_its_location() {
    let env = TestEnv::new();
    let before = now_millis();
    let response = handle(&env.state, Event::fixture("post-message-text").request()).await;
    let after = now_millis();
    let (status, body) = json_of(&response);
    assert_eq!(status, 201);
    let id = MessageId::parse(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(response.headers()["location"], format!("/messages/{id}"));
    assert_eq!(body["size"], "Hello from EFS!".len());
    assert_eq!(body["contentType"], "text/plain; charset=utf-8");
    // createdAt is the time in the id (its first 12 hex digits), which is when it was posted.
    let created = millis_in_id(body["id"].as_str().unwrap());
    assert!(
        (before..=after).contains(&created),
        "{before} <= {created} <= {after}"
    );
    assert_eq!(body["createdAt"], rfc3339_millis(created));
    let stored = env.state.store.read(id).await.unwrap();
    assert_eq!(stored.body, b"Hello from EFS!");
    assert_eq!(stored.content_type, "text/plain; charset=utf-8");
    assert_eq!(env.files(), vec![id.to_string()]);
}

#[tokio::test]
async fn post_to_the_root_path_works_like_messages() {
    let env = TestEnv::new();
    let response = handle(&env.state, Event::fixture("post-message-json").request()).await;
    let (status, body) = json_of(&response);
    assert_eq!(status, 201);
    assert_eq!(body["contentType"], "application/json");
}

#[tokio::test]
async fn a_base64_body_is_stored_decoded_byte_for_byte() {
    let env = TestEnv::new();
    let response = handle(&env.state, Event::fixture("post-message-binary").request()).await;
    let (status, body) = json_of(&response);
    assert_eq!(status, 201);
    let id = MessageId::parse(body["id"].as_str().unwrap()).unwrap();
    let stored = env.state.store.read(id).await.unwrap();
    assert_eq!(
        stored.body,
        [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0x00, 0x80]
    );
    assert_eq!(body["size"], 13);
}

#[tokio::test]
async fn every_byte_value_round_trips() {
    let env = TestEnv::new();
    let bytes: Vec<u8> = (0..=255u8).rev().cycle().take(5000).collect();
    let event = Event::fixture("post-message-binary").with_body(&bytes, Some("image/png"));
    let (status, body) = json_of(&handle(&env.state, event.request()).await);
    assert_eq!(status, 201);
    let id = MessageId::parse(body["id"].as_str().unwrap()).unwrap();
    let stored = env.state.store.read(id).await.unwrap();
    assert_eq!(stored.body, bytes);
    assert_eq!(stored.content_type, "image/png");
}

#[tokio::test]
async fn a_missing_content_type_is_stored_as_octet_stream() {
    let env = TestEnv::new();
    let event = Event::fixture("post-message-text").with_body(b"no type", None);
    let (status, body) = json_of(&handle(&env.state, event.request()).await);
    assert_eq!(status, 201);
    assert_eq!(body["contentType"], "application/octet-stream");
}

#[tokio::test]
async fn an_empty_body_is_400_empty_message() {
    let env = TestEnv::new();
    let event = Event::fixture("post-message-text").with_body(b"", Some("text/plain"));
    assert_error(
        &handle(&env.state, event.request()).await,
        400,
        "empty_message",
    );
    let mut event = Event::fixture("post-message-text");
    event.0.as_object_mut().unwrap().remove("body");
    assert_error(
        &handle(&env.state, event.request()).await,
        400,
        "empty_message",
    );
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn the_size_limit_is_inclusive() {
    let env = TestEnv::with_max_message_bytes(1024);
    let at_limit = vec![b'a'; 1024];
    let event = Event::fixture("post-message-text").with_body(&at_limit, Some("text/plain"));
    assert_eq!(json_of(&handle(&env.state, event.request()).await).0, 201);
    let over = vec![b'a'; 1025];
    let event = Event::fixture("post-message-text").with_body(&over, Some("text/plain"));
    assert_error(
        &handle(&env.state, event.request()).await,
        413,
        "message_too_large",
    );
    assert_eq!(env.files().len(), 1);
}

#[tokio::test]
async fn the_default_limit_is_256_kib() {
    let env = TestEnv::new();
    let event = Event::fixture("post-message-binary")
        .with_body(&vec![0xff; 262_145], Some("application/octet-stream"));
    assert_error(
        &handle(&env.state, event.request()).await,
        413,
        "message_too_large",
    );
    let event = Event::fixture("post-message-binary")
        .with_body(&vec![0xff; 262_144], Some("application/octet-stream"));
    assert_eq!(json_of(&handle(&env.state, event.request()).await).0, 201);
}

#[tokio::test]
async fn an_unusable_content_type_is_400() {
    let env = TestEnv::new();
    let long = format!("text/{}", "x".repeat(2000));
    for content_type in [long.as_str(), "   "] {
        let event = Event::fixture("post-message-text").with_body(b"x", Some(content_type));
        assert_error(
            &handle(&env.state, event.request()).await,
            400,
            "invalid_content_type",
        );
    }
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn invalid_base64_is_a_400_not_a_panic() {
    let env = TestEnv::new();
    let mut event = Event::fixture("post-message-binary");
    event.0["body"] = "this is *not* base64!".into();
    let response = lambda::answer(env.leaked_state(), &handle, event.invocation()).await;
    assert_eq!(response.status_code, 400);
    let body: serde_json::Value =
        serde_json::from_slice(response.body.as_ref().unwrap().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(env.files().is_empty());
    // The same adapter stores a valid event and encodes nothing twice.
    let response = lambda::answer(
        env.leaked_state(),
        &handle,
        Event::fixture("post-message-binary").invocation(),
    )
    .await;
    assert_eq!(response.status_code, 201);
    assert!(!response.is_base64_encoded);
}

#[tokio::test]
async fn storage_that_is_not_there_is_503() {
    let env = TestEnv::new();
    let state = env.unmounted();
    let response = handle(&state, Event::fixture("post-message-text").request()).await;
    assert_error(&response, 503, "storage_unavailable");
}

#[tokio::test]
async fn other_methods_and_paths_are_refused() {
    let env = TestEnv::new();
    let event = Event::fixture("post-message-text").with_method("PUT");
    assert_error(
        &handle(&env.state, event.request()).await,
        405,
        "method_not_allowed",
    );
    let id = MessageId::generate().to_string();
    let event = Event::fixture("post-message-text").with_path_id(&id);
    assert_error(&handle(&env.state, event.request()).await, 404, "not_found");
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn a_storage_failure_is_logged_with_the_request_id() {
    let logs = CapturedLogs::start();
    let env = TestEnv::new();
    let state = env.unmounted();
    let response = handle(&state, Event::fixture("post-message-text").request()).await;
    assert_error(&response, 503, "storage_unavailable");

    let lines = logs.lines();
    let line = lines.first().expect("a log line");
    assert_eq!(line["level"], "ERROR");
    // The fixture's API Gateway request id, which the access log carries too.
    assert_eq!(line["fields"]["request_id"], "JKJaXmPLvHcESHC=");
    assert_eq!(line["fields"]["code"], "storage_unavailable");
    assert!(
        line["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("No such file"),
        "{line}"
    );

    // A client error is the client's: not logged.
    let before = logs.lines().len();
    let empty = Event::fixture("post-message-text").with_body(b"", Some("text/plain"));
    assert_error(
        &handle(&env.state, empty.request()).await,
        400,
        "empty_message",
    );
    assert_eq!(logs.lines().len(), before);
}
