//! The fuzzing oracle: turns arbitrary bytes into an API Gateway HTTP API event (method, path,
//! path parameter, query, headers, cookies, body, base64 flag), runs it through one of the three
//! functions' full adapters against a scratch directory, and checks what must always hold:
//!
//! * no panic (the fuzzer reports one as a crash);
//! * the status is one the contract allows, and every error is `{"error":{"code","message"}}`
//!   with a code of the contract;
//! * nothing is created, changed or removed outside the messages directory.
//!
//! `fuzz/` drives [`check`] with libFuzzer; `tests/corpus.rs` replays the kept corpus and every
//! input that ever failed, as regression tests in the normal test run.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
    time::Duration,
};

use arbitrary::{Arbitrary, Unstructured};
use lambda_http::aws_lambda_events::{apigw::ApiGatewayV2httpRequest, query_map::QueryMap};
use serde_json::{json, Value};
use shared::{lambda, store::ReclaimBudget, AppState, Config};

/// The statuses the contract allows a function to answer with.
const STATUSES: [i64; 10] = [200, 201, 204, 400, 404, 405, 413, 500, 503, 507];

/// The error codes of the contract.
const CODES: [&str; 11] = [
    "empty_message",
    "message_too_large",
    "invalid_body",
    "invalid_content_type",
    "invalid_query",
    "invalid_id",
    "not_found",
    "method_not_allowed",
    "storage_unavailable",
    "storage_full",
    "internal_error",
];

/// Which function the event is delivered to.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Function {
    Get,
    Post,
    Delete,
}

/// What the fuzzer controls in an event.
#[derive(Arbitrary, Debug)]
pub struct Input {
    pub function: Function,
    pub method: String,
    pub raw_path: String,
    pub path_id: Option<String>,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub cookies: Option<Vec<String>>,
    pub body: Option<String>,
    pub base64: bool,
    /// Posts a well-formed message first, so that reads and deletes find something.
    pub seed_message: bool,
}

/// The scratch area: `root/above/messages` is the store; nothing else under `root` may change.
struct Scratch {
    root: tempfile::TempDir,
    state: &'static AppState,
    runtime: tokio::runtime::Runtime,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let root = tempfile::tempdir().expect("scratch directory");
        // Two private levels above the messages directory, both watched: a traversal by one or
        // two `..` lands in them. (The system's temporary directory above is shared with other
        // processes, so it cannot be watched.)
        let messages_dir = root.path().join("above").join("messages");
        std::fs::create_dir_all(&messages_dir).expect("messages directory");
        let state = Box::leak(Box::new(AppState::new(Config {
            messages_dir,
            max_message_bytes: 4096,
            retention_days: shared::config::DEFAULT_RETENTION_DAYS,
        })));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Scratch {
            root,
            state,
            runtime,
        }
    })
}

/// Decodes `data` and checks one invocation. Panics (a fuzzer crash) when a rule is broken.
pub fn check(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check_input(&input);
}

/// Checks one decoded input.
pub fn check_input(input: &Input) {
    let Some(event) = event_of(input) else {
        // Not an event API Gateway could send (e.g. a header name with spaces): the runtime
        // would reject it before any of our code runs.
        return;
    };
    let scratch = scratch();
    let root = scratch.root.path();
    let before = outside_entries(root);
    scratch.runtime.block_on(async {
        if input.seed_message {
            scratch
                .state
                .store
                .publish("text/plain", b"seed")
                .await
                .expect("seeding a message");
        }
        let invocation = lambda_http::lambda_runtime::LambdaEvent::new(event, Default::default());
        let response = match input.function {
            Function::Get => lambda::answer(scratch.state, &get_messages::handle, invocation).await,
            Function::Post => {
                lambda::answer(scratch.state, &post_message::handle, invocation).await
            }
            Function::Delete => {
                lambda::answer(scratch.state, &delete_messages::handle, invocation).await
            }
        };
        let body: &[u8] = response
            .body
            .as_ref()
            .map(|b| b.as_ref())
            .unwrap_or_default();
        verify_answer(input.function, response.status_code, body);
        verify_listing_order(input, response.status_code, body);
    });
    assert_eq!(
        outside_entries(root),
        before,
        "something outside the messages directory changed"
    );
    // Keep the store small so that the fuzzer stays fast: empty it, files too, now and then.
    if CALLS.fetch_add(1, Ordering::Relaxed) % 500 == 499 {
        scratch.runtime.block_on(async {
            scratch
                .state
                .store
                .delete_all()
                .await
                .expect("emptying the store");
            scratch
                .state
                .store
                .reclaim(ReclaimBudget {
                    max_operations: usize::MAX,
                    max_time: Duration::from_secs(60),
                })
                .await
                .expect("reclaiming the store")
        });
    }
}

