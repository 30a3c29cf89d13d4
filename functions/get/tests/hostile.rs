//! Deliberately hostile events through the whole adapter (`lambda::answer`), as the runtime
//! delivers them: nothing panics, every answer is the contract's JSON, nothing is touched
//! outside the messages directory.

use get_messages::handle;
use test_support::{Event, TestEnv};

async fn answer(env: &TestEnv, event: &Event) -> (i64, serde_json::Value) {
    test_support::answer(env, &handle, event).await
}

#[tokio::test]
async fn a_10000_character_path_is_a_clear_400() {
    let env = TestEnv::new();
    let long = "x".repeat(10_000);
    let event = Event::fixture("get-message").with_path_id(&long);
    let (status, body) = answer(&env, &event).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_id"))
    );
    // The same length on the collection route: the path is not ours to parse, the listing works.
    let mut event = Event::fixture("get-messages").with_query("");
    event.0["rawPath"] = format!("/messages/{long}").into();
    event.0["requestContext"]["http"]["path"] = event.0["rawPath"].clone();
    assert_eq!(answer(&env, &event).await.0, 200);
}

#[tokio::test]
async fn paths_and_hosts_that_are_not_a_url_are_served_not_a_panic() {
    let env = TestEnv::new();
    for path in [
        "/messages/a b",
        "/messages/\u{7f}",
        "/\u{1F600}/..",
        "no-leading-slash",
        "",
    ] {
        let mut event = Event::fixture("get-root");
        event.0["rawPath"] = path.into();
        event.0["requestContext"]["http"]["path"] = path.into();
        let (status, body) = answer(&env, &event).await;
        assert_eq!(status, 200, "{path:?}: {body}");
    }
    // lambda_http unwraps a URL parse of the Host and X-Forwarded-Proto headers (the fuzzer
    // found it): neither is ours to parse.
    for (name, value) in [
        ("host", "xn--a"),
        ("host", "ex ample:99999"),
        ("host", "[zz]"),
        ("x-forwarded-proto", "ht tp"),
    ] {
        let event = Event::fixture("get-root").with_header(name, Some(value));
        assert_eq!(answer(&env, &event).await.0, 200, "{name}: {value:?}");
    }
}

#[tokio::test]
async fn unicode_and_percent_encoded_traversal_ids_are_rejected() {
    let env = TestEnv::new();
    for id in [
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2f",
        "..%c0%af..%c0%af",
        "\u{2025}/\u{2025}/etc",
        "\u{ff0e}\u{ff0e}\u{ff0f}",
        "01936b2e-1e2d-7c3a-8b4c-5d6e7f8a9b0c\u{0}",
        "01936b2e-1e2d-7c3a-8b4c-5d6e7f8a9b0\u{0441}",
    ] {
        let event = Event::fixture("get-message").with_path_id(id);
        let (status, body) = answer(&env, &event).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_id")),
            "{id:?}"
        );
    }
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn hostile_query_strings_are_400_invalid_query() {
    let env = TestEnv::new();
    let id = shared::MessageId::generate();
    for query in [
        "limit=0".to_owned(),
        "limit=-1".to_owned(),
        "limit=1e9".to_owned(),
        "limit=99999999999999999999999".to_owned(),
        "limit=%31%30".to_owned() + "&limit=5",
        format!("after={id}&after={id}"),
        format!("after={id}&after="),
        "after=%00".to_owned(),
        format!("limit={}", "9".repeat(5000)),
    ] {
        let event = Event::fixture("get-messages").with_query(&query);
        let (status, body) = answer(&env, &event).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_header_flood_is_served_normally() {
    let env = TestEnv::new();
    let mut event = Event::fixture("get-messages").with_query("limit=5");
    let headers = event.0["headers"].as_object_mut().unwrap();
    for i in 0..10_000 {
        headers.insert(format!("x-flood-{i}"), "y".repeat(64).into());
    }
    event.0["cookies"] = (0..2_000)
        .map(|i| format!("c{i}=v"))
        .collect::<Vec<_>>()
        .into();
    let (status, body) = answer(&env, &event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"], serde_json::json!([]));
}
