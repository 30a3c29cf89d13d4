//! Mounting the model from a test: one `latfs` process per mount, unmounted on drop.

use std::{
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// `statfs`'s file-system type of a FUSE mount.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// One mount of the model: one NFS client of the backing directory.
pub struct Mount {
    point: tempfile::TempDir,
    stats: PathBuf,
    child: Child,
}

/// The `latfs` binary of this build: beside the test binary's directory (`target/<profile>/`),
/// or `LATFS` if set. `cargo test --workspace` builds it (the model's own tests need it).
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LATFS") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test binary> -> target/<profile>/latfs
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .unwrap_or(Path::new("."));
    profile_dir.join("latfs")
}

/// Builds `latfs` where [`binary`] looks for it, when a test runs under cargo (`cargo test -p`
/// of another package builds only the model's library, not its binary).
fn build(latfs: &Path) {
    let (Some(cargo), Some(profile_dir)) = (std::env::var_os("CARGO"), latfs.parent()) else {
        return;
    };
    let (Some(target), Some(profile)) = (profile_dir.parent(), profile_dir.file_name()) else {
        return;
    };
    let profile = match profile.to_str() {
        Some("debug") => "dev",
        Some(other) => other,
        None => return,
    };
    let _ = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--package",
            "efs-model",
            "--bin",
            "latfs",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target)
        .status();
}

/// Whether the model must run here (`EFS_MODEL_REQUIRED=1`, set by scripts/test as root): then a
/// test that cannot mount it fails instead of skipping.
pub fn required() -> bool {
    std::env::var("EFS_MODEL_REQUIRED").is_ok_and(|v| v == "1")
}

/// Why the model cannot be mounted here, if it cannot: it needs root (FUSE, and
/// `open_by_handle_at`), `/dev/fuse`, and the `latfs` binary.
pub fn unavailable() -> Option<String> {
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !root.unwrap_or(false) {
        return Some("needs root (FUSE and open_by_handle_at)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    let latfs = binary();
    if !latfs.exists() {
        build(&latfs);
    }
    if !latfs.exists() {
        return Some(format!(
            "no latfs binary at {} (cargo build -p efs-model builds it)",
            latfs.display()
        ));
    }
    None
}

impl Mount {
    /// Mounts `backing` with `latfs`'s `options` (for example `["--nfs-cache", "--acdirmin",
    /// "1"]`) and waits until the mount is up.
    pub fn new(backing: &Path, options: &[&str]) -> io::Result<Self> {
        let point = tempfile::Builder::new().prefix("efs-client-").tempdir()?;
        let stats = point.path().with_extension("stats.sock");
        let child = Command::new(binary())
            .arg(backing)
            .arg(point.path())
            .args(options)
            .arg("--stats-socket")
            .arg(&stats)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut mount = Self {
            point,
            stats,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !mount.is_mounted() {
            if let Some(status) = mount.child.try_wait()? {
                return Err(io::Error::other(format!("latfs exited: {status}")));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("latfs did not mount within 20 s"));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(mount)
    }

    fn is_mounted(&self) -> bool {
        rustix::fs::statfs(self.point.path()).is_ok_and(|s| s.f_type == FUSE_SUPER_MAGIC)
    }

    /// Where this client sees the backing directory.
    pub fn path(&self) -> &Path {
        self.point.path()
    }

    /// The model's counters, as JSON (see `--stats-socket`).
    pub fn stats(&self) -> io::Result<String> {
        use std::io::Read;
        let mut text = String::new();
        std::os::unix::net::UnixStream::connect(&self.stats)?.read_to_string(&mut text)?;
        Ok(text)
    }

    /// How many round trips of `rpc` (a name in the `rpc` object of [`Self::stats`]) this client
    /// sent to the server so far.
    pub fn rpcs(&self, rpc: &str) -> u64 {
        let stats = self.stats().unwrap_or_default();
        let section = stats.split("\"rpc\":{").nth(1).unwrap_or_default();
        let key = format!("\"{rpc}\":");
        section
            .split(key.as_str())
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Starts (`true`) or stops injecting the faults given with `--faults`.
    pub fn set_faults(&self, on: bool) {
        let signal = if on { libc::SIGUSR2 } else { libc::SIGUSR1 };
        unsafe { libc::kill(self.child.id() as i32, signal) };
        // The signal is handled by the model's main thread: give it a moment.
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.point.path())
            .status();
    }
}
