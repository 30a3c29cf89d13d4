//! The GET function fed real API Gateway HTTP API events.

use get_messages::handle;
use shared::{format, MessageId};
use test_support::{
    assert_error, json_of, millis_in_id, now_millis, rfc3339_millis, settle, Event, TestEnv,
};

async fn seed(env: &TestEnv, bodies: &[(&str, &[u8])]) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for (content_type, body) in bodies {
        ids.push(env.state.store.publish(content_type, body).await.unwrap());
    }
    ids
}

fn list(query: &str) -> Event {
    Event::fixture("get-messages").with_query(query)
}

#[tokio::test]
async fn an_empty_store_lists_nothing() {
    let env = TestEnv::new();
    for event in [Event::fixture("get-root"), list("")] {
        let (status, body) = json_of(&handle(&env.state, event.request()).await);
        assert_eq!(status, 200);
        assert_eq!(body, serde_json::json!({ "messages": [], "next": null }));
    }
}

#[tokio::test]
async fn lists_text_as_utf8_and_binary_as_base64_oldest_first() {
    let env = TestEnv::new();
    let before = now_millis();
    let ids = seed(
        &env,
        &[
            ("text/plain", "héllo ✓".as_bytes()),
            ("application/json", br#"{"a":1}"#),
            ("application/octet-stream", &[0xff, 0x00, 0xfe]),
        ],
    )
    .await;
    let after = now_millis();
    settle().await;
    let response = handle(&env.state, Event::fixture("get-root").request()).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, body) = json_of(&response);
    assert_eq!(status, 200);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    for (message, id) in messages.iter().zip(&ids) {
        assert_eq!(message["id"], id.to_string());
        // The time in the id's first 12 hex digits, which is when it was stored.
        let created = millis_in_id(&id.to_string());
        assert!(
            (before..=after).contains(&created),
            "{before} <= {created} <= {after}"
        );
        assert_eq!(message["createdAt"], rfc3339_millis(created));
    }
    assert_eq!(messages[0]["body"], "héllo ✓");
    assert_eq!(messages[0]["bodyEncoding"], "utf8");
    assert_eq!(messages[0]["size"], "héllo ✓".len());
    assert_eq!(messages[0]["contentType"], "text/plain");
    assert_eq!(messages[1]["body"], r#"{"a":1}"#);
    assert_eq!(messages[2]["body"], "/wD+");
    assert_eq!(messages[2]["bodyEncoding"], "base64");
    assert_eq!(messages[2]["size"], 3);
    assert_eq!(body["next"], serde_json::Value::Null);
}

#[tokio::test]
async fn created_at_is_the_time_the_id_carries() {
    // Known ids with their times written out: RFC 9562's own UUIDv7 example (Appendix A.6), a
    // leap day, and milliseconds past a second. Filed where the store keeps them, as a seeding
    // tool does, because a POST can only make an id of the present.
    let known = [
        (
            "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
            "2022-02-22T19:22:22.000Z",
        ),
        (
            "00dd9d3a-0e07-7abc-8def-0123456789ab",
            "2000-02-29T12:00:00.007Z",
        ),
        (
            "01a0c450-6c7b-7abc-9def-0123456789ab",
            "2026-09-21T14:13:20.123Z",
        ),
    ];
    let env = TestEnv::new();
    for (id, _) in known {
        let path = env.state.store.message_path(MessageId::parse(id).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format::encode("text/plain", b"known")).unwrap();
    }
    let (status, body) = json_of(&handle(&env.state, list("limit=10").request()).await);
    assert_eq!(status, 200);
    let listed: Vec<(&str, &str)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["createdAt"].as_str().unwrap()))
        .collect();
    let mut expected = known.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    // The same literals pin the by-hand reading the other tests compare with.
    for (id, created_at) in known {
        assert_eq!(rfc3339_millis(millis_in_id(id)), created_at, "{id}");
    }
}

#[tokio::test]
async fn the_fixture_query_with_cookies_pages_after_its_cursor() {
    // get-messages.json carries limit=2, an `after` id from 2024 and cookies.
    let env = TestEnv::new();
    let ids = seed(
        &env,
        &[
            ("text/plain", b"1"),
            ("text/plain", b"2"),
            ("text/plain", b"3"),
        ],
    )
    .await;
    settle().await;
    let (status, body) =
        json_of(&handle(&env.state, Event::fixture("get-messages").request()).await);
    assert_eq!(status, 200);
    let listed: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[0].to_string(), ids[1].to_string()]);
    assert_eq!(body["next"], ids[1].to_string());
}

