//! `efs-bench`: drives the message store designs for the benchmark harness (`bench/harness.py`).
//!
//! ```text
//! efs-bench seed  --dir D --count N [--size S] [--fill text|ctrl] [--rate R [--end-ms T]]
//!                 [--threads N] [--ids-out F]       write N messages straight into D
//! efs-bench floor --dir D --ids-file F [--repeat N] open, read and close the messages of F in
//!                                                   turn, one thread: the file system's floor
//! efs-bench wipe  --dir D [--threads N]             remove everything under D, in parallel
//! efs-bench serve --design ours|naive --dir D       answer timing requests, one JSON per line
//! efs-bench probe --mount M --backing B --stats S [--quick]   how the kernel overlaps requests on latfs
//! ```
//!
//! `serve` is the Rust side of the harness: the harness sends the same requests to it and to the
//! Python baseline (`bench/baseline.py serve`), and each times its own handler calls, so no
//! inter-process overhead is in the figures.
//!
//! * `ours` calls the real function handlers (`get_messages::handle`, `post_message::handle`,
//!   `delete_messages::handle`) in process, with API Gateway HTTP API events (from the template
//!   `bench/event.json`, parsed by lambda_http), on the real `MessageStore` (bounded parallel I/O).
//! * `naive` is the same files and the same response code, but every file operation of a listing
//!   or a delete-all is done one after another, on one thread. Its POST and GET-by-id are the
//!   real handlers, because a single-file operation has nothing to overlap.

