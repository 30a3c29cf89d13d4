//! The DELETE function fed real API Gateway HTTP API events.

use delete_messages::{handle, reclaim};
use shared::{lambda, MessageId, Order};
use test_support::{assert_error, Event, TestEnv};

#[tokio::test]
async fn deletes_one_message_with_204_then_404() {
    let env = TestEnv::new();
    let keep = env
        .state
        .store
        .publish("text/plain", b"keep")
        .await
        .unwrap();
    let gone = env
        .state
        .store
        .publish("text/plain", b"gone")
        .await
        .unwrap();
    let event = Event::fixture("delete-message").with_path_id(&gone.to_string());
    let response = handle(&env.state, event.request()).await;
    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    assert_eq!(env.files(), vec![keep.to_string()]);
    assert_error(&handle(&env.state, event.request()).await, 404, "not_found");
}

#[tokio::test]
async fn the_fixture_id_is_unknown_404() {
    let env = TestEnv::new();
    assert_error(
        &handle(&env.state, Event::fixture("delete-message").request()).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn deletes_everything_with_204_then_the_schedule_reclaims_the_files() {
    let env = TestEnv::new();
    for i in 0..120 {
        env.state
            .store
            .publish("text/plain", format!("{i}").as_bytes())
            .await
            .unwrap();
    }
    let response = handle(&env.state, Event::fixture("delete-messages").request()).await;
    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    // Newest first: an oldest-first page would show nothing this early anyway.
    let page = env.state.store.list(Order::Desc, None, 1000).await.unwrap();
    assert!(
        page.messages.is_empty(),
        "nothing is visible once it answered"
    );
    assert_eq!(env.files().len(), 120, "the files wait for reclaiming");
    // The schedule's tick, a real EventBridge scheduled event, through the whole adapter.
    let scheduled = Event::fixture("scheduled");
    let served_by = lambda::ServedBy::with_instance("delete-messages", "0badcafe");
    let result = lambda::dispatch(
        env.leaked_state(),
        &served_by,
        &handle,
        &reclaim,
        scheduled.lambda_event(),
    )
    .await;
    assert_eq!(result["reclaimed"]["messages"], 120, "{result}");
    assert_eq!(result["reclaimed"]["finished"], true, "{result}");
    assert!(env.files().is_empty(), "{:?}", env.files());
    assert!(env.dir.path().join("cutoff").exists());
    // Deleting nothing is still 204.
    let response = handle(&env.state, Event::fixture("delete-messages").request()).await;
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn an_api_event_through_the_scheduled_adapter_is_an_http_request() {
    let env = TestEnv::new();
    let id = env.state.store.publish("text/plain", b"x").await.unwrap();
    let event = Event::fixture("delete-message").with_path_id(&id.to_string());
    let served_by = lambda::ServedBy::with_instance("delete-messages", "0badcafe");
    let result = lambda::dispatch(
        env.leaked_state(),
        &served_by,
        &handle,
        &reclaim,
        event.lambda_event(),
    )
    .await;
    assert_eq!(result["statusCode"], 204, "{result}");
    assert_eq!(
        result["headers"]["x-served-by"], "delete-messages; instance=0badcafe",
        "HTTP answers through the scheduled adapter are stamped too: {result}"
    );
    assert!(!lambda::is_scheduled(&Event::fixture("delete-messages").0));
    assert!(lambda::is_scheduled(&Event::fixture("scheduled").0));
    assert!(env.files().iter().all(|f| f != &id.to_string()));
}

#[tokio::test]
async fn delete_on_the_root_path_deletes_everything() {
    let env = TestEnv::new();
    let id = env.state.store.publish("text/plain", b"x").await.unwrap();
    let mut event = Event::fixture("delete-messages");
    event.0["rawPath"] = "/".into();
    event.0["routeKey"] = "DELETE /".into();
    event.0["requestContext"]["http"]["path"] = "/".into();
    let response = handle(&env.state, event.request()).await;
    assert_eq!(response.status(), 204);
    assert!(env.state.store.read(id).await.is_err());
}

#[tokio::test]
async fn hostile_ids_are_400_and_remove_nothing() {
    let env = TestEnv::new();
    let victim = env.dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let kept = env
        .state
        .store
        .publish("text/plain", b"kept")
        .await
        .unwrap();
    let long = "f".repeat(10_000);
    for id in [
        "..",
        "../",
        "victim",
        "%2e%2e",
        "/tmp",
        &format!("{kept}/.."),
        &long,
        "*",
    ] {
        let event = Event::fixture("delete-message").with_path_id(id);
        assert_error(
            &handle(&env.state, event.request()).await,
            400,
            "invalid_id",
        );
    }
    assert!(victim.exists());
    assert!(env.state.store.read(kept).await.is_ok());
}

#[tokio::test]
async fn missing_storage_is_503_for_both_routes() {
    let env = TestEnv::new();
    let state = env.unmounted();
    assert_error(
        &handle(&state, Event::fixture("delete-messages").request()).await,
        503,
        "storage_unavailable",
    );
    let id = MessageId::generate().to_string();
    let event = Event::fixture("delete-message").with_path_id(&id);
    assert_error(
        &handle(&state, event.request()).await,
        503,
        "storage_unavailable",
    );
}

#[tokio::test]
async fn other_methods_are_refused() {
    let env = TestEnv::new();
    let event = Event::fixture("delete-messages").with_method("GET");
    assert_error(
        &handle(&env.state, event.request()).await,
        405,
        "method_not_allowed",
    );
}
