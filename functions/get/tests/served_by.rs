//! `x-served-by` on every answer of the adapter, the handler's and its own.

use get_messages::handle;
use shared::lambda::{self, ServedBy, SERVED_BY};
use test_support::{Event, TestEnv};

fn is_short_hex(text: &str) -> bool {
    text.len() == 8
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[test]
fn names_the_function_and_a_short_random_instance() {
    let first = ServedBy::new("get-messages");
    let value = first.value().to_str().unwrap();
    let instance = value.strip_prefix("get-messages; instance=").unwrap();
    assert!(is_short_hex(instance), "{value}");
    // Another process (another ServedBy) gets another id.
    let ids: std::collections::HashSet<_> = (0..50)
        .map(|_| ServedBy::new("get-messages").value().clone())
        .collect();
    assert_eq!(ids.len(), 50);
}

#[tokio::test]
async fn handler_answers_and_adapter_errors_carry_it() {
    let env = TestEnv::new();
    let served_by = ServedBy::with_instance("get-messages", "0a1b2c3d");
    let ok = served_by.stamp(
        lambda::answer(
            env.leaked_state(),
            &handle,
            Event::fixture("get-root").invocation(),
        )
        .await,
    );
    assert_eq!(ok.status_code, 200);
    assert_eq!(ok.headers[SERVED_BY], "get-messages; instance=0a1b2c3d");
    // A body marked base64 that is not: the adapter answers before any handler runs.
    let mut event = Event::fixture("get-root");
    event.0["body"] = "not *base64*".into();
    event.0["isBase64Encoded"] = true.into();
    let refused =
        served_by.stamp(lambda::answer(env.leaked_state(), &handle, event.invocation()).await);
    assert_eq!(refused.status_code, 400);
    assert_eq!(
        refused.headers[SERVED_BY],
        "get-messages; instance=0a1b2c3d"
    );
    // A storage failure (503) is stamped as well.
    let unmounted: &'static _ = Box::leak(Box::new(env.unmounted()));
    let failed = served_by
        .stamp(lambda::answer(unmounted, &handle, Event::fixture("get-root").invocation()).await);
    assert_eq!(failed.status_code, 503);
    assert_eq!(failed.headers[SERVED_BY], "get-messages; instance=0a1b2c3d");
}