use std::{
    fs,
    io::{self, BufRead, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{Arc, Barrier},
    thread,
    time::Instant,
};

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use test_support::Event;
use shared::{format, AppState, Config, MessageId};

const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let result = match args.first().map(String::as_str) {
        Some("seed") => seed(
            Path::new(&flag("--dir").expect("--dir")),
            flag("--count").expect("--count").parse().expect("count"),
            flag("--size").map_or(256, |s| s.parse().expect("size")),
            match flag("--fill").as_deref() {
                None | Some("text") => Fill::Text,
                Some("ctrl") => Fill::Control,
                Some(other) => panic!("--fill text|ctrl, not {other}"),
            },
            flag("--rate").map(|r| r.parse().expect("rate (messages per second)")),
            flag("--end-ms").map(|t| t.parse().expect("end (Unix milliseconds)")),
            flag("--threads").map_or(4, |t| t.parse().expect("threads")),
            flag("--ids-out").map(PathBuf::from),
        ),
        Some("floor") => floor(
            Path::new(&flag("--dir").expect("--dir")),
            Path::new(&flag("--ids-file").expect("--ids-file")),
            flag("--repeat").map_or(5, |n| n.parse().expect("repeat")),
        ),
        Some("wipe") => wipe(
            Path::new(&flag("--dir").expect("--dir")),
            flag("--threads").map_or(4, |t| t.parse().expect("threads")),
        ),
        Some("serve") => serve(
            &flag("--design").expect("--design"),
            PathBuf::from(flag("--dir").expect("--dir")),
        ),
        Some("probe") => probe(
            Path::new(&flag("--mount").expect("--mount")),
            Path::new(&flag("--backing").expect("--backing")),
            Path::new(&flag("--stats").expect("--stats")),
            args.iter().any(|a| a == "--quick"),
        ),
        _ => {
            eprintln!("usage: efs-bench seed|floor|wipe|serve|probe ... (see the source)");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("efs-bench: {e}");
        std::process::exit(1);
    }
}

/// A message body of `size` bytes of printable ASCII (no newline, so the line-per-message
/// baseline can store it too), distinct per `n`.
fn body(size: usize, n: usize) -> Vec<u8> {
    let mut body = format!("message {n:08} ").into_bytes();
    body.resize(size.max(1), b'x');
    body.truncate(size.max(1));
    body
}

/// What a seeded message's body is made of.
#[derive(Clone, Copy)]
enum Fill {
    /// Printable text ([`body`]).
    Text,
    /// `\x01` control characters: valid UTF-8 that JSON escapes six-fold (`\u0001`).
    Control,
}

/// Writes `count` messages in the store's file format straight into `dir`, each where the store
/// keeps it (`MessageStore::message_path`, so the layout is the store's own, whatever it is), with
/// no temporary and no fsync: seeding is set-up, not a measured operation. `threads` writers
/// share the work.
///
/// Ids: with no `rate`, `MessageId::generate()` (all created "now", as fast as seeding goes);
/// with `rate` (messages per second), spread evenly over a timeline that ends at `end_ms` (Unix
/// milliseconds, default now), e.g. 1,000,000 at 100/s cover the last 2.8 hours: UUID v7 with
/// that timestamp and random bits, then `MessageId::parse`. `ids_out` receives every id, sorted,
/// one per line.
fn seed(
    dir: &Path,
    count: usize,
    size: usize,
    fill: Fill,
    rate: Option<f64>,
    end_ms: Option<u64>,
    threads: usize,
    ids_out: Option<PathBuf>,
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let start = Instant::now();
    let mut ids: Vec<MessageId> = match rate {
        None => (0..count).map(|_| MessageId::generate()).collect(),
        Some(rate) => {
            let end_ms = end_ms.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            });
            let end_us = end_ms as f64 * 1e3;
            (0..count)
                .map(|n| {
                    // The last message at `end`, the others 1/rate s apart before it.
                    let us = end_us - (count - 1 - n) as f64 * 1e6 / rate;
                    let us = us.max(0.0) as u64;
                    let uuid = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                        uuid::NoContext,
                        us / 1_000_000,
                        (us % 1_000_000) as u32 * 1000,
                    ));
                    MessageId::parse(&uuid.hyphenated().to_string())
                        .map_err(|e| io::Error::other(format!("seeded id {uuid}: {e}")))
                })
                .collect::<io::Result<_>>()?
        }
    };
    ids.sort_unstable();
    ids.dedup();
    let ids = Arc::new(ids);
    let store = Arc::new(shared::MessageStore::new(dir));
    let threads = threads.clamp(1, 64);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    const CHUNK: usize = 256;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (ids, store, next) = (Arc::clone(&ids), Arc::clone(&store), Arc::clone(&next));
            thread::spawn(move || -> io::Result<()> {
                let mut made = std::collections::HashSet::new();
                loop {
                    let from = next.fetch_add(CHUNK, std::sync::atomic::Ordering::Relaxed);
                    if from >= ids.len() {
                        return Ok(());
                    }
                    for (n, id) in ids.iter().enumerate().skip(from).take(CHUNK) {
                        let path = store.message_path(*id);
                        if let Some(parent) = path.parent() {
                            if !made.contains(parent) {
                                fs::create_dir_all(parent)?;
                                made.insert(parent.to_owned());
                            }
                        }
                        let text = match fill {
                            Fill::Text => body(size, n),
                            Fill::Control => vec![1; size],
                        };
                        fs::write(&path, format::encode(CONTENT_TYPE, &text))?;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| io::Error::other("seeding thread panicked"))??;
    }
    if let Some(out) = ids_out {
        let mut text = String::with_capacity(ids.len() * 37);
        for id in ids.iter() {
            text.push_str(&id.to_string());
            text.push('\n');
        }
        fs::write(out, text)?;
    }
    println!(
        "{}",
        json!({"seeded": ids.len(), "ms": start.elapsed().as_secs_f64() * 1e3,
               "first": ids.first().map(ToString::to_string),
               "last": ids.last().map(ToString::to_string)})
    );
    Ok(())
}

/// The file system's floor for a page: one thread opens, reads to the end and closes each
/// message of `ids_file` (ids, one per line) under `dir` in turn, `repeat` times after one pass
/// that is not counted (it warms whatever the file system caches, as the pages before it did).
/// Prints each pass's wall time and the CPU time this thread spent in it (`/proc/thread-self/
/// schedstat`, ns), so that a page's latency and CPU can be compared against what merely
/// reading its files costs on the same mount, at the same CPU share, in the same run.
fn floor(dir: &Path, ids_file: &Path, repeat: usize) -> io::Result<()> {
    let store = shared::MessageStore::new(dir);
    let paths: Vec<PathBuf> = fs::read_to_string(ids_file)?
        .split_whitespace()
        .map(|id| {
            MessageId::parse(id)
                .map(|id| store.message_path(id))
                .map_err(|e| io::Error::other(format!("id {id}: {e}")))
        })
        .collect::<io::Result<_>>()?;
    let cpu_ns = || -> io::Result<u64> {
        let text = fs::read_to_string("/proc/thread-self/schedstat")?;
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| io::Error::other("no schedstat"))
    };
    let pass = || -> io::Result<(f64, f64)> {
        let (start, cpu0) = (Instant::now(), cpu_ns()?);
        let mut buffer = Vec::new();
        for path in &paths {
            buffer.clear();
            fs::File::open(path)?.read_to_end(&mut buffer)?;
        }
        Ok((
            start.elapsed().as_secs_f64() * 1e3,
            (cpu_ns()? - cpu0) as f64 / 1e6,
        ))
    };
    pass()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let (w, c) = pass()?;
        wall.push(w);
        cpu.push(c);
    }
    println!(
        "{}",
        json!({"files": paths.len(), "wall_ms": wall, "cpu_ms": cpu})
    );
    Ok(())
}

