//! Per-request metrics as CloudWatch Embedded Metric Format (EMF): one JSON document per request
//! (and one per background reclaim), written to stdout, which Lambda sends to CloudWatch Logs,
//! which extracts the metrics. No agent, no API call, no extra thread: one line, written once,
//! when the response is ready.
//!
//! The alarms and the dashboard in `infra/` are built on exactly this shape, so it is a
//! contract:
//!
//! * namespace `EfsMessages`; dimension sets `[Deployment, Function, Operation]` and
//!   `[Deployment, Function]`, where `Deployment` names the deployment (`DEPLOYMENT` in the
//!   environment, the CDK app's stack prefix; `local` when unset), so that two deployments in one
//!   account and region never mix their metrics, `Function` is the binary (`get-messages`,
//!   `post-message`, `delete-messages`) and `Operation` an [`Operation`] name;
//! * `StoreTime` (Milliseconds) spent in store calls; `MessagesReturned`, `MessagesStored`,
//!   `MessagesDeleted` (Count); `BytesReturned`, `BytesStored` (Bytes) of message bodies;
//!   `MessagesSkipped` (Count) of stored files a page passed over because they do not decode;
//!   `Errors` (Count, 0 or 1, always present) and `Error_<code>` (Count, 1, only when that error
//!   happened); a metric that was not measured is absent, not zero;
//! * the first document of an instance also carries `InitTime` (Milliseconds), with the
//!   `[Deployment, Function]` dimension set only: how old the process was when its state was ready (from
//!   the kernel's record of the process start, so it includes loading the binary; 10 ms
//!   resolution).
//!
//! Nothing in a document comes from the request except counts and sizes: the dimensions are
//! constants, and an error code is one of [`ApiError::code`]'s.
//!
//! Why not a crate: `metrics_cloudwatch_embedded` (the maintained one) brings the `metrics`
//! facade, a global registry, `tower` and `futures`, and writes one dimension set per label
//! combination, not the two sets above; this module is a few `serde_json` calls.

