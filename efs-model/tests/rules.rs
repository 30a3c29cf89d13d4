//! The model's rules, each shown with two clients (two mounts of one backing directory), as the
//! Linux NFS client behaves. Short attribute timeouts keep it fast: a directory's attributes are
//! trusted for 1 s at first (`--acdirmin 1`), a file's for 1 s.

use std::{
    fs,
    io::{ErrorKind, Read, Seek, SeekFrom},
    os::{fd::AsRawFd, unix::fs::FileExt},
    path::Path,
    process::Command,
    thread,
    time::{Duration, SystemTime},
};

use efs_model::Mount;

fn main() {
    let precondition = test_support::harness::Precondition {
        unavailable: efs_model::unavailable(),
        required: efs_model::required(),
    };
    test_support::harness::run(
        &[
            (
                "a_name_not_found_is_trusted_until_its_directory_is_revalidated",
                negative_names,
            ),
            (
                "a_listing_is_cached_until_the_directory_is_revalidated",
                cached_listings,
            ),
            ("opening_a_file_revalidates_it", close_to_open),
            (
                "a_create_that_finds_the_name_taken_drops_the_cached_absence",
                failed_create,
            ),
            (
                "a_name_removed_by_another_client_is_gone_at_the_next_open",
                removed_names,
            ),
            (
                "a_handle_on_what_another_client_removed_answers_estale",
                stale_handles,
            ),
            ("locks_are_shared_by_every_client", shared_locks),
            ("injected_faults_follow_their_switch", faults_switch),
            (
                "answers_from_the_cache_cost_no_round_trip",
                cached_answers_are_free,
            ),
            (
                "without_the_nfs_cache_every_lookup_is_a_round_trip",
                legacy_mode,
            ),
            ("the_server_sets_times_with_its_own_clock", server_clock),
        ],
        precondition,
    )
}

const SHORT: [&str; 9] = [
    "--nfs-cache",
    "--acregmin",
    "1",
    "--acregmax",
    "1",
    "--acdirmin",
    "1",
    "--acdirmax",
    "1",
];

/// A backing directory and two clients of it, with no latency (only the caching is under test).
fn two_clients() -> (tempfile::TempDir, Mount, Mount) {
    let backing = tempfile::tempdir().unwrap();
    let mut options = SHORT.to_vec();
    options.extend(["--meta-us", "0", "--read-us", "0", "--write-us", "0"]);
    let a = Mount::new(backing.path(), &options).unwrap();
    let b = Mount::new(backing.path(), &options).unwrap();
    (backing, a, b)
}

/// Waits out the 1 s attribute timeout.
fn expire() {
    thread::sleep(Duration::from_millis(1200));
}

fn exists(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn negative_names() {
    let (_backing, a, b) = two_clients();
    fs::create_dir(a.path().join("d")).unwrap();
    assert!(!exists(&b.path().join("d/x")), "not there yet");
    fs::write(a.path().join("d/x"), "x").unwrap();
    assert!(exists(&a.path().join("d/x")), "the writer sees it");
    assert!(
        !exists(&b.path().join("d/x")),
        "B trusts its cached 'no such name' while d's attributes are fresh"
    );
    expire();
    assert!(
        exists(&b.path().join("d/x")),
        "once d's attributes expire, their revalidation shows the change"
    );

    // Opening the directory revalidates it at once (close-to-open), expired or not.
    assert!(!exists(&b.path().join("d/y")));
    fs::write(a.path().join("d/y"), "y").unwrap();
    assert!(!exists(&b.path().join("d/y")));
    drop(fs::File::open(b.path().join("d")).unwrap());
    assert!(exists(&b.path().join("d/y")), "opening d revalidated it");

    // An O_PATH open carries no open intent: no revalidation.
    assert!(!exists(&b.path().join("d/z")));
    fs::write(a.path().join("d/z"), "z").unwrap();
    let path_only = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(b.path().join("d"))
        .unwrap();
    drop(path_only);
    assert!(!exists(&b.path().join("d/z")), "O_PATH does not revalidate");
}

use std::os::unix::fs::OpenOptionsExt;

fn failed_create() {
    let (_backing, a, b) = two_clients();
    assert!(!exists(&b.path().join("d")));
    fs::create_dir(a.path().join("d")).unwrap();
    assert!(!exists(&b.path().join("d")), "cached absence");
    let error = fs::create_dir(b.path().join("d")).unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::AlreadyExists,
        "the server knows better"
    );
    assert!(
        exists(&b.path().join("d")),
        "after EEXIST the client no longer believes its cached absence"
    );
}

