//! `latfs`: a model of an EFS client for the tests and the benchmark. See README.md.
//!
//! A FUSE passthrough of a backing directory that charges EFS-like latencies for every round
//! trip to the "server" (the backing directory), and, with `--nfs-cache`, caches attributes,
//! names, listings and data as the Linux NFS client does: several mounts of one backing
//! directory are several NFS clients of one server, each with its own caches. Faults can be
//! injected, reproducibly.

mod client;
mod faults;
mod fs;
mod latency;
mod server;
mod stats;

use std::{ffi::OsString, path::PathBuf, sync::Arc, time::Duration};

use fuser::{MountOption, SessionACL};

use crate::{
    client::CacheTimes,
    faults::Faults,
    fs::{ModelFs, Settings},
    latency::Latencies,
    stats::Stats,
};

const USAGE: &str = "\
usage: latfs <backing dir> <mount point> [options]

Latency (per round trip to the server):
  --meta-us N          every metadata operation (lookup, getattr, readdir, open, create, ...) [1000]
  --read-us N          one READ [250]
  --write-us N         one WRITE or COMMIT (fsync) [2700]

The NFS client model (several mounts of one backing directory are several clients):
  --nfs-cache          cache attributes, names, listings and data as the Linux NFS client does
  --acregmin S         seconds (decimals allowed) a file's attributes are trusted at first [3]
  --acregmax S         ... at most [60]
  --acdirmin S         seconds a directory's attributes (and so its names) are trusted at first [30]
  --acdirmax S         ... at most [60]

Faults (on round trips; SIGUSR1 stops injecting them, SIGUSR2 starts again):
  --faults SPEC        e.g. eio:0.01:read+write,estale:0.002:lookup,spike=200:0.01
                       WHAT:RATE[:OPS]; WHAT = eio|enospc|estale|eacces|spike=<ms>; OPS = op+op,
                       or meta, data, all (default)
  --seed N             the seed the faults are drawn from [0]

Without --nfs-cache (the original latency file system):
  --entry-ttl-ms N     how long the kernel caches a name [0]
  --attr-ttl-ms N      how long the kernel caches attributes [1000]

Other:
  --threads N          request threads, i.e. round trips in flight at once [128]
  --stats-socket PATH  serve the request counts as JSON to every connection
  --no-flock           do not forward flock(2) locks
  --serial-dirops      do not ask the kernel for parallel lookups in one directory
  --name NAME          the file system's name in the mount table [latfs]

SIGTERM or SIGINT unmounts and exits.";

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("latfs: {problem}");
    }
    eprintln!("{USAGE}");
    std::process::exit(2);
}

struct Options {
    backing: PathBuf,
    mountpoint: PathBuf,
    settings: Settings,
    threads: usize,
    stats_socket: Option<PathBuf>,
    name: String,
}

