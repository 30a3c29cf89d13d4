//! What the model counted: kernel requests (with the latency held for each), round trips to the
//! server, injected faults. Served as one JSON object to every connection on `--stats-socket`.

use std::{
    io::Write,
    os::unix::net::UnixListener,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use crate::latency::Rpc;

/// The kernel's requests, in the order the statistics report them (the names the benchmark's
/// harness reads).
pub const REQUESTS: [&str; 26] = [
    "lookup",
    "getattr",
    "setattr",
    "create",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "rename",
    "link",
    "symlink",
    "open",
    "opendir",
    "readdir",
    "access",
    "statfs",
    "getlk",
    "setlk",
    "read",
    "write",
    "fsync",
    "fsyncdir",
    "flush",
    "release",
    "releasedir",
    "readlink",
];

/// The index of a kernel request in [`REQUESTS`].
pub fn request(name: &str) -> usize {
    REQUESTS.iter().position(|r| *r == name).unwrap_or(0)
}

const ERRORS: [(i32, &str); 4] = [
    (libc::EIO, "eio"),
    (libc::ENOSPC, "enospc"),
    (libc::ESTALE, "estale"),
    (libc::EACCES, "eacces"),
];

/// Counters, updated by every request.
pub struct Stats {
    count: [AtomicU64; REQUESTS.len()],
    held_ns: [AtomicU64; REQUESTS.len()],
    rpcs: [AtomicU64; Rpc::ALL.len()],
    faults: [AtomicU64; ERRORS.len()],
    spikes: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            count: std::array::from_fn(|_| AtomicU64::new(0)),
            held_ns: std::array::from_fn(|_| AtomicU64::new(0)),
            rpcs: std::array::from_fn(|_| AtomicU64::new(0)),
            faults: std::array::from_fn(|_| AtomicU64::new(0)),
            spikes: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        }
    }

    /// A kernel request started.
    pub fn enter(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
    }

    /// Kernel request `request` ends, having been held `held`.
    pub fn leave(&self, request: usize, held: Duration) {
        self.count[request].fetch_add(1, Ordering::Relaxed);
        self.held_ns[request].fetch_add(held.as_nanos() as u64, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// One round trip to the server.
    pub fn rpc(&self, rpc: Rpc) {
        if let Some(i) = Rpc::ALL.iter().position(|r| *r == rpc) {
            self.rpcs[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One injected error.
    pub fn fault(&self, errno: i32) {
        if let Some(i) = ERRORS.iter().position(|(e, _)| *e == errno) {
            self.faults[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One injected latency spike.
    pub fn spike(&self) {
        self.spikes.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything, as JSON: `"<request>": [count, held ns]` per kernel request (the latfs
    /// format the harness reads), `max_in_flight`, `rpc` (round trips by operation) and
    /// `faults` (injected errors by errno, and spikes).
    pub fn json(&self) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::from("{");
        for (i, name) in REQUESTS.iter().enumerate() {
            out.push_str(&format!(
                "\"{name}\":[{},{}],",
                load(&self.count[i]),
                load(&self.held_ns[i])
            ));
        }
        out.push_str("\"rpc\":{");
        let rpcs: Vec<String> = Rpc::ALL
            .iter()
            .enumerate()
            .map(|(i, rpc)| format!("\"{}\":{}", rpc.name(), load(&self.rpcs[i])))
            .collect();
        out.push_str(&rpcs.join(","));
        out.push_str("},\"faults\":{");
        let mut faults: Vec<String> = ERRORS
            .iter()
            .enumerate()
            .map(|(i, (_, name))| format!("\"{name}\":{}", load(&self.faults[i])))
            .collect();
        faults.push(format!("\"spike\":{}", load(&self.spikes)));
        out.push_str(&faults.join(","));
        out.push_str(&format!(
            "}},\"max_in_flight\":{}}}",
            load(&self.max_in_flight)
        ));
        out
    }
}

/// Serves the statistics on a Unix socket at `path`: one JSON object per connection.
pub fn serve(stats: Arc<Stats>, path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(stats.json().as_bytes());
        }
    });
    Ok(())
}
