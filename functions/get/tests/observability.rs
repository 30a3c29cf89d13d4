//! What the GET function tells operators: reads write no log line (they are not changes, and
//! logging every read would cost more than serving it).

use get_messages::handle;
use test_support::{CapturedLogs, Event, TestEnv};

#[tokio::test]
async fn reads_log_nothing_whoever_the_caller_is() {
    let env = TestEnv::new();
    let id = env
        .state
        .store
        .publish("text/plain", b"read me")
        .await
        .unwrap()
        .to_string();
    let logs = CapturedLogs::start();
    for authorizer in ["post-message-iam", "post-message-jwt"] {
        for event in [
            Event::fixture("get-root"),
            Event::fixture("get-messages"),
            Event::fixture("get-message").with_path_id(&id),
        ] {
            let event = event.with_authorizer_of(authorizer);
            assert_eq!(handle(&env.state, event.request()).await.status(), 200);
        }
    }
    assert_eq!(logs.lines(), Vec::<serde_json::Value>::new());
}

mod metrics {
    use get_messages::handle;
    use shared::{metrics::Capture, MessageId};
    use test_support::{assert_one_emf, Event, TestEnv};

    const STORE_TIME: (&str, &str) = ("StoreTime", "Milliseconds");
    const RETURNED: [(&str, &str); 2] = [("MessagesReturned", "Count"), ("BytesReturned", "Bytes")];
    const ERRORS: (&str, &str) = ("Errors", "Count");

    #[tokio::test]
    async fn a_listing_counts_the_messages_and_bytes_it_returns() {
        let env = TestEnv::new();
        for body in ["one", "two!", "three"] {
            env.state
                .store
                .publish("text/plain", body.as_bytes())
                .await
                .unwrap();
        }
        test_support::settle().await;
        let capture = Capture::start();
        let response = handle(&env.state, Event::fixture("get-root").request()).await;
        assert_eq!(response.status(), 200);
        let doc = assert_one_emf(
            &capture,
            "get-messages",
            "list",
            &[STORE_TIME, RETURNED[0], RETURNED[1], ERRORS],
        );
        assert_eq!(doc["MessagesReturned"], 3);
        assert_eq!(doc["BytesReturned"], 3 + 4 + 5);
        assert_eq!(doc["Errors"], 0);
        assert!(doc["StoreTime"].as_f64().unwrap() >= 0.0);
    }

    #[tokio::test]
    async fn reading_one_message_counts_its_bytes() {
        let env = TestEnv::new();
        let id = env
            .state
            .store
            .publish("image/png", &[0u8; 700])
            .await
            .unwrap();
        let capture = Capture::start();
        let event = Event::fixture("get-message").with_path_id(&id.to_string());
        assert_eq!(handle(&env.state, event.request()).await.status(), 200);
        let doc = assert_one_emf(
            &capture,
            "get-messages",
            "read",
            &[STORE_TIME, RETURNED[0], RETURNED[1], ERRORS],
        );
        assert_eq!(
            (
                doc["MessagesReturned"].as_u64(),
                doc["BytesReturned"].as_u64()
            ),
            (Some(1), Some(700))
        );
    }

    #[tokio::test]
    async fn errors_carry_their_code_and_the_operation_they_attempted() {
        let env = TestEnv::new();
        let unknown = MessageId::generate().to_string();
        let unmounted = env.unmounted();
        let cases = [
            (
                &env.state,
                Event::fixture("get-message").with_path_id("../etc"),
                "read",
                "invalid_id",
                false,
            ),
            (
                &env.state,
                Event::fixture("get-messages").with_query("limit=0"),
                "list",
                "invalid_query",
                false,
            ),
            (
                &env.state,
                Event::fixture("get-message").with_path_id(&unknown),
                "read",
                "not_found",
                true,
            ),
            (
                &unmounted,
                Event::fixture("get-root"),
                "list",
                "storage_unavailable",
                true,
            ),
        ];
        for (state, event, operation, code, touched_store) in cases {
            let capture = Capture::start();
            handle(state, event.request()).await;
            let error = format!("Error_{code}");
            let mut expected = vec![ERRORS, (error.as_str(), "Count")];
            if touched_store {
                expected.insert(0, STORE_TIME);
            }
            let doc = assert_one_emf(&capture, "get-messages", operation, &expected);
            assert_eq!(doc["Errors"], 1, "{code}");
            assert_eq!(doc[&error], 1);
        }
    }
}