fn names(dir: &mut fs::File) -> Vec<String> {
    // Read the listing through an already open directory, from the start.
    dir.seek(SeekFrom::Start(0)).unwrap();
    let fd = dir.as_raw_fd();
    let copy = unsafe { libc::dup(fd) };
    let stream = unsafe { libc::fdopendir(copy) };
    assert!(!stream.is_null());
    unsafe { libc::rewinddir(stream) };
    let mut names = Vec::new();
    loop {
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
        let name = name.to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    unsafe { libc::closedir(stream) };
    names.sort();
    names
}

fn cached_listings() {
    let (_backing, a, b) = two_clients();
    fs::create_dir(a.path().join("d")).unwrap();
    let mut open = fs::File::open(b.path().join("d")).unwrap();
    assert!(names(&mut open).is_empty());
    fs::write(a.path().join("d/x"), "x").unwrap();
    assert!(
        names(&mut open).is_empty(),
        "a directory kept open is listed from the cache while its attributes are fresh"
    );
    let mut fresh = fs::File::open(b.path().join("d")).unwrap();
    assert_eq!(names(&mut fresh), ["x"], "a new open revalidates it");
    fs::write(a.path().join("d/y"), "y").unwrap();
    expire();
    assert_eq!(
        names(&mut open),
        ["x", "y"],
        "after the attributes expire, the listing is read again"
    );
}

fn close_to_open() {
    let (_backing, a, b) = two_clients();
    fs::write(a.path().join("f"), "one").unwrap();
    let mut held = fs::File::open(b.path().join("f")).unwrap();
    let mut text = String::new();
    held.read_to_string(&mut text).unwrap();
    assert_eq!(text, "one");
    fs::OpenOptions::new()
        .write(true)
        .open(a.path().join("f"))
        .unwrap()
        .write_all_at(b"two", 0)
        .unwrap();
    let mut again = [0; 3];
    held.read_exact_at(&mut again, 0).unwrap();
    assert_eq!(&again, b"one", "within an open, B reads what it cached");
    assert_eq!(
        fs::read_to_string(b.path().join("f")).unwrap(),
        "two",
        "a new open revalidates the file and drops the cached data"
    );
}

fn removed_names() {
    let (_backing, a, b) = two_clients();
    fs::write(a.path().join("f"), "f").unwrap();
    assert_eq!(fs::read_to_string(b.path().join("f")).unwrap(), "f");
    fs::remove_file(a.path().join("f")).unwrap();
    assert!(
        exists(&b.path().join("f")),
        "B's cached name still says f exists (a stat trusts it)"
    );
    let error = fs::read(b.path().join("f")).unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::NotFound,
        "but an open asks the server"
    );
}

fn stale_handles() {
    let (_backing, a, b) = two_clients();
    fs::create_dir(a.path().join("d")).unwrap();
    fs::write(a.path().join("d/x"), "x").unwrap();
    let kept = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(b.path().join("d"))
        .unwrap();
    fs::remove_dir_all(a.path().join("d")).unwrap();
    fs::create_dir(a.path().join("d")).unwrap();
    fs::write(a.path().join("d/y"), "y").unwrap();
    let name = std::ffi::CString::new("y").unwrap();
    let fd = unsafe { libc::openat(kept.as_raw_fd(), name.as_ptr(), libc::O_RDONLY) };
    let error = std::io::Error::last_os_error();
    assert_eq!(fd, -1);
    assert_eq!(
        error.raw_os_error(),
        Some(libc::ESTALE),
        "the kept handle is on the removed d, not the new one"
    );
    assert_eq!(
        fs::read_to_string(b.path().join("d/y")).unwrap(),
        "y",
        "by name, the new d"
    );
}

