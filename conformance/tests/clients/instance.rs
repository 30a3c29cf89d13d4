//! Function instances as separate processes: this test binary, run again with `CLIENTS_ROLE`
//! set, serves one function's invocations read from stdin, one JSON command per line, through
//! the real adapter (`shared::lambda::answer`) and a store of its own, as a Lambda execution
//! environment does; the orchestrator drives it through [`Instance`].

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

use base64::Engine;
use lambda_http::lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use shared::{lambda, AppState};
use test_support::Event;

const ROLE: &str = "CLIENTS_ROLE";
const FUNCTION: &str = "CLIENTS_FUNCTION";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// libfaketime shifts a process's wall clock (Debian package `faketime`); std's `SystemTime`
/// goes through libc and is shifted, tokio's timers keep the real monotonic clock.
pub const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Which of the three functions an instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Get,
    Post,
    Delete,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Get => "get",
            Function::Post => "post",
            Function::Delete => "delete",
        }
    }
}

/// Whether this process is an instance (run [`serve`]) rather than the orchestrator.
pub fn is_instance() -> bool {
    std::env::var_os(ROLE).is_some()
}

/// The instance's side: answers commands until stdin closes.
pub fn serve() -> ! {
    let function = match std::env::var(FUNCTION).as_deref() {
        Ok("get") => Function::Get,
        Ok("post") => Function::Post,
        Ok("delete") => Function::Delete,
        other => panic!("unknown function {other:?}"),
    };
    let state: &'static AppState = Box::leak(Box::new(
        AppState::from_lookup(|key| std::env::var(key).ok()).expect("configuration"),
    ));
    let runtime = lambda::runtime().expect("runtime");
    // Logs (server-side failures with their cause) to stderr: stdout carries the answers.
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let command: Value = serde_json::from_str(&line.expect("a command")).expect("JSON");
        let reply = runtime.block_on(run(state, function, &command));
        writeln!(stdout, "{reply}").expect("reply");
        stdout.flush().expect("reply");
    }
    std::process::exit(0);
}

async fn run(state: &'static AppState, function: Function, command: &Value) -> Value {
    match command["op"].as_str() {
        Some("http") => {
            let mut event = Event::fixture(match function {
                Function::Get => "get-messages",
                Function::Post => "post-message-text",
                Function::Delete => "delete-messages",
            });
            if let Some(id) = command["id"].as_str() {
                event = event.with_path_id(id);
            }
            if let Some(query) = command["query"].as_str() {
                event = event.with_query(query);
            }
            if let Some(body) = command["body"].as_str() {
                let body = B64.decode(body).expect("base64");
                event = event.with_body(&body, command["content_type"].as_str());
            }
            let invocation = LambdaEvent::new(
                serde_json::from_value(event.0).expect("event"),
                Default::default(),
            );
            let response = match function {
                Function::Get => lambda::answer(state, &get_messages::handle, invocation).await,
                Function::Post => lambda::answer(state, &post_message::handle, invocation).await,
                Function::Delete => {
                    lambda::answer(state, &delete_messages::handle, invocation).await
                }
            };
            // What the runtime would post to Lambda: the limit of 6 MB applies to this.
            let encoded = serde_json::to_vec(&response).expect("response").len();
            let body: Vec<u8> = match &response.body {
                Some(body) => body.as_ref().to_vec(),
                None => Vec::new(),
            };
            json!({
                "status": response.status_code,
                "body": B64.encode(body),
                "encoded": encoded,
            })
        }
        Some("reclaim") => delete_messages::reclaim(state).await,
        Some("fds") => json!(std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)),
        other => json!({ "error": format!("unknown op {other:?}") }),
    }
}

/// How an instance process is started.
#[derive(Default, Clone)]
pub struct Options {
    /// A wall-clock shift for libfaketime (`+30`, `-0.08`): an instance whose clock is off.
    pub clock: Option<String>,
    /// RLIMIT_NOFILE (Lambda's is 1,024).
    pub max_files: Option<u64>,
    /// A cgroup v1 memory group to run in (its `cgroup.procs`).
    pub cgroup_procs: Option<std::path::PathBuf>,
}

