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