/// Calls so far in this process, to empty the store every so often.
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// The rules every answer keeps: a status of the contract, and every error (and every JSON
/// success) a well-formed body. Panics when one is broken.
pub fn verify_answer(function: Function, status: i64, body: &[u8]) {
    assert!(
        STATUSES.contains(&status),
        "status {status} is not in the contract"
    );
    if status >= 400 {
        let error: Value = serde_json::from_slice(body).expect("an error body is JSON");
        let code = error["error"]["code"].as_str().expect("error.code");
        assert!(CODES.contains(&code), "unknown error code {code}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_ne!(
            status, 500,
            "a 500 needs a corrupt stored message, which we never write"
        );
    } else if status == 201 || (status == 200 && !matches!(function, Function::Get)) {
        let _: Value = serde_json::from_slice(body).expect("a success body is JSON");
    }
}

/// A listing keeps its order: ids strictly increasing oldest first, strictly decreasing newest
/// first (`order=desc`), and `next` is the last id of a page that has one. Panics otherwise.
pub fn verify_listing_order(input: &Input, status: i64, body: &[u8]) {
    if status != 200 || !matches!(input.function, Function::Get) {
        return;
    }
    let Ok(listing) = serde_json::from_slice::<Value>(body) else {
        return; // a message's raw bytes, not a listing
    };
    let Some(messages) = listing.get("messages").and_then(Value::as_array) else {
        return;
    };
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m["id"].as_str().expect("every listed message has an id"))
        .collect();
    let query: QueryMap = input.raw_query.parse().unwrap_or_default();
    let newest_first = query.first("order") == Some("desc");
    for pair in ids.windows(2) {
        if newest_first {
            assert!(pair[0] > pair[1], "not newest first: {pair:?}");
        } else {
            assert!(pair[0] < pair[1], "not oldest first: {pair:?}");
        }
    }
    if let Some(next) = listing["next"].as_str() {
        assert_eq!(Some(&next), ids.last(), "next is the page's last id");
    }
}

/// Everything under `root` except the messages directory's own contents.
fn outside_entries(root: &Path) -> BTreeSet<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "messages") {
                pending.push(path.clone());
            }
            seen.insert(path);
        }
    }
    seen
}

/// Builds the event on top of a real fixture, or `None` when serde (as the runtime) rejects it.
pub fn event_of(input: &Input) -> Option<ApiGatewayV2httpRequest> {
    let mut event = test_support::Event::fixture("get-messages").0;
    event["requestContext"]["http"]["method"] = json!(input.method);
    event["rawPath"] = json!(input.raw_path);
    event["requestContext"]["http"]["path"] = json!(input.raw_path);
    event["rawQueryString"] = json!(input.raw_query);
    event.as_object_mut()?.remove("queryStringParameters");
    match &input.path_id {
        Some(id) => event["pathParameters"] = json!({ "id": id }),
        None => {
            event.as_object_mut()?.remove("pathParameters");
        }
    }
    let headers = event["headers"].as_object_mut()?;
    for (name, value) in &input.headers {
        headers.insert(name.to_ascii_lowercase(), json!(value));
    }
    match &input.cookies {
        Some(cookies) => event["cookies"] = json!(cookies),
        None => {
            event.as_object_mut()?.remove("cookies");
        }
    }
    if let Some(body) = &input.body {
        event["body"] = json!(body);
    }
    event["isBase64Encoded"] = json!(input.base64);
    serde_json::from_value(event).ok()
}