/// The orchestrator's side of one instance.
pub struct Instance {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    pub function: Function,
}

/// A function's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: i64,
    pub body: Vec<u8>,
    /// The size of the whole response as the runtime would send it to Lambda.
    pub encoded: usize,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One page of a listing, as a client sees it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub status: i64,
    pub ids: Vec<String>,
    pub next: Option<String>,
    pub encoded: usize,
}

impl Instance {
    /// Starts an instance of `function` over the messages directory `dir` (a client's mount).
    pub fn start(function: Function, dir: &Path, options: &Options) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .env(ROLE, "instance")
            .env(FUNCTION, function.name())
            .env("MESSAGES_DIR", dir)
            .env_remove("LOCAL_CREATE_MESSAGES_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(shift) = &options.clock {
            assert!(
                Path::new(FAKETIME).exists(),
                "libfaketime is missing (scripts/setup system)"
            );
            command
                .env("LD_PRELOAD", FAKETIME)
                .env("FAKETIME", shift)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let max_files = options.max_files;
        let procs = options.cgroup_procs.clone();
        unsafe {
            command.pre_exec(move || {
                if let Some(limit) = max_files {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(procs) = &procs {
                    std::fs::write(procs, std::process::id().to_string())?;
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start an instance");
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            input,
            output,
            function,
        }
    }

    fn call(&mut self, command: Value) -> Value {
        writeln!(self.input, "{command}").expect("send a command");
        self.input.flush().expect("send a command");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("an answer");
        assert!(!line.is_empty(), "the {:?} instance died", self.function);
        serde_json::from_str(&line).expect("a JSON answer")
    }

    fn http(
        &mut self,
        id: Option<&str>,
        query: Option<&str>,
        body: Option<(&[u8], &str)>,
    ) -> Answer {
        let reply = self.call(json!({
            "op": "http",
            "id": id,
            "query": query,
            "body": body.map(|(b, _)| B64.encode(b)),
            "content_type": body.map(|(_, ct)| ct),
        }));
        Answer {
            status: reply["status"].as_i64().expect("status"),
            body: B64
                .decode(reply["body"].as_str().unwrap_or_default())
                .expect("body"),
            encoded: reply["encoded"].as_u64().unwrap_or(0) as usize,
        }
    }

    /// POST: the status and, for a `201`, the id.
    pub fn post(&mut self, body: &[u8], content_type: &str) -> (i64, Option<String>) {
        assert_eq!(self.function, Function::Post);
        let answer = self.http(None, None, Some((body, content_type)));
        let id = answer.json()["id"].as_str().map(str::to_owned);
        (answer.status, id)
    }

    /// GET one message.
    pub fn get(&mut self, id: &str) -> Answer {
        assert_eq!(self.function, Function::Get);
        self.http(Some(id), None, None)
    }

    /// GET one page.
    pub fn list(&mut self, order: &str, after: Option<&str>, limit: usize) -> Listed {
        assert_eq!(self.function, Function::Get);
        let mut query = format!("order={order}&limit={limit}");
        if let Some(after) = after {
            query.push_str(&format!("&after={after}"));
        }
        let answer = self.http(None, Some(&query), None);
        let listing = answer.json();
        let ids = listing["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Listed {
            status: answer.status,
            ids,
            next: listing["next"].as_str().map(str::to_owned),
            encoded: answer.encoded,
        }
    }

    /// DELETE one message.
    pub fn delete(&mut self, id: &str) -> Answer {
        assert_eq!(self.function, Function::Delete);
        self.http(Some(id), None, None)
    }

    /// DELETE everything.
    pub fn delete_all(&mut self) -> Answer {
        assert_eq!(self.function, Function::Delete);
        self.http(None, None, None)
    }

    /// One scheduled run of reclaiming.
    pub fn reclaim(&mut self) -> Value {
        assert_eq!(self.function, Function::Delete);
        self.call(json!({ "op": "reclaim" }))
    }

    /// How many descriptors the instance has open.
    pub fn open_files(&mut self) -> u64 {
        self.call(json!({ "op": "fds" })).as_u64().unwrap_or(0)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