use std::{
    cell::RefCell,
    future::Future,
    io::Write,
    sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use lambda_http::{Body, Request, Response};
use serde_json::{json, Map, Value};

use crate::{
    http::{self, ApiResult},
    ApiError, Message, Operation,
};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "EfsMessages";

/// What one request measured, written as one EMF document by [`Metrics::respond`] (or
/// [`Metrics::finish`] for background work).
#[derive(Debug)]
pub struct Metrics {
    function: &'static str,
    operation: Operation,
    store_time: Option<Duration>,
    returned: Option<(usize, usize)>,
    skipped: Option<usize>,
    stored: Option<(usize, usize)>,
    deleted: Option<usize>,
}

impl Metrics {
    /// Starts measuring a request of `function` (its binary name) doing `operation`.
    pub fn new(function: &'static str, operation: Operation) -> Self {
        Self {
            function,
            operation,
            store_time: None,
            returned: None,
            skipped: None,
            stored: None,
            deleted: None,
        }
    }

    /// Starts measuring a request whose operation is `one` on a `/messages/{id}` route and
    /// `collection` otherwise ([`Operation::of_route`]).
    pub fn for_route(
        function: &'static str,
        request: &Request,
        collection: Operation,
        one: Operation,
    ) -> Self {
        Self::new(function, Operation::of_route(request, collection, one))
    }

    /// Awaits a store call, adding the time it took to `StoreTime`.
    pub async fn store<T, E>(&mut self, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        *self.store_time.get_or_insert(Duration::ZERO) += started.elapsed();
        result
    }

    /// Counts the messages a response returns and the bytes of their bodies.
    pub fn returned(&mut self, messages: &[Message]) {
        let bytes = messages.iter().map(|m| m.body.len()).sum();
        self.returned_counts(messages.len(), bytes);
    }

    /// Counts `messages` returned with `bytes` of bodies in all (a page written as it was read).
    pub fn returned_counts(&mut self, messages: usize, bytes: usize) {
        self.returned = Some((messages, bytes));
    }

    /// Counts stored files a page skipped because they are not messages (damaged, foreign, a
    /// newer format): present only when there were some.
    pub fn skipped(&mut self, files: usize) {
        if files > 0 {
            self.skipped = Some(files);
        }
    }

    /// Counts one stored message of `bytes` bytes.
    pub fn stored(&mut self, bytes: usize) {
        self.stored = Some((1, bytes));
    }

    /// Counts deleted messages.
    pub fn deleted(&mut self, messages: usize) {
        self.deleted = Some(messages);
    }

    /// Ends the request: the response for `result` ([`http::respond`]), after writing this
    /// request's document (with the error's code if it failed).
    pub fn respond(self, request: &Request, result: ApiResult) -> Response<Body> {
        self.finish(result.as_ref().err().map(ApiError::code));
        http::respond(request, result)
    }

    /// Writes the document of work that answers no request (reclaiming space in the
    /// background), with `error` the [`ApiError::code`] of its failure, if it failed.
    pub fn finish(self, error: Option<&str>) {
        write(&self.document(error, now_millis(), COLD_START.take()));
    }

    /// The EMF document: `error` is the failed request's error code, `init` the instance's
    /// initialisation time if this is its first document.
    pub fn document(
        &self,
        error: Option<&str>,
        timestamp_ms: u64,
        init: Option<Duration>,
    ) -> Value {
        let mut metrics = Vec::new();
        let mut values = Map::new();
        let mut put = |name: String, unit: &str, value: Value| {
            metrics.push(json!({ "Name": name, "Unit": unit }));
            values.insert(name, value);
        };
        if let Some(time) = self.store_time {
            put("StoreTime".into(), "Milliseconds", json!(millis(time)));
        }
        if let Some((messages, bytes)) = self.returned {
            put("MessagesReturned".into(), "Count", json!(messages));
            put("BytesReturned".into(), "Bytes", json!(bytes));
        }
        if let Some(files) = self.skipped {
            put("MessagesSkipped".into(), "Count", json!(files));
        }
        if let Some((messages, bytes)) = self.stored {
            put("MessagesStored".into(), "Count", json!(messages));
            put("BytesStored".into(), "Bytes", json!(bytes));
        }
        if let Some(messages) = self.deleted {
            put("MessagesDeleted".into(), "Count", json!(messages));
        }
        put("Errors".into(), "Count", json!(u8::from(error.is_some())));
        if let Some(code) = error {
            put(format!("Error_{code}"), "Count", json!(1));
        }
        let mut directives = vec![json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["Deployment", "Function", "Operation"], ["Deployment", "Function"]],
            "Metrics": metrics,
        })];
        if let Some(init) = init {
            directives.push(json!({
                "Namespace": NAMESPACE,
                "Dimensions": [["Deployment", "Function"]],
                "Metrics": [{ "Name": "InitTime", "Unit": "Milliseconds" }],
            }));
            values.insert("InitTime".into(), json!(millis(init)));
        }
        values.insert("Deployment".into(), json!(deployment()));
        values.insert("Function".into(), json!(self.function));
        values.insert("Operation".into(), json!(self.operation.name()));
        values.insert(
            "_aws".into(),
            json!({ "Timestamp": timestamp_ms, "CloudWatchMetrics": directives }),
        );
        Value::Object(values)
    }
}

/// The environment variable that names the deployment in every document's `Deployment`.
pub const DEPLOYMENT_VAR: &str = "DEPLOYMENT";

/// The deployment this instance belongs to: `DEPLOYMENT`, or `local` when unset or not a short
/// plain name (it becomes a CloudWatch dimension value).
fn deployment() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::env::var(DEPLOYMENT_VAR)
            .ok()
            .filter(|name| {
                !name.is_empty()
                    && name.len() <= 128
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .unwrap_or_else(|| "local".to_owned())
    })
}

/// Marks this process as a function instance whose state is ready: from now on documents go to
/// stdout, and the first one carries `InitTime`. `AppState::from_env` calls it; tests, which
/// build their state with `AppState::new`, write no documents unless they [`Capture`] them.
pub fn instance_ready() {
    COLD_START.mark(process_age());
    STDOUT_ENABLED.store(true, Ordering::Relaxed);
}

/// Sends the documents written on this thread to itself instead of stdout while it lives, for
/// tests (a `#[tokio::test]` runs its handler on its own thread).
#[derive(Debug)]
pub struct Capture(());

impl Capture {
    /// Starts capturing this thread's documents.
    pub fn start() -> Self {
        CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
        Self(())
    }

    /// The documents written so far, one JSON line each.
    pub fn lines(&self) -> Vec<String> {
        CAPTURED.with(|captured| captured.borrow().clone().unwrap_or_default())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURED.with(|captured| *captured.borrow_mut() = None);
    }
}

