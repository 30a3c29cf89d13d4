//! What the DELETE function tells operators: the audit line of every deletion, fed real API
//! Gateway events with an IAM authorizer context, a JWT one and none.

use delete_messages::handle;
use shared::{audit::AUDIT_MESSAGE, MessageId};
use test_support::{assert_error, CapturedLogs, Event, TestEnv};

async fn seed(env: &TestEnv, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = format!("message {i}");
        ids.push(
            env.state
                .store
                .publish("text/plain", body.as_bytes())
                .await
                .unwrap(),
        );
    }
    ids
}

#[tokio::test]
async fn deleting_one_message_logs_its_id_and_the_jwt_caller() {
    let env = TestEnv::new();
    let ids = seed(&env, 2).await;
    let logs = CapturedLogs::start();
    let event = Event::fixture("delete-message")
        .with_path_id(&ids[0].to_string())
        .with_authorizer_of("post-message-jwt");
    assert_eq!(handle(&env.state, event.request()).await.status(), 204);
    let lines = logs.with_message(AUDIT_MESSAGE);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0]["fields"];
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(line["operation"], "delete");
    assert_eq!(line["id"], ids[0].to_string());
    assert_eq!(line["caller"], "734b5c8f-1f2a-44d1-9a6e-3b1c2d4e5f60");
    assert_eq!(line["caller_type"], "jwt");
    assert_eq!(
        line["issuer"],
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE"
    );
    assert_eq!(line["source_ip"], "203.0.113.7");
    assert_eq!(line["request_id"], "JKJaXmPLvHcESHG=");
}

#[tokio::test]
async fn deleting_everything_logs_all_and_the_iam_caller() {
    let env = TestEnv::new();
    seed(&env, 3).await;
    let logs = CapturedLogs::start();
    let event = Event::fixture("delete-messages").with_authorizer_of("post-message-iam");
    let response = handle(&env.state, event.request()).await;
    assert!(response.status().is_success());
    let lines = logs.with_message(AUDIT_MESSAGE);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0]["fields"];
    assert_eq!(line["operation"], "deleteAll");
    assert_eq!(line["id"], "all");
    assert_eq!(
        line["caller"],
        "arn:aws:sts::123456789012:assumed-role/messages-writer/alice"
    );
    assert_eq!(line["caller_type"], "iam");
    assert_eq!(line["request_id"], "JKJaXmPLvHcESHF=");
}

#[tokio::test]
async fn an_anonymous_delete_says_so() {
    let env = TestEnv::new();
    let ids = seed(&env, 1).await;
    let logs = CapturedLogs::start();
    let event = Event::fixture("delete-message").with_path_id(&ids[0].to_string());
    assert_eq!(handle(&env.state, event.request()).await.status(), 204);
    let lines = logs.with_message(AUDIT_MESSAGE);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["fields"]["caller"], "anonymous");
    assert_eq!(lines[0]["fields"]["caller_type"], "anonymous");
    assert_eq!(lines[0]["fields"]["operation"], "delete");
}

#[tokio::test]
async fn a_delete_that_removes_nothing_is_not_audited() {
    let env = TestEnv::new();
    let logs = CapturedLogs::start();
    let unknown = MessageId::generate().to_string();
    for (event, status, code) in [
        (
            Event::fixture("delete-message").with_path_id(&unknown),
            404,
            "not_found",
        ),
        (
            Event::fixture("delete-message").with_path_id(".."),
            400,
            "invalid_id",
        ),
    ] {
        let event = event.with_authorizer_of("post-message-iam");
        assert_error(&handle(&env.state, event.request()).await, status, code);
    }
    let unmounted = env.unmounted();
    let response = handle(&unmounted, Event::fixture("delete-messages").request()).await;
    assert_error(&response, 503, "storage_unavailable");
    assert!(logs.with_message(AUDIT_MESSAGE).is_empty());
}