/// Removes everything under `dir` (not `dir` itself), `threads` subtrees at a time: a million
/// seeded files go in well under a minute.
fn wipe(dir: &Path, threads: usize) -> io::Result<()> {
    let start = Instant::now();
    // Work items: the subtrees two levels down (enough to keep every thread busy whatever the
    // layout), then whatever is left.
    let mut items = Vec::new();
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            for inner in fs::read_dir(entry.path())? {
                items.push(inner?.path());
            }
        } else {
            files.push(entry.path());
        }
    }
    let items = Arc::new(items);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..threads.clamp(1, 64))
        .map(|_| {
            let (items, next) = (Arc::clone(&items), Arc::clone(&next));
            thread::spawn(move || -> io::Result<()> {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = items.get(i) else {
                        return Ok(());
                    };
                    let result = match fs::symlink_metadata(path) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
                        Ok(_) => fs::remove_file(path),
                        Err(e) => Err(e),
                    };
                    match result {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| io::Error::other("wipe thread panicked"))??;
    }
    for file in files {
        fs::remove_file(file)?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    println!("{}", json!({"wiped": dir, "ms": start.elapsed().as_secs_f64() * 1e3}));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// serve

#[derive(Clone, Copy, PartialEq, Eq)]
enum Design {
    Ours,
    Naive,
}

struct Server {
    rt: tokio::runtime::Runtime,
    state: &'static AppState,
    design: Design,
    posted: usize,
}

fn serve(design: &str, dir: PathBuf) -> io::Result<()> {
    let design = match design {
        "ours" => Design::Ours,
        "naive" => Design::Naive,
        other => return Err(io::Error::other(format!("unknown design {other}"))),
    };
    // Like a Lambda instance: tokio's default multi-threaded runtime (one worker per core).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let state: &'static AppState = Box::leak(Box::new(AppState::new(Config {
        messages_dir: dir,
        max_message_bytes: shared::config::DEFAULT_MAX_MESSAGE_BYTES,
        retention_days: 0,
    })));
    let mut server = Server {
        rt,
        state,
        design,
        posted: 0,
    };
    let stdin = io::stdin();
    let mut stdout = io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) if request["op"] == "quit" => break,
            Ok(request) => server.answer(&request),
            Err(e) => json!({"error": e.to_string()}),
        };
        writeln!(stdout, "{answer}")?;
        stdout.flush()?;
    }
    Ok(())
}

/// What one timed call returned, for the harness to check.
struct Outcome {
    ns: u64,
    status: u16,
    response: Response<Body>,
}

