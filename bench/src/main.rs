//! `efs-bench`: drives the message store designs for the benchmark harness (`bench/harness.py`).
//!
//! ```text
//! efs-bench seed  --dir D --count N [--size S]      write N messages straight into D
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
use shared::{
    format,
    http::{self, ListQuery},
    AppState, Config, Message, MessageId, Page, StoreError,
};

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
            eprintln!("usage: efs-bench seed|serve|probe ... (see the source)");
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

/// Writes `count` messages in the store's file format straight into `dir`, each where the store
/// keeps it (its shard directory), with no temporary and no fsync: seeding is set-up, not a
/// measured operation.
fn seed(dir: &Path, count: usize, size: usize) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let store = shared::MessageStore::new(dir);
    let start = Instant::now();
    for n in 0..count {
        let path = store.message_path(MessageId::generate());
        if let Some(shard) = path.parent() {
            fs::create_dir_all(shard)?;
        }
        fs::write(path, format::encode(CONTENT_TYPE, &body(size, n)))?;
    }
    println!(
        "{}",
        json!({"seeded": count, "ms": start.elapsed().as_secs_f64() * 1e3})
    );
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
                for id in &ids {
                    let event = Event::fixture("get-message").with_path_id(id);
                    let outcome = self.time(get_messages::handle(self.state, event.request()));
                    bad += usize::from(outcome.status != 200);
                    ns.push(outcome.ns);
                }
                json!({"ns": ns, "errors": bad})
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
                json!({"ns": [outcome.ns], "errors": usize::from(outcome.status != 200), "deleted": deleted})
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

/// The naive per-file design: the same files and responses, one file operation after another.
mod naive {
    use super::*;

    pub async fn get(state: &AppState, request: Request) -> Response<Body> {
        let result = async {
            let query = ListQuery::of(&request)?;
            let dir = state.store.dir().to_owned();
            let page = tokio::task::spawn_blocking(move || list(&dir, query.after, query.limit))
                .await
                .map_err(|e| StoreError::Unavailable(io::Error::other(e)))??;
            Ok(http::page(&page))
        }
        .await;
        http::respond(&request, result)
    }

    pub async fn delete(state: &AppState, request: Request) -> Response<Body> {
        let dir = state.store.dir().to_owned();
        let result = tokio::task::spawn_blocking(move || delete_all(&dir))
            .await
            .map_err(|e| StoreError::Unavailable(io::Error::other(e)))
            .and_then(|r| r)
            .map(http::deleted)
            .map_err(Into::into);
        http::respond(&request, result)
    }

    /// Lists the messages directory, then each shard directory, one after another.
    fn ids(dir: &Path) -> Result<Vec<MessageId>, StoreError> {
        let mut ids = Vec::new();
        for shard in fs::read_dir(dir)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                if let Some(id) = entry?
                    .file_name()
                    .to_str()
                    .and_then(|n| MessageId::parse(n).ok())
                {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn list(dir: &Path, after: Option<MessageId>, limit: usize) -> Result<Page, StoreError> {
        let ids = ids(dir)?;
        let start = after.map_or(0, |after| ids.partition_point(|id| *id <= after));
        let mut messages = Vec::new();
        let mut rest = ids[start..].iter();
        for id in rest.by_ref() {
            let bytes = match fs::read(shared::MessageStore::new(dir).message_path(*id)) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let (content_type, body) =
                format::decode(bytes).map_err(|_| StoreError::Corrupt(*id))?;
            messages.push(Message {
                id: *id,
                content_type,
                body,
            });
            if messages.len() == limit {
                break;
            }
        }
        let next = match rest.next() {
            Some(_) => messages.last().map(|m| m.id),
            None => None,
        };
        Ok(Page { messages, next })
    }

    fn delete_all(dir: &Path) -> Result<usize, StoreError> {
        let mut removed = 0;
        for id in ids(dir)? {
            match fs::remove_file(shared::MessageStore::new(dir).message_path(id)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
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
