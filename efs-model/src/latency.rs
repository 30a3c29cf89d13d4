//! Round trips to the server and what each one costs: EFS-like latencies, held per request.
//!
//! A request that the client answers from its caches costs nothing; every operation it must send
//! to the server (an RPC) adds that operation's latency, and the reply to the kernel is held
//! until the request's start plus the sum of its round trips. The latency is a deadline, not an
//! added sleep: the backing operation is done at once, so a backing operation faster than the
//! latency is hidden in it, like the local part of a network round trip.

use std::{
    thread,
    time::{Duration, Instant},
};

use crate::{
    faults::{Fault, Faults},
    stats::Stats,
};

/// The operations a client sends to the server, as NFSv4 names them (roughly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rpc {
    Lookup,
    Getattr,
    Readdir,
    Open,
    Read,
    Write,
    Commit,
    Create,
    Mkdir,
    Remove,
    Rename,
    Link,
    Symlink,
    Readlink,
    Setattr,
    Lock,
    Statfs,
    Access,
}

impl Rpc {
    /// Every operation, in the order the statistics report them.
    pub const ALL: [Rpc; 18] = [
        Rpc::Lookup,
        Rpc::Getattr,
        Rpc::Readdir,
        Rpc::Open,
        Rpc::Read,
        Rpc::Write,
        Rpc::Commit,
        Rpc::Create,
        Rpc::Mkdir,
        Rpc::Remove,
        Rpc::Rename,
        Rpc::Link,
        Rpc::Symlink,
        Rpc::Readlink,
        Rpc::Setattr,
        Rpc::Lock,
        Rpc::Statfs,
        Rpc::Access,
    ];

    /// Its name on the command line (`--faults`) and in the statistics.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::Lookup => "lookup",
            Rpc::Getattr => "getattr",
            Rpc::Readdir => "readdir",
            Rpc::Open => "open",
            Rpc::Read => "read",
            Rpc::Write => "write",
            Rpc::Commit => "commit",
            Rpc::Create => "create",
            Rpc::Mkdir => "mkdir",
            Rpc::Remove => "remove",
            Rpc::Rename => "rename",
            Rpc::Link => "link",
            Rpc::Symlink => "symlink",
            Rpc::Readlink => "readlink",
            Rpc::Setattr => "setattr",
            Rpc::Lock => "lock",
            Rpc::Statfs => "statfs",
            Rpc::Access => "access",
        }
    }

    /// The operation of this name.
    pub fn named(name: &str) -> Option<Rpc> {
        Rpc::ALL.into_iter().find(|rpc| rpc.name() == name)
    }
}

/// The latency of each kind of round trip.
#[derive(Clone, Copy, Debug)]
pub struct Latencies {
    /// Every metadata operation (lookup, getattr, readdir, open, create, remove, rename, ...).
    pub meta: Duration,
    /// One READ.
    pub read: Duration,
    /// One WRITE or COMMIT.
    pub write: Duration,
}

impl Latencies {
    /// What one `rpc` costs.
    pub fn of(&self, rpc: Rpc) -> Duration {
        match rpc {
            Rpc::Read => self.read,
            Rpc::Write | Rpc::Commit => self.write,
            _ => self.meta,
        }
    }
}

/// The round trips of one kernel request, and the moment its reply may leave.
pub struct Call<'a> {
    start: Instant,
    total: Duration,
    latencies: &'a Latencies,
    faults: &'a Faults,
    stats: &'a Stats,
    /// The kernel request this is, for the statistics.
    request: usize,
}

impl<'a> Call<'a> {
    /// Starts timing kernel request number `request` (an index into the statistics).
    pub fn new(
        request: usize,
        latencies: &'a Latencies,
        faults: &'a Faults,
        stats: &'a Stats,
    ) -> Self {
        stats.enter();
        Self {
            start: Instant::now(),
            total: Duration::ZERO,
            latencies,
            faults,
            stats,
            request,
        }
    }

    /// One round trip of `rpc`, done by `operation`: its latency (and any injected spike) is
    /// added to this request, and an injected error replaces the operation, which then never
    /// reaches the server.
    pub fn rpc<T>(
        &mut self,
        rpc: Rpc,
        operation: impl FnOnce() -> Result<T, i32>,
    ) -> Result<T, i32> {
        self.stats.rpc(rpc);
        self.total += self.latencies.of(rpc);
        match self.faults.roll(rpc) {
            Some(Fault::Error(errno)) => {
                self.stats.fault(errno);
                return Err(errno);
            }
            Some(Fault::Spike(extra)) => {
                self.stats.spike();
                self.total += extra;
            }
            None => {}
        }
        operation()
    }

    /// `rpc` counted `times` times: a transfer of several round trips (a large read or listing).
    pub fn more(&mut self, rpc: Rpc, times: u32) {
        for _ in 0..times {
            self.stats.rpc(rpc);
            self.total += self.latencies.of(rpc);
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        // Runs before the reply is sent: every handler makes its call first and replies last.
        let elapsed = self.start.elapsed();
        if self.total > elapsed {
            thread::sleep(self.total - elapsed);
        }
        self.stats.leave(self.request, self.total);
    }
}
