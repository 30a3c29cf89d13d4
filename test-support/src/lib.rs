//! Test support for the functions' own tests: real API Gateway HTTP API events from the JSON
//! fixtures in `test-support/fixtures/events`, and stores in throwaway directories.
//!
//! A crate of its own (a dev-dependency only) rather than a feature of `shared`, so that `shared`
//! is compiled the same way for the tests and for the function binaries: one build serves both.

pub mod harness;

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use lambda_http::{
    aws_lambda_events::apigw::ApiGatewayV2httpRequest,
    lambda_runtime::{Context, LambdaEvent},
    Body, Request, Response,
};
use serde_json::{json, Value};

use shared::{AppState, Config};

/// The directory of the event fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/events")
}

/// An API Gateway HTTP API (payload 2.0) event, loaded from a fixture and adjusted by a test.
#[derive(Debug, Clone)]
pub struct Event(pub Value);

impl Event {
    /// Loads `test-support/fixtures/events/{name}.json`.
    pub fn fixture(name: &str) -> Self {
        let path = fixtures_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
        Self(serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad fixture {name}: {e}")))
    }

    /// Sets the HTTP method, as a client sending another verb to the same route would.
    pub fn with_method(mut self, method: &str) -> Self {
        self.0["requestContext"]["http"]["method"] = json!(method);
        self
    }

    /// Points the event at `/messages/{id}` with `id` as the path parameter, as API Gateway does.
    pub fn with_path_id(mut self, id: &str) -> Self {
        let method = self.0["requestContext"]["http"]["method"].clone();
        let method = method.as_str().unwrap_or("GET").to_owned();
        let path = format!("/messages/{id}");
        self.0["rawPath"] = json!(path);
        self.0["requestContext"]["http"]["path"] = json!(path);
        self.0["routeKey"] = json!(format!("{method} /messages/{{id}}"));
        self.0["requestContext"]["routeKey"] = self.0["routeKey"].clone();
        self.0["pathParameters"] = json!({ "id": id });
        self
    }

    /// Sets the raw query string; `queryStringParameters` is filled in as API Gateway does it
    /// (a parameter given twice becomes one comma-joined value).
    pub fn with_query(mut self, raw: &str) -> Self {
        self.0["rawQueryString"] = json!(raw);
        let mut params = serde_json::Map::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params
                .entry(key.to_owned())
                .and_modify(|v| *v = json!(format!("{},{value}", v.as_str().unwrap_or(""))))
                .or_insert_with(|| json!(value));
        }
        self.0["queryStringParameters"] = Value::Object(params);
        self
    }

    /// Sets the body: text as is, anything else base64-encoded with `isBase64Encoded`, as API
    /// Gateway delivers non-text bodies. `None` for the Content-Type removes the header.
    pub fn with_body(mut self, body: &[u8], content_type: Option<&str>) -> Self {
        match std::str::from_utf8(body) {
            Ok(text) => {
                self.0["body"] = json!(text);
                self.0["isBase64Encoded"] = json!(false);
            }
            Err(_) => {
                self.0["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
                self.0["isBase64Encoded"] = json!(true);
            }
        }
        self.0["headers"]["content-length"] = json!(body.len().to_string());
        self.with_header("content-type", content_type)
    }

    /// Sets (or with `None` removes) a header.
    pub fn with_header(mut self, name: &str, value: Option<&str>) -> Self {
        let headers = self.0["headers"]
            .as_object_mut()
            .expect("fixture has headers");
        match value {
            Some(value) => headers.insert(name.to_owned(), json!(value)),
            None => headers.remove(name),
        };
        self
    }

    /// Gives the event the authorizer context of fixture `name` (`post-message-iam`,
    /// `post-message-jwt`), as if the same caller had sent it.
    pub fn with_authorizer_of(mut self, name: &str) -> Self {
        let authorizer = Self::fixture(name).0["requestContext"]["authorizer"].clone();
        assert!(authorizer.is_object(), "fixture {name} has no authorizer");
        self.0["requestContext"]["authorizer"] = authorizer;
        self
    }

    /// The request a handler sees, through `lambda_http`'s own event parser.
    pub fn request(&self) -> Request {
        lambda_http::request::from_str(&self.0.to_string()).expect("valid API Gateway event")
    }

    /// The invocation as the runtime delivers it, for [`shared::lambda::answer`].
    pub fn invocation(&self) -> LambdaEvent<ApiGatewayV2httpRequest> {
        let payload = serde_json::from_value(self.0.clone()).expect("valid API Gateway event");
        let mut context = Context::default();
        context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_owned();
        LambdaEvent::new(payload, context)
    }

    /// The invocation as raw JSON, as a function that takes more than one kind of event (the
    /// delete function's schedule) receives it.
    pub fn lambda_event(&self) -> LambdaEvent<Value> {
        let mut context = Context::default();
        context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_owned();
        LambdaEvent::new(self.0.clone(), context)
    }
}

/// The JSON log lines written on this thread while it lives, as the functions write them in the
/// cloud (`AWS_LAMBDA_LOG_FORMAT=JSON`). A `#[tokio::test]` runs its handler on its own thread.
pub struct CapturedLogs {
    buffer: LogBuffer,
    _guard: lambda_http::tracing::dispatcher::DefaultGuard,
}

impl CapturedLogs {
    /// Starts capturing.
    pub fn start() -> Self {
        use lambda_http::tracing::{dispatcher, subscriber, Dispatch};
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let guard = dispatcher::set_default(&Dispatch::new(subscriber));
        Self {
            buffer,
            _guard: guard,
        }
    }