mod metrics {
    use delete_messages::handle;
    use shared::{metrics::Capture, MessageId};
    use test_support::{assert_one_emf, Event, TestEnv};

    #[tokio::test]
    async fn deleting_one_counts_one() {
        let env = TestEnv::new();
        let id = env.state.store.publish("text/plain", b"x").await.unwrap();
        let capture = Capture::start();
        let event = Event::fixture("delete-message").with_path_id(&id.to_string());
        assert_eq!(handle(&env.state, event.request()).await.status(), 204);
        let doc = assert_one_emf(
            &capture,
            "delete-messages",
            "delete",
            &[
                ("StoreTime", "Milliseconds"),
                ("MessagesDeleted", "Count"),
                ("Errors", "Count"),
            ],
        );
        assert_eq!(doc["MessagesDeleted"], 1);
        assert_eq!(doc["Errors"], 0);
    }

    #[tokio::test]
    async fn deleting_everything_reports_no_count() {
        let env = TestEnv::new();
        env.state.store.publish("text/plain", b"x").await.unwrap();
        let capture = Capture::start();
        let response = handle(&env.state, Event::fixture("delete-messages").request()).await;
        assert!(response.status().is_success());
        let doc = assert_one_emf(
            &capture,
            "delete-messages",
            "deleteAll",
            &[("StoreTime", "Milliseconds"), ("Errors", "Count")],
        );
        assert_eq!(doc["Errors"], 0);
    }

    #[tokio::test]
    async fn a_failed_delete_counts_its_error_code() {
        let env = TestEnv::new();
        let capture = Capture::start();
        let unknown = MessageId::generate().to_string();
        let event = Event::fixture("delete-message").with_path_id(&unknown);
        assert_eq!(handle(&env.state, event.request()).await.status(), 404);
        let doc = assert_one_emf(
            &capture,
            "delete-messages",
            "delete",
            &[
                ("StoreTime", "Milliseconds"),
                ("Errors", "Count"),
                ("Error_not_found", "Count"),
            ],
        );
        assert_eq!(doc["Error_not_found"], 1);
    }

    #[tokio::test]
    async fn the_scheduled_reclaim_writes_a_reclaim_document() {
        let env = TestEnv::new();
        for _ in 0..3 {
            env.state.store.publish("text/plain", b"x").await.unwrap();
        }
        env.state.store.delete_all().await.unwrap();
        let capture = Capture::start();
        let result = delete_messages::reclaim(&env.state).await;
        assert_eq!(result["reclaimed"]["messages"], 3, "{result}");
        let doc = assert_one_emf(
            &capture,
            "delete-messages",
            "reclaim",
            &[
                ("StoreTime", "Milliseconds"),
                ("MessagesDeleted", "Count"),
                ("Errors", "Count"),
            ],
        );
        assert_eq!(doc["MessagesDeleted"], 3);
        assert_eq!(doc["Errors"], 0);
        drop(capture);

        // At rest (nothing left to reclaim) a run writes no document: no custom metric is fed
        // every minute by the schedule alone.
        let capture = Capture::start();
        let result = delete_messages::reclaim(&env.state).await;
        assert_eq!(result["reclaimed"]["finished"], true, "{result}");
        assert_eq!(result["reclaimed"]["messages"], 0, "{result}");
        assert_eq!(
            test_support::emf_documents(&capture),
            Vec::<serde_json::Value>::new()
        );
        drop(capture);

        let capture = Capture::start();
        let result = delete_messages::reclaim(&env.unmounted()).await;
        assert!(result["error"].is_string(), "{result}");
        let doc = assert_one_emf(
            &capture,
            "delete-messages",
            "reclaim",
            &[
                ("StoreTime", "Milliseconds"),
                ("Errors", "Count"),
                ("Error_storage_unavailable", "Count"),
            ],
        );
        assert_eq!(doc["Error_storage_unavailable"], 1);
    }
}