fn shared_locks() {
    let (_backing, a, b) = two_clients();
    fs::write(a.path().join("lock"), "").unwrap();
    let held = fs::File::open(a.path().join("lock")).unwrap();
    held.lock().unwrap();
    let other = fs::File::open(b.path().join("lock")).unwrap();
    assert!(
        matches!(other.try_lock(), Err(fs::TryLockError::WouldBlock)),
        "B sees A's lock"
    );
    held.unlock().unwrap();
    other.try_lock().unwrap();
}

fn faults_switch() {
    let backing = tempfile::tempdir().unwrap();
    fs::write(backing.path().join("f"), "f").unwrap();
    let mut options = SHORT.to_vec();
    options.extend(["--faults", "eio:1:read"]);
    let client = Mount::new(backing.path(), &options).unwrap();
    let error = fs::read(client.path().join("f")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EIO));
    client.set_faults(false);
    assert_eq!(fs::read_to_string(client.path().join("f")).unwrap(), "f");
    client.set_faults(true);
    // Cached now: a read the client answers itself reaches no server, so no fault.
    let mut options = SHORT.to_vec();
    options.extend(["--faults", "estale:1:lookup"]);
    let other = Mount::new(backing.path(), &options).unwrap();
    let error = fs::metadata(other.path().join("f")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ESTALE));
    let stats = client.stats().unwrap();
    assert!(
        !stats.contains("\"eio\":0"),
        "the injected errors are counted: {stats}"
    );
}

fn cached_answers_are_free() {
    let (_backing, a, b) = two_clients();
    fs::write(a.path().join("f"), "f").unwrap();
    fs::metadata(b.path().join("f")).unwrap();
    let lookups = b.rpcs("lookup");
    for _ in 0..10 {
        fs::metadata(b.path().join("f")).unwrap();
    }
    assert_eq!(b.rpcs("lookup"), lookups, "a cached name costs no LOOKUP");
    let opens = b.rpcs("open");
    for _ in 0..3 {
        fs::read(b.path().join("f")).unwrap();
    }
    assert_eq!(
        b.rpcs("open"),
        opens + 3,
        "every open is a round trip (close-to-open)"
    );
    let reads = b.rpcs("read");
    fs::read(b.path().join("f")).unwrap();
    assert_eq!(
        b.rpcs("read"),
        reads,
        "unchanged data is read from the client's cache"
    );
}

fn legacy_mode() {
    let backing = tempfile::tempdir().unwrap();
    fs::write(backing.path().join("f"), "f").unwrap();
    let client = Mount::new(backing.path(), &["--meta-us", "0"]).unwrap();
    fs::metadata(client.path().join("f")).unwrap();
    let lookups = client.rpcs("lookup");
    for _ in 0..10 {
        fs::metadata(client.path().join("f")).unwrap();
    }
    assert_eq!(
        client.rpcs("lookup"),
        lookups + 10,
        "entry TTL 0: a LOOKUP every time"
    );
}

/// libfaketime shifts a process's wall clock (Debian package `faketime`).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn server_clock() {
    assert!(
        Path::new(FAKETIME).exists(),
        "libfaketime is missing (scripts/setup system installs the faketime package)"
    );
    let (_backing, a, _b) = two_clients();
    let file = a.path().join("touched");
    // A process whose clock is an hour ahead writes a file and sets its times to "now" (with
    // FAKE_UTIME=1 libfaketime passes utimensat's "now" through, as a raw system call would).
    let status = Command::new("python3")
        .args([
            "-c",
            "import os, sys; f = open(sys.argv[1], 'w'); f.write('x'); f.flush(); os.utime(f.fileno())",
        ])
        .arg(&file)
        .env("LD_PRELOAD", FAKETIME)
        .env("FAKETIME", "+3600")
        .env("FAKE_UTIME", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .status()
        .unwrap();
    assert!(status.success());
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    let off = SystemTime::now()
        .duration_since(mtime)
        .unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_secs(60),
        "the file's time is the server's, not the writer's an hour ahead: {off:?} off"
    );
}
