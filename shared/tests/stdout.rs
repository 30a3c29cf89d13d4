//! The metrics and the logs share stdout, as they do on Lambda: this test re-runs itself as a
//! child process set up like a function instance (JSON logs, state from the environment), where
//! several threads log and finish requests at once, and reads the child's stdout line by line.

use std::{
    env,
    process::{Command, Stdio},
    thread,
};

use lambda_http::{Body, Request};
use serde_json::Value;
use shared::{lambda, metrics::Metrics, ApiError, AppState, Operation, StoreError};

const CHILD: &str = "SHARED_STDOUT_TEST_CHILD";
const THREADS: usize = 4;
const REQUESTS: usize = 200;

#[test]
fn documents_and_log_lines_share_stdout_whole_lines_only() {
    if env::var_os(CHILD).is_some() {
        return child();
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env::current_exe().unwrap())
        .args([
            "--exact",
            "documents_and_log_lines_share_stdout_whole_lines_only",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("MESSAGES_DIR", dir.path())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (mut documents, mut logs, mut init_times) = (0, 0, 0);
    // libtest's own lines ("running 1 test", ...) are not JSON; every JSON line must be whole.
    for line in stdout.lines().filter(|l| l.contains('{')) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("broken line ({e}): {line}"));
        if value.get("_aws").is_some() {
            documents += 1;
            init_times += usize::from(value.get("InitTime").is_some());
            assert_eq!(value["Error_storage_unavailable"], 1, "{line}");
        } else {
            assert_eq!(value["level"], "ERROR", "{line}");
            logs += 1;
        }
    }
    assert_eq!(documents, THREADS * REQUESTS, "one document per request");
    assert_eq!(logs, THREADS * REQUESTS, "one error line per request");
    assert_eq!(init_times, 1, "the init time once per instance");
}

/// A function instance: every request fails on the server side, so each writes an ERROR log
/// line and an EMF document, from several threads at once.
fn child() {
    lambda::init_logging();
    let _state = AppState::from_env().unwrap();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            thread::spawn(|| {
                for _ in 0..REQUESTS {
                    let error = StoreError::Unavailable(std::io::ErrorKind::NotFound.into());
                    let metrics = Metrics::new("get-messages", Operation::List);
                    let request = Request::new(Body::Empty);
                    metrics.respond(&request, Err(ApiError::from(error)));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}