thread_local! {
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

static STDOUT_ENABLED: AtomicBool = AtomicBool::new(false);
static COLD_START: ColdStart = ColdStart::new();

/// Writes one document as one line: to this thread's [`Capture`] if there is one, else to stdout
/// once [`instance_ready`]. The line is written whole under stdout's lock, as the log lines
/// are, so the two never interleave. A failed write is dropped: metrics must never fail a request.
fn write(document: &Value) {
    let line = document.to_string();
    let captured = CAPTURED.with(|captured| match captured.borrow_mut().as_mut() {
        Some(lines) => {
            lines.push(line.clone());
            true
        }
        None => false,
    });
    if !captured && STDOUT_ENABLED.load(Ordering::Relaxed) {
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&bytes);
    }
}

/// The instance's initialisation time, handed out once.
struct ColdStart {
    init: OnceLock<Duration>,
    taken: AtomicBool,
}

impl ColdStart {
    const fn new() -> Self {
        Self {
            init: OnceLock::new(),
            taken: AtomicBool::new(false),
        }
    }

    fn mark(&self, init: Option<Duration>) {
        if let Some(init) = init {
            let _ = self.init.set(init);
        }
    }

    /// The init time the first time it is asked for after [`ColdStart::mark`], then `None`.
    fn take(&self) -> Option<Duration> {
        let init = *self.init.get()?;
        (!self.taken.swap(true, Ordering::Relaxed)).then_some(init)
    }
}

/// Linux reports process times in clock ticks of 1/100 s (`USER_HZ`) in `/proc`.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// How long ago the kernel started this process: `/proc/uptime` less the process's `starttime`
/// (field 22 of `/proc/self/stat`), both counted from boot. `None` where `/proc` cannot say.
fn process_age() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let fields = stat.get(stat.rfind(')')? + 1..)?;
    let start_ticks: f64 = fields.split_whitespace().nth(19)?.parse().ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime_seconds: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64((uptime_seconds - start_ticks / CLOCK_TICKS_PER_SECOND).max(0.0))
        .ok()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_declares_every_value_it_carries() {
        let mut metrics = Metrics::new("post-message", Operation::Publish);
        metrics.store_time = Some(Duration::from_micros(1500));
        metrics.stored(42);
        let doc = metrics.document(None, 1_700_000_000_000, None);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        assert_eq!(directives[0]["Namespace"], "EfsMessages");
        assert_eq!(
            directives[0]["Dimensions"],
            json!([
                ["Deployment", "Function", "Operation"],
                ["Deployment", "Function"]
            ])
        );
        assert_eq!(
            directives[0]["Metrics"],
            json!([
                { "Name": "StoreTime", "Unit": "Milliseconds" },
                { "Name": "MessagesStored", "Unit": "Count" },
                { "Name": "BytesStored", "Unit": "Bytes" },
                { "Name": "Errors", "Unit": "Count" },
            ])
        );
        assert_eq!(
            doc["Deployment"], "local",
            "no DEPLOYMENT in the tests' environment"
        );
        assert_eq!(doc["Function"], "post-message");
        assert_eq!(doc["Operation"], "publish");
        assert_eq!(doc["StoreTime"], 1.5);
        assert_eq!(
            (doc["MessagesStored"].clone(), doc["BytesStored"].clone()),
            (json!(1), json!(42))
        );
        assert_eq!(doc["Errors"], 0);
        assert!(doc.get("InitTime").is_none());
    }

    #[test]
    fn the_init_time_has_its_own_function_only_dimension_set() {
        let metrics = Metrics::new("get-messages", Operation::Read);
        let doc = metrics.document(Some("not_found"), 0, Some(Duration::from_millis(25)));
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2);
        assert_eq!(
            directives[1]["Dimensions"],
            json!([["Deployment", "Function"]])
        );
        assert_eq!(
            directives[1]["Metrics"],
            json!([{ "Name": "InitTime", "Unit": "Milliseconds" }])
        );
        assert_eq!(doc["InitTime"], 25.0);
        assert_eq!(doc["Errors"], 1);
        assert_eq!(doc["Error_not_found"], 1);
    }

    #[test]
    fn the_init_time_is_handed_out_once_and_only_once_marked() {
        let cold_start = ColdStart::new();
        assert_eq!(cold_start.take(), None);
        cold_start.mark(Some(Duration::from_millis(30)));
        cold_start.mark(Some(Duration::from_millis(99)));
        assert_eq!(cold_start.take(), Some(Duration::from_millis(30)));
        assert_eq!(cold_start.take(), None);
    }

    #[test]
    fn this_process_has_a_plausible_age() {
        let age = process_age().expect("/proc on Linux");
        assert!(age < Duration::from_secs(24 * 3600), "{age:?}");
    }
}