#[tokio::test]
async fn pages_250_messages_in_three_pages_without_gaps_or_duplicates() {
    let env = TestEnv::new();
    let mut posted = Vec::new();
    for i in 0..250 {
        let body = format!("message {i}");
        posted.push(
            env.state
                .store
                .publish("text/plain", body.as_bytes())
                .await
                .unwrap()
                .to_string(),
        );
    }
    settle().await;
    let mut seen = Vec::new();
    let mut query = "limit=100".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = json_of(&handle(&env.state, list(&query).request()).await);
        assert_eq!(status, 200);
        pages += 1;
        for message in body["messages"].as_array().unwrap() {
            let i = seen.len();
            assert_eq!(message["body"], format!("message {i}"));
            seen.push(message["id"].as_str().unwrap().to_owned());
        }
        match body["next"].as_str() {
            Some(next) => query = format!("limit=100&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, posted);
}

#[tokio::test]
async fn order_desc_pages_newest_first_with_next_in_the_same_order() {
    let env = TestEnv::new();
    let mut posted = Vec::new();
    for i in 0..25 {
        let body = format!("message {i}");
        posted.push(seed(&env, &[("text/plain", body.as_bytes())]).await[0].to_string());
    }
    posted.reverse();
    let mut seen = Vec::new();
    let mut query = "limit=10&order=desc".to_owned();
    loop {
        let (status, body) = json_of(&handle(&env.state, list(&query).request()).await);
        assert_eq!(status, 200);
        let page: Vec<String> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        seen.extend(page.iter().cloned());
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), page.last().map(String::as_str));
                query = format!("limit=10&order=desc&after={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, posted, "newest first, no gaps, no duplicates");
    // The default stays oldest first (once the messages settled).
    settle().await;
    let (_, body) = json_of(&handle(&env.state, list("limit=1").request()).await);
    assert_eq!(body["messages"][0]["id"], posted[24].as_str());
}

#[tokio::test]
async fn an_unknown_after_id_still_pages_correctly() {
    let env = TestEnv::new();
    let first = seed(&env, &[("text/plain", b"a")]).await;
    let unknown = MessageId::generate();
    let later = seed(&env, &[("text/plain", b"b"), ("text/plain", b"c")]).await;
    settle().await;
    let (status, body) =
        json_of(&handle(&env.state, list(&format!("after={unknown}")).request()).await);
    assert_eq!(status, 200);
    let listed: Vec<String> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, [later[0].to_string(), later[1].to_string()]);
    assert!(!listed.contains(&first[0].to_string()));
}

#[tokio::test]
async fn bad_queries_are_400_invalid_query() {
    let env = TestEnv::new();
    let id = MessageId::generate();
    for query in [
        "limit=0",
        "limit=-1",
        "limit=1e9",
        "limit=1001",
        "limit=abc",
        "limit=",
        "limit=%2B5",
        "limit=10&limit=20",
        "after=not-an-id",
        "after=",
        "after=../../etc",
        "order=DESC",
        "order=newest",
        "order=",
        "order=asc&order=desc",
        &format!("after={id}&after={id}"),
        &format!("after={}", id.to_string().to_uppercase()),
    ] {
        let response = handle(&env.state, list(query).request()).await;
        assert_error(&response, 400, "invalid_query");
    }
    for query in [
        "limit=1",
        "limit=1000",
        "unknown=1",
        "order=asc",
        "order=desc",
    ] {
        assert_eq!(
            json_of(&handle(&env.state, list(query).request()).await).0,
            200,
            "{query}"
        );
    }
}

#[tokio::test]
async fn get_one_returns_the_raw_bytes_and_content_type() {
    let env = TestEnv::new();
    let ids = seed(
        &env,
        &[
            ("text/plain; charset=utf-8", b"plain"),
            ("image/png", &[0x89, 0x50, 0x00, 0xff]),
        ],
    )
    .await;
    let response = handle(
        &env.state,
        Event::fixture("get-message")
            .with_path_id(&ids[0].to_string())
            .request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.body().as_ref(), b"plain");
    let response = handle(
        &env.state,
        Event::fixture("get-message")
            .with_path_id(&ids[1].to_string())
            .request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.body().as_ref(), [0x89, 0x50, 0x00, 0xff]);
}

#[tokio::test]
async fn an_unknown_id_is_404_and_the_fixture_id_is_unknown() {
    let env = TestEnv::new();
    assert_error(
        &handle(&env.state, Event::fixture("get-message").request()).await,
        404,
        "not_found",
    );
    let id = MessageId::generate().to_string();
    assert_error(
        &handle(
            &env.state,
            Event::fixture("get-message").with_path_id(&id).request(),
        )
        .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn hostile_ids_are_400_and_touch_nothing_outside_the_directory() {
    let env = TestEnv::new();
    // A file next to the messages directory that a traversal would reach.
    let outside = env.dir.path().parent().unwrap().join("secret-outside");
    let good = MessageId::generate().to_string();
    let long = "a".repeat(10_000);
    for id in [
        "..",
        "../secret-outside",
        "..%2Fsecret-outside",
        "%2e%2e%2fsecret-outside",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "..\\..\\windows",
        "not-a-uuid",
        &good.to_uppercase(),
        &format!("{good}/.."),
        &format!("{good}%00"),
        &long,
        "０１９３６ｂ２ｅ",
        "",
    ] {
        let event = Event::fixture("get-message").with_path_id(id);
        let response = handle(&env.state, event.request()).await;
        assert_error(&response, 400, "invalid_id");
    }
    assert!(!outside.exists());
    assert!(env.files().is_empty());
}

#[tokio::test]
async fn missing_storage_is_503_storage_unavailable() {
    let env = TestEnv::new();
    let state = env.unmounted();
    assert_error(
        &handle(&state, list("").request()).await,
        503,
        "storage_unavailable",
    );
    let id = MessageId::generate().to_string();
    let event = Event::fixture("get-message").with_path_id(&id);
    // A missing mount must not look like a missing message.
    assert_error(
        &handle(&state, event.request()).await,
        503,
        "storage_unavailable",
    );
}

#[tokio::test]
async fn other_methods_are_refused() {
    let env = TestEnv::new();
    let event = Event::fixture("get-root").with_method("POST");
    assert_error(
        &handle(&env.state, event.request()).await,
        405,
        "method_not_allowed",
    );
}
