//! What the POST function tells operators: the audit line of every stored message, fed real API
//! Gateway events with an IAM authorizer context, a JWT one and none.

use post_message::handle;
use serde_json::Value;
use shared::{audit::AUDIT_MESSAGE, MessageId};
use test_support::{assert_error, json_of, CapturedLogs, Event, TestEnv};

/// Posts `event` and returns the new id and the audit lines logged meanwhile.
async fn post(env: &TestEnv, event: &Event) -> (MessageId, Vec<Value>) {
    let logs = CapturedLogs::start();
    let (status, body) = json_of(&handle(&env.state, event.request()).await);
    assert_eq!(status, 201, "{body}");
    let id = MessageId::parse(body["id"].as_str().unwrap()).unwrap();
    (id, logs.with_message(AUDIT_MESSAGE))
}

fn only(lines: &[Value]) -> &Value {
    assert_eq!(lines.len(), 1, "one audit line: {lines:?}");
    assert_eq!(lines[0]["level"], "INFO");
    &lines[0]["fields"]
}

#[tokio::test]
async fn an_iam_caller_is_logged_by_principal_arn() {
    let env = TestEnv::new();
    let (id, lines) = post(&env, &Event::fixture("post-message-iam")).await;
    let line = only(&lines);
    assert_eq!(line["operation"], "publish");
    assert_eq!(line["id"], id.to_string());
    assert_eq!(
        line["caller"],
        "arn:aws:sts::123456789012:assumed-role/messages-writer/alice"
    );
    assert_eq!(line["caller_type"], "iam");
    assert!(line.get("issuer").is_none(), "{line}");
    assert_eq!(line["source_ip"], "198.51.100.23");
    assert_eq!(line["request_id"], "JKJaXmPLvHcESHH=");
}

#[tokio::test]
async fn a_jwt_caller_is_logged_by_subject_and_issuer() {
    let env = TestEnv::new();
    let (id, lines) = post(&env, &Event::fixture("post-message-jwt")).await;
    let line = only(&lines);
    assert_eq!(line["operation"], "publish");
    assert_eq!(line["id"], id.to_string());
    assert_eq!(line["caller"], "734b5c8f-1f2a-44d1-9a6e-3b1c2d4e5f60");
    assert_eq!(line["caller_type"], "jwt");
    assert_eq!(
        line["issuer"],
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"
    );
    assert_eq!(line["source_ip"], "192.0.2.44");
    assert_eq!(line["request_id"], "JKJaXmPLvHcESHI=");
}

#[tokio::test]
async fn without_an_authorizer_the_caller_is_anonymous() {
    let env = TestEnv::new();
    let (id, lines) = post(&env, &Event::fixture("post-message-text")).await;
    let line = only(&lines);
    assert_eq!(line["operation"], "publish");
    assert_eq!(line["id"], id.to_string());
    assert_eq!(line["caller"], "anonymous");
    assert_eq!(line["caller_type"], "anonymous");
    assert_eq!(line["source_ip"], "203.0.113.7");
    assert_eq!(line["request_id"], "JKJaXmPLvHcESHC=");
}

#[tokio::test]
async fn the_caller_changes_neither_the_file_name_nor_the_stored_bytes() {
    let env = TestEnv::new();
    let mut ids = Vec::new();
    for fixture in ["post-message-iam", "post-message-jwt", "post-message-text"] {
        let event = Event::fixture(fixture).with_body(b"same bytes", Some("text/plain"));
        let (id, _) = post(&env, &event).await;
        let stored = env.state.store.read(id).await.unwrap();
        assert_eq!(stored.body, b"same bytes");
        assert_eq!(stored.content_type, "text/plain");
        ids.push(id.to_string());
    }
    ids.sort();
    assert_eq!(env.files(), ids, "files are named by their ids alone");
}