impl Server {
    fn answer(&mut self, request: &Value) -> Value {
        match request["op"].as_str().unwrap_or("") {
            "post" => {
                let count = request["count"].as_u64().unwrap_or(1) as usize;
                let size = request["size"].as_u64().unwrap_or(256) as usize;
                let mut ns = Vec::with_capacity(count);
                let mut bad = 0;
                for _ in 0..count {
                    self.posted += 1;
                    let event = Event::fixture("post-message-text")
                        .with_body(&body(size, 1_000_000 + self.posted), Some(CONTENT_TYPE));
                    let outcome = self.time(post_message::handle(self.state, event.request()));
                    bad += usize::from(outcome.status != 201);
                    ns.push(outcome.ns);
                }
                json!({"ns": ns, "errors": bad})
            }
            "list" => {
                let limit = request["limit"].as_u64().unwrap_or(100);
                let query = match request["after"].as_str() {
                    Some(after) => format!("limit={limit}&after={after}"),
                    None => format!("limit={limit}"),
                };
                let repeat = request["repeat"].as_u64().unwrap_or(1) as usize;
                let mut ns = Vec::with_capacity(repeat);
                let (mut bad, mut messages, mut bytes) = (0, 0, 0);
                for _ in 0..repeat {
                    let event = Event::fixture("get-messages").with_query(&query);
                    let outcome = match self.design {
                        Design::Ours => {
                            self.time(get_messages::handle(self.state, event.request()))
                        }
                        Design::Naive => self.time(naive::get(self.state, event.request())),
                    };
                    bad += usize::from(outcome.status != 200);
                    let body: &[u8] = outcome.response.body().as_ref();
                    bytes = body.len();
                    messages = serde_json::from_slice::<Value>(body)
                        .ok()
                        .and_then(|v| v["messages"].as_array().map(Vec::len))
                        .unwrap_or(0);
                    ns.push(outcome.ns);
                }
                json!({"ns": ns, "errors": bad, "messages": messages, "bytes": bytes})
            }
            "get" => {
                let ids: Vec<String> = request["ids"]
                    .as_array()
                    .map(|ids| {
                        ids.iter()
                            .filter_map(|id| id.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut ns = Vec::with_capacity(ids.len());
                let mut bad = 0;
                let mut first_failure = None;
                for id in &ids {
                    let event = Event::fixture("get-message").with_path_id(id);
                    let outcome = self.time(get_messages::handle(self.state, event.request()));
                    if outcome.status != 200 {
                        bad += 1;
                        let body = String::from_utf8_lossy(outcome.response.body().as_ref());
                        first_failure.get_or_insert(format!("{id}: {} {body}", outcome.status));
                    }
                    ns.push(outcome.ns);
                }
                json!({"ns": ns, "errors": bad, "first_failure": first_failure})
            }
            "delete_all" => {
                let event = Event::fixture("delete-messages");
                let outcome = match self.design {
                    Design::Ours => self.time(delete_messages::handle(self.state, event.request())),
                    Design::Naive => self.time(naive::delete(self.state, event.request())),
                };
                let body: &[u8] = outcome.response.body().as_ref();
                let deleted = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["deleted"].as_u64())
                    .unwrap_or(0);
                // Old contract: 200 with the count deleted; new contract: 204 at once (the store
                // lays down a cut-off and reclaims later). Either is a success here.
                let ok = matches!(outcome.status, 200 | 204);
                json!({"ns": [outcome.ns], "errors": usize::from(!ok), "deleted": deleted,
                       "status": outcome.status})
            }
            other => json!({"error": format!("unknown op {other:?}")}),
        }
    }

    /// Times one handler call on the runtime. The request is built, and the future made, before
    /// the clock starts; nothing runs until `block_on`.
    fn time(&self, call: impl std::future::Future<Output = Response<Body>>) -> Outcome {
        let start = Instant::now();
        let response = self.rt.block_on(call);
        let ns = start.elapsed().as_nanos() as u64;
        Outcome {
            ns,
            status: response.status().as_u16(),
            response,
        }
    }
}

/// The naive per-file design: the same files, one file operation after another. It depends on
/// nothing of the store but the file format and the rule that a message file is named by its
/// id: it walks the whole messages tree (whatever the store's layout) one directory after
/// another, and builds its own responses in the original contract's shape (a page of
/// `{"messages": [...], "next": ...}`, `200 {"deleted": n}`), so that the store and the contract
/// can change without breaking the comparison.
mod naive {
    use super::*;
    use lambda_http::RequestExt;

    fn json_response(status: u16, value: &Value) -> Response<Body> {
        let mut response = Response::new(Body::Text(value.to_string()));
        *response.status_mut() = status.try_into().expect("status");
        response
    }

    fn failed(e: impl std::fmt::Display) -> Response<Body> {
        json_response(500, &json!({"error": e.to_string()}))
    }

    pub async fn get(state: &AppState, request: Request) -> Response<Body> {
        let params = request.query_string_parameters();
        let limit = params
            .first("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(100);
        let after = match params.first("after").map(MessageId::parse) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => return json_response(400, &json!({"error": e.to_string()})),
        };
        let dir = state.store.dir().to_owned();
        match tokio::task::spawn_blocking(move || list(&dir, after, limit)).await {
            Ok(Ok(page)) => json_response(200, &page),
            Ok(Err(e)) => failed(e),
            Err(e) => failed(e),
        }
    }

    pub async fn delete(state: &AppState, _request: Request) -> Response<Body> {
        let dir = state.store.dir().to_owned();
        match tokio::task::spawn_blocking(move || delete_all(&dir)).await {
            Ok(Ok(n)) => json_response(200, &json!({ "deleted": n })),
            Ok(Err(e)) => failed(e),
            Err(e) => failed(e),
        }
    }

    /// Every message file under `dir`, in id order: the tree is walked one directory after
    /// another, at any depth.
    fn ids(dir: &Path) -> io::Result<Vec<(MessageId, PathBuf)>> {
        let mut ids = Vec::new();
        let mut dirs = vec![dir.to_owned()];
        while let Some(d) = dirs.pop() {
            for entry in fs::read_dir(&d)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    dirs.push(entry.path());
                } else if let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| MessageId::parse(n).ok())
                {
                    ids.push((id, entry.path()));
                }
            }
        }
        ids.sort_unstable_by_key(|(id, _)| *id);
        Ok(ids)
    }

    fn list(dir: &Path, after: Option<MessageId>, limit: usize) -> io::Result<Value> {
        let ids = ids(dir)?;
        let start = after.map_or(0, |after| ids.partition_point(|(id, _)| *id <= after));
        let mut messages = Vec::new();
        let mut last = None;
        let mut rest = ids[start..].iter();
        for (id, path) in rest.by_ref() {
            let bytes = match fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let (content_type, body) = format::decode(bytes)
                .map_err(|_| io::Error::other(format!("message {id} is corrupt")))?;
            messages.push(json!({
                "id": id.to_string(),
                "size": body.len(),
                "contentType": content_type,
                "createdAt": id.created_at_rfc3339(),
                "body": String::from_utf8_lossy(&body),
                "bodyEncoding": "utf8",
            }));
            last = Some(*id);
            if messages.len() == limit {
                break;
            }
        }
        let next = match rest.next() {
            Some(_) => last.map(|id| id.to_string()),
            None => None,
        };
        Ok(json!({"messages": messages, "next": next}))
    }

    fn delete_all(dir: &Path) -> io::Result<usize> {
        let mut removed = 0;
        for (_, path) in ids(dir)? {
            match fs::remove_file(path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

// ---------------------------------------------------------------------------------------------
// probe

fn latfs_stats(socket: &Path) -> io::Result<Value> {
    let mut stream = UnixStream::connect(socket)?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    serde_json::from_str(&text).map_err(io::Error::other)
}

/// Requests per operation between two statistics snapshots (only the non-zero ones).
fn stats_diff(before: &Value, after: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(after) = after.as_object() {
        for (op, value) in after {
            let count = |v: &Value| v.get(0).and_then(Value::as_u64).unwrap_or(0);
            let injected = |v: &Value| v.get(1).and_then(Value::as_u64).unwrap_or(0);
            let n = count(value).saturating_sub(count(&before[op]));
            if n > 0 {
                let ns = injected(value).saturating_sub(injected(&before[op]));
                out.insert(
                    op.clone(),
                    json!({"count": n, "injected_ms": ns as f64 / 1e6}),
                );
            }
        }
    }
    Value::Object(out)
}

/// Runs `work(i)` for `i` in `0..n` on `n` threads released together; returns the wall time.
fn parallel(n: usize, work: impl Fn(usize) -> io::Result<()> + Send + Sync + 'static) -> f64 {
    let work = Arc::new(work);
    let barrier = Arc::new(Barrier::new(n + 1));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let work = Arc::clone(&work);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                work(i)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle
            .join()
            .expect("probe thread")
            .expect("probe operation");
    }
    start.elapsed().as_secs_f64() * 1e3
}

fn probe(mount: &Path, backing: &Path, stats: &Path, quick: bool) -> io::Result<()> {
    let n = 64;
    let mut results = Vec::new();
    let mut record = |name: &str, ms: f64, before: &Value| -> io::Result<()> {
        let ops = stats_diff(before, &latfs_stats(stats)?);
        let serial: f64 = ops
            .as_object()
            .map(|o| o.values().filter_map(|v| v["injected_ms"].as_f64()).sum())
            .unwrap_or(0.0);
        eprintln!("probe {name}: {ms:.1} ms (injected, one after another: {serial:.1} ms)");
        results.push(json!({"probe": name, "ms": ms, "serial_injected_ms": serial, "ops": ops}));
        Ok(())
    };
    let fresh = |name: &str| -> io::Result<()> {
        let _ = fs::remove_dir_all(backing.join(name));
        fs::create_dir_all(backing.join(name))
    };

    // Uncached names: with entry TTL 0 every name is looked up afresh.
    fresh("one")?;
    for i in 0..n {
        fs::write(backing.join(format!("one/f{i}")), b"x")?;
    }
    fresh("many")?;
    for i in 0..n {
        fs::create_dir(backing.join(format!("many/d{i}")))?;
        fs::write(backing.join(format!("many/d{i}/f")), b"x")?;
    }

    let before = latfs_stats(stats)?;
    let start = Instant::now();
    fs::metadata(mount.join("one/f0"))?;
    record("1 stat", start.elapsed().as_secs_f64() * 1e3, &before)?;

    let m = mount.to_owned();
    let before = latfs_stats(stats)?;
    let ms = parallel(n, move |i| {
        fs::metadata(m.join(format!("one/f{i}"))).map(drop)
    });
    record("64 parallel stats, one directory", ms, &before)?;

    let m = mount.to_owned();
    let before = latfs_stats(stats)?;
    let ms = parallel(n, move |i| {
        fs::metadata(m.join(format!("many/d{i}/f"))).map(drop)
    });
    record(
        "64 parallel stats, one file in each of 64 subdirectories of one directory",
        ms,
        &before,
    )?;

    if quick {
        for name in ["one", "many"] {
            let _ = fs::remove_dir_all(backing.join(name));
        }
        println!("{}", Value::Array(results));
        return Ok(());
    }

    let m = mount.to_owned();
    let before = latfs_stats(stats)?;
    let ms = parallel(n, move |i| fs::read(m.join(format!("one/f{i}"))).map(drop));
    record("64 parallel reads (fs::read), one directory", ms, &before)?;

    let m = mount.to_owned();
    let before = latfs_stats(stats)?;
    let ms = parallel(n, move |i| {
        fs::write(m.join(format!("one/new{i}")), b"x").map(drop)
    });
    record("64 parallel creates+writes, one directory", ms, &before)?;

    let m = mount.to_owned();
    let before = latfs_stats(stats)?;
    let ms = parallel(n, move |i| fs::remove_file(m.join(format!("one/f{i}"))));
    record("64 parallel unlinks, one directory", ms, &before)?;

    let m = mount.to_owned();
    let before = latfs_stats(stats)?;
    let ms = parallel(n, move |i| fs::remove_file(m.join(format!("many/d{i}/f"))));
    record(
        "64 parallel unlinks, one file in each of 64 subdirectories",
        ms,
        &before,
    )?;

    // What sharding the messages directory would buy DELETE all: 10,000 files in 64
    // subdirectories, 64 unlinks in flight (64 workers, each taking the next file in id order,
    // as the store's `buffered(64)` does).
    let files = 10_000;
    let shards = 64;
    fresh("sharded")?;
    for s in 0..shards {
        fs::create_dir(backing.join(format!("sharded/{s:02x}")))?;
    }
    for i in 0..files {
        fs::write(
            backing.join(format!("sharded/{:02x}/m{i}", i % shards)),
            b"x",
        )?;
    }
    let m = mount.to_owned();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let before = latfs_stats(stats)?;
    let ms = parallel(n, move |_| loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if i >= files {
            return Ok(());
        }
        fs::remove_file(m.join(format!("sharded/{:02x}/m{i}", i % shards)))?;
    });
    record(
        "unlink 10,000 files spread over 64 directories, 64 in flight",
        ms,
        &before,
    )?;

    // Listing: how many READDIR requests the kernel sends for 10,000 entries.
    fresh("list")?;
    for _ in 0..10_000 {
        fs::write(backing.join(format!("list/{}", MessageId::generate())), b"")?;
    }
    let before = latfs_stats(stats)?;
    let start = Instant::now();
    let count = fs::read_dir(mount.join("list"))?.count();
    assert_eq!(count, 10_000);
    record(
        "read_dir of 10,000 entries",
        start.elapsed().as_secs_f64() * 1e3,
        &before,
    )?;

    for name in ["one", "many", "sharded", "list"] {
        let _ = fs::remove_dir_all(backing.join(name));
    }
    println!("{}", Value::Array(results));
    Ok(())
}