    /// Every line so far, each parsed as JSON.
    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes)
            .expect("UTF-8 logs")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }

    /// The lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }
}

#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The EMF documents written while `capture` lived, parsed; each is checked to be a well-formed
/// `EfsMessages` document: every metric it declares has a number, every value it carries besides
/// the dimensions is declared.
pub fn emf_documents(capture: &shared::metrics::Capture) -> Vec<Value> {
    capture
        .lines()
        .iter()
        .map(|line| {
            assert!(!line.contains('\n'), "one line per document");
            let doc: Value = serde_json::from_str(line).expect("an EMF document is JSON");
            let declared: Vec<String> = emf_metrics(&doc).into_iter().map(|(n, _)| n).collect();
            for name in &declared {
                assert!(doc[name].is_number(), "{name} has no number in {doc}");
            }
            for key in doc.as_object().expect("an object").keys() {
                assert!(
                    ["_aws", "Deployment", "Function", "Operation"].contains(&key.as_str())
                        || declared.contains(key),
                    "{key} is not declared in {doc}"
                );
            }
            doc
        })
        .collect()
}

/// The `(name, unit)` of every metric an EMF document declares, over all its directives.
pub fn emf_metrics(doc: &Value) -> Vec<(String, String)> {
    let directives = doc["_aws"]["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    directives
        .iter()
        .flat_map(|d| d["Metrics"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            let text = |key: &str| m[key].as_str().expect("a name and a unit").to_owned();
            (text("Name"), text("Unit"))
        })
        .collect()
}

/// Asserts that `capture` holds exactly one document, of the contract's namespace and dimension
/// sets, for `function` doing `operation`, declaring exactly `metrics` (name, unit) in that
/// order; returns it for the values to be checked.
pub fn assert_one_emf(
    capture: &shared::metrics::Capture,
    function: &str,
    operation: &str,
    metrics: &[(&str, &str)],
) -> Value {
    let docs = emf_documents(capture);
    assert_eq!(
        docs.len(),
        1,
        "exactly one EMF document per request: {docs:?}"
    );
    let doc = docs.into_iter().next().unwrap_or_default();
    let directives = &doc["_aws"]["CloudWatchMetrics"];
    assert_eq!(directives.as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(directives[0]["Namespace"], "EfsMessages");
    assert_eq!(
        directives[0]["Dimensions"],
        json!([
            ["Deployment", "Function", "Operation"],
            ["Deployment", "Function"]
        ])
    );
    assert!(doc["_aws"]["Timestamp"].is_u64(), "{doc}");
    assert!(doc["Deployment"].is_string(), "{doc}");
    assert_eq!(doc["Function"], function);
    assert_eq!(doc["Operation"], operation);
    let expected: Vec<(String, String)> = metrics
        .iter()
        .map(|(n, u)| (n.to_string(), u.to_string()))
        .collect();
    assert_eq!(emf_metrics(&doc), expected, "{doc}");
    doc
}

/// A store in a fresh temporary directory, removed when dropped.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub state: AppState,
}

impl TestEnv {
    /// A store with the contract's default limits.
    pub fn new() -> Self {
        Self::with_max_message_bytes(shared::config::DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// A store with a custom message size limit.
    pub fn with_max_message_bytes(max_message_bytes: usize) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = AppState::new(Config {
            messages_dir: dir.path().to_owned(),
            max_message_bytes,
            // Keep everything: tests file messages at fixed times years ago. Retention has its
            // own tests (shared/tests/store.rs).
            retention_days: 0,
        });
        Self { dir, state }
    }

    /// A state whose messages directory does not exist, as when the file system is not mounted.
    pub fn unmounted(&self) -> AppState {
        AppState::new(Config {
            messages_dir: self.dir.path().join("unmounted"),
            ..self.state.config.clone()
        })
    }

    /// A leaked state for [`shared::lambda::answer`], which wants the instance-long lifetime.
    pub fn leaked_state(&self) -> &'static AppState {
        Box::leak(Box::new(AppState::new(self.state.config.clone())))
    }

    /// The names of the files in the messages directory and its subdirectories, sorted, but for
    /// the store's two bookkeeping files (`cutoff`, `reclaimed`) in the directory itself.
    pub fn files(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut pending = vec![self.dir.path().to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable directory") {
                let entry = entry.expect("entry");
                let bookkeeping = dir == self.dir.path()
                    && matches!(entry.file_name().to_str(), Some("cutoff" | "reclaimed"));
                if entry.file_type().expect("file type").is_dir() {
                    pending.push(entry.path());
                } else if !bookkeeping {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        names.sort();
        names
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits until what was just posted has settled: an oldest-first page lists a message only once
/// no POST still being published can precede it ([`shared::store::SETTLE`]).
pub async fn settle() {
    tokio::time::sleep(shared::store::SETTLE + std::time::Duration::from_millis(50)).await;
}

/// Delivers `event` through a function's whole adapter ([`shared::lambda::answer`]), as the
/// runtime would, and returns the API Gateway status and the body parsed as JSON (`Null` if none).
pub async fn answer<H, F>(env: &TestEnv, handler: &H, event: &Event) -> (i64, Value)
where
    H: Fn(&'static AppState, Request) -> F,
    F: Future<Output = Response<Body>>,
{
    let response = shared::lambda::answer(env.leaked_state(), handler, event.invocation()).await;
    let body = response
        .body
        .as_ref()
        .map(|b| serde_json::from_slice(b.as_ref()).expect("a JSON body"))
        .unwrap_or_default();
    (response.status_code, body)
}

/// A response's status and its body parsed as JSON (`Value::Null` for an empty body). A JSON
/// body must come with `X-Content-Type-Options: nosniff`, as every one the API sends does.
pub fn json_of(response: &Response<Body>) -> (u16, Value) {
    let body: &[u8] = response.body().as_ref();
    let value = if body.is_empty() {
        Value::Null
    } else {
        assert_eq!(
            response
                .headers()
                .get("x-content-type-options")
                .map(|v| v.as_bytes()),
            Some(b"nosniff".as_slice()),
            "a JSON response without nosniff"
        );
        serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(body)
            )
        })
    };
    (response.status().as_u16(), value)
}

/// Asserts that `response` is the contract's error: `status` and `{"error":{"code":…}}`.
pub fn assert_error(response: &Response<Body>, status: u16, code: &str) {
    let (actual, body) = json_of(response);
    assert_eq!(actual, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "error bodies are JSON"
    );
}

/// The Unix time in milliseconds now: a clock reading taken around a request, for bounding the
/// `createdAt` it answers.
pub fn now_millis() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since_epoch.as_millis()).expect("milliseconds fit in 64 bits")
}

/// When a message was created, in Unix milliseconds, read by hand from its id's text: the first
/// 12 hex digits of a UUID version 7 (RFC 9562), without `MessageId`'s own decoding.
pub fn millis_in_id(id: &str) -> u64 {
    let digits: String = id.chars().filter(|c| *c != '-').take(12).collect();
    assert_eq!(digits.len(), 12, "{id:?} is too short for an id");
    u64::from_str_radix(&digits, 16).unwrap_or_else(|e| panic!("{id:?}: {e}"))
}

/// `unix_millis` written as the contract's `createdAt` (RFC 3339, UTC, milliseconds, `Z`),
/// computed by hand (days to civil date, after Howard Hinnant's `civil_from_days`) rather than
/// with the chrono calls the code under test makes. The functions' tests pin it to literals.
pub fn rfc3339_millis(unix_millis: u64) -> String {
    let (days, ms_of_day) = (unix_millis / 86_400_000, unix_millis % 86_400_000);
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    let (hours, minutes) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (seconds, millis) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
}