#[tokio::test]
async fn a_post_that_stores_nothing_is_not_audited() {
    let env = TestEnv::new();
    let logs = CapturedLogs::start();
    let empty = Event::fixture("post-message-iam").with_body(b"", Some("text/plain"));
    assert_error(
        &handle(&env.state, empty.request()).await,
        400,
        "empty_message",
    );
    let unmounted = env.unmounted();
    let response = handle(&unmounted, Event::fixture("post-message-jwt").request()).await;
    assert_error(&response, 503, "storage_unavailable");
    assert!(logs.with_message(AUDIT_MESSAGE).is_empty());
    // The storage failure itself is logged, as an error, not as a change.
    assert_eq!(logs.lines().len(), 1);
    assert_eq!(logs.lines()[0]["level"], "ERROR");
}

mod metrics {
    use post_message::handle;
    use shared::metrics::Capture;
    use test_support::{assert_one_emf, emf_documents, Event, TestEnv};

    #[tokio::test]
    async fn a_stored_message_is_counted_with_its_bytes_and_store_time() {
        let env = TestEnv::new();
        let capture = Capture::start();
        let event =
            Event::fixture("post-message-binary").with_body(&[7u8; 1234], Some("image/png"));
        assert_eq!(handle(&env.state, event.request()).await.status(), 201);
        let doc = assert_one_emf(
            &capture,
            "post-message",
            "publish",
            &[
                ("StoreTime", "Milliseconds"),
                ("MessagesStored", "Count"),
                ("BytesStored", "Bytes"),
                ("Errors", "Count"),
            ],
        );
        assert_eq!(doc["MessagesStored"], 1);
        assert_eq!(doc["BytesStored"], 1234);
        assert_eq!(doc["Errors"], 0);
    }

    #[tokio::test]
    async fn a_refused_message_counts_an_error_with_its_code() {
        let env = TestEnv::with_max_message_bytes(10);
        let unmounted = env.unmounted();
        for (state, body, code, touched_store) in [
            (
                &env.state,
                b"far more than ten bytes".as_slice(),
                "message_too_large",
                false,
            ),
            (&env.state, b"".as_slice(), "empty_message", false),
            (&unmounted, b"fits".as_slice(), "storage_unavailable", true),
        ] {
            let capture = Capture::start();
            let event = Event::fixture("post-message-text").with_body(body, Some("text/plain"));
            handle(state, event.request()).await;
            let error = format!("Error_{code}");
            let mut expected = vec![("Errors", "Count"), (error.as_str(), "Count")];
            if touched_store {
                expected.insert(0, ("StoreTime", "Milliseconds"));
            }
            let doc = assert_one_emf(&capture, "post-message", "publish", &expected);
            assert_eq!(
                (doc["Errors"].as_u64(), doc[&error].as_u64()),
                (Some(1), Some(1))
            );
        }
    }

    #[tokio::test]
    async fn nothing_in_the_document_comes_from_the_request() {
        let env = TestEnv::new();
        let marker = "zq-marker-7731";
        let capture = Capture::start();
        let mut event = Event::fixture("post-message-jwt")
            .with_body(
                format!("body {marker}").as_bytes(),
                Some(&format!("text/{marker}")),
            )
            .with_header("user-agent", Some(marker))
            .with_header("x-forwarded-for", Some(marker))
            .with_query(&format!("{marker}={marker}"));
        event.0["requestContext"]["http"]["userAgent"] = marker.into();
        let (status, body) = test_support::json_of(&handle(&env.state, event.request()).await);
        assert_eq!(status, 201);
        let docs = emf_documents(&capture);
        assert_eq!(docs.len(), 1);
        let text = docs[0].to_string();
        for request_data in [
            marker,
            body["id"].as_str().unwrap(),
            "JKJaXmPLvHcESHI=",
            "192.0.2.44",
            "734b5c8f",
            "cognito",
            "r3pmxmplak",
        ] {
            assert!(!text.contains(request_data), "{request_data} in {text}");
        }
    }
}