fn parse() -> Options {
    let mut args = std::env::args_os().skip(1);
    let mut positional = Vec::new();
    let mut latencies = Latencies {
        meta: Duration::from_micros(1000),
        read: Duration::from_micros(250),
        write: Duration::from_micros(2700),
    };
    let mut nfs_cache = false;
    let mut times = CacheTimes::default();
    let mut entry_ttl = Duration::ZERO;
    let mut attr_ttl = Duration::from_secs(1);
    let mut threads = 128;
    let mut stats_socket = None;
    let mut flock = true;
    let mut parallel_dirops = true;
    let mut faults_spec = String::new();
    let mut seed = 0;
    let mut name = "latfs".to_owned();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.to_str().map(str::to_owned) else {
            positional.push(PathBuf::from(arg));
            continue;
        };
        let mut value = |what: &str| -> String {
            args.next()
                .and_then(|v| v.into_string().ok())
                .unwrap_or_else(|| usage(&format!("{flag} needs {what}")))
        };
        let micros = |v: String| -> Duration {
            Duration::from_micros(v.parse().unwrap_or_else(|_| usage("bad number")))
        };
        let seconds = |v: String| -> Duration {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .unwrap_or_else(|| usage(&format!("bad number of seconds {v:?}")))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--meta-us" => latencies.meta = micros(value("microseconds")),
            "--read-us" => latencies.read = micros(value("microseconds")),
            "--write-us" => latencies.write = micros(value("microseconds")),
            "--nfs-cache" => nfs_cache = true,
            "--acregmin" => times.acregmin = seconds(value("seconds")),
            "--acregmax" => times.acregmax = seconds(value("seconds")),
            "--acdirmin" => times.acdirmin = seconds(value("seconds")),
            "--acdirmax" => times.acdirmax = seconds(value("seconds")),
            "--faults" => faults_spec = value("a fault list"),
            "--seed" => {
                seed = value("a number")
                    .parse()
                    .unwrap_or_else(|_| usage("bad seed"))
            }
            "--entry-ttl-ms" => entry_ttl = micros(value("milliseconds")) * 1000,
            "--attr-ttl-ms" => attr_ttl = micros(value("milliseconds")) * 1000,
            "--threads" => {
                threads = value("a number")
                    .parse::<usize>()
                    .unwrap_or_else(|_| usage("bad thread count"))
                    .max(1)
            }
            "--stats-socket" => stats_socket = Some(PathBuf::from(value("a path"))),
            "--no-flock" => flock = false,
            "--serial-dirops" => parallel_dirops = false,
            "--name" => name = value("a name"),
            other if other.starts_with("--") => usage(&format!("unknown option {other}")),
            _ => positional.push(PathBuf::from(OsString::from(flag))),
        }
    }
    if times.acregmin > times.acregmax || times.acdirmin > times.acdirmax {
        usage("a minimum attribute timeout is above its maximum");
    }
    let faults = Faults::parse(&faults_spec, seed).unwrap_or_else(|e| usage(&e));
    let [backing, mountpoint] = <[PathBuf; 2]>::try_from(positional)
        .unwrap_or_else(|_| usage("need a backing directory and a mount point"));
    Options {
        backing,
        mountpoint,
        settings: Settings {
            latencies,
            nfs_cache: nfs_cache.then_some(times),
            entry_ttl,
            attr_ttl,
            flock,
            parallel_dirops,
            faults: Arc::new(faults),
        },
        threads,
        stats_socket,
        name,
    }
}

/// Blocks the signals this process handles in every thread (the main thread waits for them).
fn block_signals() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn main() {
    let options = parse();
    let backing = std::fs::canonicalize(&options.backing).unwrap_or_else(|e| {
        eprintln!(
            "latfs: backing directory {}: {e}",
            options.backing.display()
        );
        std::process::exit(1);
    });
    let signals = block_signals();
    let stats = Arc::new(Stats::new());
    if let Some(socket) = &options.stats_socket {
        if let Err(e) = stats::serve(Arc::clone(&stats), socket) {
            eprintln!("latfs: stats socket {}: {e}", socket.display());
            std::process::exit(1);
        }
    }
    let describe = format!(
        "meta {:?}, read {:?}, write {:?}, {} threads, {}{}",
        options.settings.latencies.meta,
        options.settings.latencies.read,
        options.settings.latencies.write,
        options.threads,
        match options.settings.nfs_cache {
            Some(t) => format!(
                "NFS client cache (acregmin {:?}, acregmax {:?}, acdirmin {:?}, acdirmax {:?})",
                t.acregmin, t.acregmax, t.acdirmin, t.acdirmax
            ),
            None => format!(
                "entry ttl {:?}, attr ttl {:?}",
                options.settings.entry_ttl, options.settings.attr_ttl
            ),
        },
        if options.settings.faults.any() {
            ", faults on"
        } else {
            ""
        },
    );
    let fs = ModelFs::new(&backing, options.settings, Arc::clone(&stats)).unwrap_or_else(|e| {
        eprintln!("latfs: cannot serve {}: {e}", backing.display());
        std::process::exit(1);
    });
    let faults = fs.faults();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(options.name.clone()),
        MountOption::Subtype("latfs".to_owned()),
        MountOption::RW,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(options.threads);
    config.clone_fd = true;
    let session = match fuser::spawn_mount(fs, &options.mountpoint, &config) {
        Ok(session) => session,
        Err(e) => {
            eprintln!(
                "latfs: cannot mount on {}: {e}",
                options.mountpoint.display()
            );
            std::process::exit(1);
        }
    };
    eprintln!(
        "latfs: mounted on {} ({describe})",
        options.mountpoint.display()
    );
    loop {
        let mut signal = 0;
        unsafe { libc::sigwait(&signals, &mut signal) };
        match signal {
            libc::SIGUSR1 => {
                faults.set_on(false);
                eprintln!("latfs: faults off");
            }
            libc::SIGUSR2 => {
                faults.set_on(true);
                eprintln!("latfs: faults on");
            }
            _ => break,
        }
    }
    drop(session); // unmounts
    if let Some(socket) = &options.stats_socket {
        let _ = std::fs::remove_file(socket);
    }
    eprintln!("latfs: unmounted");
}
