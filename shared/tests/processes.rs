//! The store shared by separate OS processes, as Lambda instances share EFS, and the faults a
//! mount can show. Lambda instances are processes, not threads, so this test re-executes its
//! own binary as writers, readers and probes (a custom harness: `harness = false`).
//!
//! Scenarios:
//! * several writer and reader processes on one directory while the orchestrator deletes
//!   everything: no partial message is ever read, every completed POST is readable until the
//!   DELETE, none that completed before the DELETE began survives it, and every POST that began
//!   after it is kept;
//! * writers killed with SIGKILL mid-write leave no visible partial message;
//! * read-only, full and permission-denied file systems give the right errors and lose nothing;
//! * one message file another POSIX user shut us out of is skipped by a page, not its failure.

use std::{
    collections::HashSet,
    env,
    io::{BufRead, BufReader},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use shared::{
    store::{ReclaimBudget, Refusal, CRASH_AT},
    MessageId, MessageStore, Order, StoreError,
};

mod common;
use common::{files_under, names_under};

const ROLE: &str = "PROCESSES_TEST_ROLE";
const DIR: &str = "PROCESSES_TEST_DIR";
const COUNT: &str = "PROCESSES_TEST_COUNT";
const SIZE: &str = "PROCESSES_TEST_SIZE";
const ID: &str = "PROCESSES_TEST_ID";

fn main() -> ! {
    if let Ok(role) = env::var(ROLE) {
        let dir = PathBuf::from(env::var(DIR).expect("role needs a directory"));
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let code = runtime.block_on(run_role(&role, MessageStore::new(dir)));
        std::process::exit(code);
    }
    let scenarios: [(&str, fn()); 8] = [
        (
            "processes_post_list_and_delete_all_concurrently",
            concurrent_processes,
        ),
        (
            "sigkill_mid_write_leaves_no_partial_message",
            sigkill_mid_write,
        ),
        (
            "read_only_file_system_is_unavailable_and_loses_nothing",
            read_only_file_system,
        ),
        (
            "full_file_system_is_storage_full_and_loses_nothing",
            full_file_system,
        ),
        ("permission_denied_is_unavailable", permission_denied),
        (
            "an_unreadable_message_file_is_skipped_not_a_failed_page",
            unreadable_message_file,
        ),
        (
            "delete_all_killed_at_each_step_leaves_all_or_nothing",
            delete_all_killed_at_each_step,
        ),
        (
            "reclaiming_killed_at_each_step_leaves_a_consistent_store",
            reclaim_killed_at_each_step,
        ),
    ];
    test_support::harness::run(&scenarios, Default::default())
}

// ---------------------------------------------------------------------------------------------
// Roles run in child processes.

async fn run_role(role: &str, store: MessageStore) -> i32 {
    let count: usize = env::var(COUNT)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let size: usize = env::var(SIZE)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000);
    match role {
        // Posts `count` self-checking messages, printing each id once its POST has completed, or
        // `refused <unix ms>` for a POST refused because a DELETE of everything raced it.
        "writer" => {
            for seed in 0..count as u64 {
                let seed = seed ^ u64::from(std::process::id()) << 32;
                match store
                    .publish("application/x-test", &make_body(seed, size))
                    .await
                {
                    Ok(id) => println!("{id}"),
                    Err(StoreError::Refused(Refusal::RacedDeleteAll)) => {
                        println!("refused {}", millis_now())
                    }
                    Err(e) => {
                        eprintln!("writer: {e}");
                        return 1;
                    }
                }
            }
            0
        }
        // Lists and reads everything for a while: every message read must be whole.
        "reader" => {
            let deadline = Instant::now() + Duration::from_millis(count as u64);
            let mut checked = 0usize;
            while Instant::now() < deadline {
                // Newest first: what was just published (oldest first waits for it to settle).
                let page = match store.list(Order::Desc, None, 1000).await {
                    Ok(page) => page,
                    Err(e) => {
                        eprintln!("reader: {e}");
                        return 1;
                    }
                };
                for message in page.messages {
                    if !body_is_whole(&message.body) {
                        eprintln!("reader: partial message {}", message.id);
                        return 2;
                    }
                    checked += 1;
                }
            }
            println!("{checked}");
            0
        }
        // Reports what listing and publishing fail with, as `list=<kind> publish=<kind>`.
        "probe" => {
            let list = match store.list(Order::Asc, None, 10).await {
                Ok(_) => "ok".to_owned(),
                Err(e) => kind_of(&e),
            };
            let publish = match store.publish("text/plain", b"probe").await {
                Ok(_) => "ok".to_owned(),
                Err(e) => kind_of(&e),
            };
            println!("list={list} publish={publish}");
            0
        }
        // Lists everything newest first, then reads the message `PROCESSES_TEST_ID`, reporting
        // `returned=<n> read=<ok|kind>`.
        "list-and-read" => {
            let returned = match store.list(Order::Desc, None, 1000).await {
                Ok(page) => page.messages.len().to_string(),
                Err(e) => kind_of(&e),
            };
            let id = env::var(ID)
                .ok()
                .and_then(|id| id.parse::<MessageId>().ok());
            let read = match id {
                Some(id) => match store.read(id).await {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => kind_of(&e),
                },
                None => return 64,
            };
            println!("returned={returned} read={read}");
            0
        }
        // Deletes everything (a crash test may make it die at a step).
        "delete-all" => match store.delete_all().await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("delete-all: {e}");
                1
            }
        },
        // Reclaims everything it can (a crash test may make it die at a step).
        "reclaim" => match store.reclaim(everything()).await {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("reclaim: {e}");
                1
            }
        },
        _ => 64,
    }
}

fn everything() -> ReclaimBudget {
    ReclaimBudget {
        max_operations: usize::MAX,
        max_time: Duration::from_secs(60),
    }
}

fn kind_of(error: &StoreError) -> String {
    match error {
        StoreError::Unavailable(e) => format!("unavailable:{:?}", e.kind()),
        StoreError::Full(e) => format!("full:{:?}", e.kind()),
        other => format!("{other:?}"),
    }
}

/// A body that proves its own integrity: seed, length, then a pattern derived from the seed.
fn make_body(seed: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(&seed.to_le_bytes());
    body.extend_from_slice(&(len as u64).to_le_bytes());
    body.extend((0..len - 16).map(|j| pattern(seed, j)));
    body
}

fn pattern(seed: u64, j: usize) -> u8 {
    ((seed as usize).wrapping_add(j.wrapping_mul(31)) % 251) as u8
}

fn body_is_whole(body: &[u8]) -> bool {
    if body.len() < 16 {
        return false;
    }
    let seed = u64::from_le_bytes(body[..8].try_into().unwrap());
    let len = u64::from_le_bytes(body[8..16].try_into().unwrap());
    len == body.len() as u64
        && body[16..]
            .iter()
            .enumerate()
            .all(|(j, &b)| b == pattern(seed, j))
}

// ---------------------------------------------------------------------------------------------
// The orchestrator's helpers.

fn spawn_role(role: &str, dir: &Path, count: usize, size: usize) -> Child {
    Command::new(env::current_exe().unwrap())
        .env(ROLE, role)
        .env(DIR, dir)
        .env(COUNT, count.to_string())
        .env(SIZE, size.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a role process")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn all_messages(store: &MessageStore) -> Vec<shared::Message> {
    runtime().block_on(async {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            // Newest first: everything visible now (oldest first waits for what just settled).
            let page = store.list(Order::Desc, after, 1000).await.expect("list");
            all.extend(page.messages);
            match page.next {
                Some(next) => after = Some(next),
                None => {
                    all.reverse();
                    return all;
                }
            }
        }
    })
}

/// The Unix milliseconds an id was created at, read by hand from its first 12 hex digits (UUID
/// version 7), not through `MessageId`'s own decoding.
fn millis_in_id(id: &MessageId) -> i64 {
    let digits: String = id
        .to_string()
        .chars()
        .filter(|c| *c != '-')
        .take(12)
        .collect();
    i64::from_str_radix(&digits, 16).unwrap()
}

fn millis_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A tmpfs mounted for one scenario, unmounted when dropped. Needs root (CI runs as root).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

fn concurrent_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::new(dir.path());
    let writers: Vec<Child> = (0..4)
        .map(|_| spawn_role("writer", dir.path(), 150, 4096))
        .collect();
    let readers: Vec<Child> = (0..2)
        .map(|_| spawn_role("reader", dir.path(), 1500, 0))
        .collect();

    // Collect ids as writers report their POSTs complete.
    // `Ok(id)`: a POST completed; `Err(ms)`: a POST refused at that time.
    let (tx, rx) = mpsc::channel::<Result<MessageId, i64>>();
    let mut pumps = Vec::new();
    let mut writers = writers;
    for writer in &mut writers {
        let stdout = writer.stdout.take().unwrap();
        let tx = tx.clone();
        pumps.push(thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                let answer = match line.trim().strip_prefix("refused ") {
                    Some(at) => Err(at.parse().expect("writer prints when")),
                    None => Ok(MessageId::parse(line.trim()).expect("writer prints ids")),
                };
                tx.send(answer).unwrap();
            }
        }));
    }
    drop(tx);

    // Wait for some completed POSTs; each must be readable right away, from another process.
    let rt = runtime();
    let mut before_delete = HashSet::new();
    while before_delete.len() < 100 {
        let id = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("writers progress")
            .expect("no DELETE ran yet: no POST is refused");

        let message = rt
            .block_on(store.read(id))
            .expect("a completed POST is readable");
        assert!(body_is_whole(&message.body));
        before_delete.insert(id);
    }
    for id in rx.try_iter() {
        before_delete.insert(id.expect("no DELETE ran yet: no POST is refused"));
    }

    // DELETE everything while writers are still writing.
    let delete_began_ms = millis_now();
    rt.block_on(store.delete_all()).expect("delete all");
    let delete_returned_ms = millis_now();
    let visible: HashSet<MessageId> = all_messages(&store).iter().map(|m| m.id).collect();
    let survivors: Vec<_> = before_delete.intersection(&visible).collect();
    assert!(
        survivors.is_empty(),
        "POSTs completed before DELETE survived: {survivors:?}"
    );

    // Writers that start after the DELETE returned: every one of their POSTs began after it.
    let late: Vec<Child> = (0..2)
        .map(|_| spawn_role("writer", dir.path(), 30, 4096))
        .collect();

    // Let everything finish.
    let mut completed: HashSet<MessageId> = before_delete.clone();
    for pump in pumps {
        pump.join().unwrap();
    }
    // Every POST was answered: stored, or refused because it raced the DELETE, which only a
    // POST running while the DELETE ran can be.
    let mut refused = 0;
    for answer in rx.try_iter() {
        match answer {
            Ok(id) => {
                completed.insert(id);
            }
            Err(at) => {
                refused += 1;
                assert!(
                    (delete_began_ms..=delete_returned_ms + 50).contains(&at),
                    "a POST refused at {at}, the DELETE ran {delete_began_ms}..{delete_returned_ms}"
                );
            }
        }
    }
    for mut child in writers {
        let status = child.wait().unwrap();
        assert!(status.success(), "a writer failed: {status}");
    }
    for reader in readers {
        let output = reader.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a reader failed: {}",
            output.status
        );
        let checked: usize = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a reader prints how many messages it checked");
        assert!(
            checked > 0,
            "a reader checked no message: it proved nothing"
        );
    }
    let mut late_ids = HashSet::new();
    for child in late {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a late writer failed");
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            late_ids.insert(MessageId::parse(line.trim()).expect("writer prints ids"));
        }
    }
    assert_eq!(completed.len() + refused, 4 * 150, "every POST answered");
    assert_eq!(late_ids.len(), 2 * 30);
    completed.extend(late_ids.iter().copied());

    let messages = all_messages(&store);
    for message in &messages {
        assert!(
            body_is_whole(&message.body),
            "partial message {}",
            message.id
        );
        assert!(
            completed.contains(&message.id),
            "unknown message {}",
            message.id
        );
    }
    let visible: HashSet<MessageId> = messages.iter().map(|m| m.id).collect();
    // POSTs that began after the DELETE returned (their id says when they began) are all kept.
    let begun_after: Vec<&MessageId> = completed
        .iter()
        .filter(|id| millis_in_id(id) > delete_returned_ms)
        .collect();
    assert!(
        late_ids.iter().all(|id| begun_after.contains(&id)),
        "the late writers' ids all say they began after the DELETE returned"
    );
    for id in begun_after {
        assert!(
            visible.contains(id),
            "POST {id} begun after the DELETE is missing"
        );
    }
    let leftovers: Vec<String> = names_under(dir.path())
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
}

fn sigkill_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::new(dir.path());
    let mut temporaries_seen = 0;
    for round in 0..20u64 {
        // 8 MiB messages make each write long enough to be killed in the middle.
        let mut writer = spawn_role("writer", dir.path(), 1000, 8 << 20);
        // Wait until the writer has created a file, then kill it a moment later.
        let files_before = names_under(dir.path()).len();
        let deadline = Instant::now() + Duration::from_secs(10);
        while names_under(dir.path()).len() == files_before && Instant::now() < deadline {
            thread::sleep(Duration::from_micros(200));
        }
        thread::sleep(Duration::from_micros(round * 150));
        writer.kill().unwrap(); // SIGKILL
        writer.wait().unwrap();
        temporaries_seen += count_temporaries(dir.path());
        for message in all_messages(&store) {
            assert!(
                body_is_whole(&message.body),
                "partial message {} visible",
                message.id
            );
        }
    }
    assert!(
        temporaries_seen > 0,
        "no writer was killed mid-write; the test proved nothing"
    );
    // Once they are old and below a cut-off, reclaiming removes the leftovers with the rest.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for path in common::files_under(dir.path()) {
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp-")
        {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(an_hour_ago)
                .unwrap();
        }
    }
    let rt = runtime();
    rt.block_on(store.delete_all()).unwrap();
    let done = rt.block_on(store.reclaim(everything())).unwrap();
    assert!(done.temporaries > 0 && done.finished, "{done:?}");
    assert_eq!(count_temporaries(dir.path()), 0);
}

/// Runs `role` in a process told to die at `step`, and checks that it did.
fn run_killed_at(role: &str, dir: &Path, step: &str) {
    let status = Command::new(env::current_exe().unwrap())
        .env(ROLE, role)
        .env(DIR, dir)
        .env(CRASH_AT, step)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "{role} did not die at {step}");
}

fn delete_all_killed_at_each_step() {
    let rt = runtime();
    // Killed before its write is durable, a DELETE changed nothing; after, it deleted everything.
    for (step, deleted) in [
        ("cutoff.touched", false),
        ("cutoff.torn", false),
        ("cutoff.written", true),
        ("cutoff.synced", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::new(dir.path());
        // A first DELETE, so the cut-off file has a slot to fall back on.
        rt.block_on(store.delete_all()).unwrap();
        let mut posted = HashSet::new();
        for i in 0..50u64 {
            posted.insert(
                rt.block_on(store.publish("application/x-test", &make_body(i, 64)))
                    .unwrap(),
            );
        }
        run_killed_at("delete-all", dir.path(), step);
        let visible: HashSet<MessageId> = all_messages(&store).iter().map(|m| m.id).collect();
        let expected = if deleted {
            HashSet::new()
        } else {
            posted.clone()
        };
        assert_eq!(visible, expected, "killed at {step}: all or nothing");
        for id in &posted {
            assert_eq!(
                rt.block_on(store.read(*id)).is_ok(),
                !deleted,
                "{step}: read {id}"
            );
        }
        // The dead process's lock went with it: the next DELETE and POST work. (A POST while the
        // killed DELETE would still have been waiting out the clock skew was concurrent with it,
        // and may be gone: wait until it would have answered.)
        thread::sleep(2 * shared::store::MAX_CLOCK_SKEW + Duration::from_millis(5));
        let kept = rt.block_on(store.publish("text/plain", b"kept")).unwrap();
        let condemned: Vec<MessageId> = all_messages(&store).iter().map(|m| m.id).collect();
        assert!(condemned.contains(&kept));
        thread::sleep(Duration::from_millis(5));
        rt.block_on(store.delete_all()).unwrap();
        assert!(
            all_messages(&store).is_empty(),
            "{step}: the next DELETE deletes all"
        );
        let after = rt.block_on(store.publish("text/plain", b"after")).unwrap();
        assert_eq!(
            all_messages(&store)
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>(),
            vec![after]
        );
    }
}

fn reclaim_killed_at_each_step() {
    let rt = runtime();
    for step in ["reclaim.unlinked", "reclaim.emptied", "reclaim.removed_dir"] {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::new(dir.path());
        // Old messages, so that their directories may be removed once empty.
        let hour_ago = millis_now() as u64 - 3_600_000;
        for i in 0..200 {
            common::seed(&store, MessageId::at_millis(hour_ago - i * 10_000), b"old");
        }
        rt.block_on(store.publish("text/plain", b"live, then deleted"))
            .unwrap();
        rt.block_on(store.delete_all()).unwrap();
        let survivor = rt
            .block_on(store.publish("text/plain", b"survivor"))
            .unwrap();
        run_killed_at("reclaim", dir.path(), step);
        assert_eq!(
            all_messages(&store)
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>(),
            vec![survivor],
            "killed at {step}: only the message posted after the DELETE is visible"
        );
        let later = rt.block_on(store.publish("text/plain", b"later")).unwrap();
        let done = rt.block_on(store.reclaim(everything())).unwrap();
        assert!(done.finished, "{step}: {done:?}");
        let mut files = names_under(dir.path());
        files.sort();
        let mut expected = vec![
            survivor.to_string(),
            later.to_string(),
            "cutoff".to_owned(),
            "reclaimed".to_owned(),
        ];
        expected.sort();
        assert_eq!(
            files, expected,
            "{step}: everything condemned is gone, the rest kept"
        );
        assert_eq!(rt.block_on(store.read(later)).unwrap().body, b"later");
    }
}

fn count_temporaries(dir: &Path) -> usize {
    names_under(dir)
        .iter()
        .filter(|n| n.starts_with(".tmp-"))
        .count()
}

fn read_only_file_system() {
    if is_root() {
        let fs = Tmpfs::mount("size=1m").expect("root can mount tmpfs");
        let store = MessageStore::new(fs.path());
        let rt = runtime();
        let kept = rt.block_on(store.publish("text/plain", b"kept")).unwrap();
        fs.remount("ro");
        let error = rt.block_on(store.publish("text/plain", b"x")).unwrap_err();
        assert!(
            matches!(&error, StoreError::Unavailable(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem),
            "{error:?}"
        );
        assert!(matches!(
            rt.block_on(store.delete(kept)),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            rt.block_on(store.delete_all()),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(rt.block_on(store.read(kept)).unwrap().body, b"kept");
        assert_eq!(all_messages(&store).len(), 1);
        fs.remount("rw");
    } else {
        // Without root, a store none of whose directories we may write to (the messages
        // directory and every time directory below it) is the closest to a read-only mount.
        struct ReadOnlyTree(Vec<PathBuf>);
        impl Drop for ReadOnlyTree {
            fn drop(&mut self) {
                for dir in &self.0 {
                    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::new(dir.path());
        let rt = runtime();
        let kept = rt.block_on(store.publish("text/plain", b"kept")).unwrap();
        let mut dirs = vec![dir.path().to_path_buf()];
        let mut pending = dirs.clone();
        while let Some(parent) = pending.pop() {
            for entry in std::fs::read_dir(parent).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path.clone());
                    pending.push(path);
                }
            }
        }
        assert!(
            dirs.len() > 1,
            "the message is filed below the messages directory"
        );
        let _restore = ReadOnlyTree(dirs.clone());
        for dir in &dirs {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        let error = rt.block_on(store.publish("text/plain", b"x")).unwrap_err();
        assert!(
            matches!(&error, StoreError::Unavailable(e) if e.kind() == std::io::ErrorKind::PermissionDenied),
            "{error:?}"
        );
        assert!(matches!(
            rt.block_on(store.delete(kept)),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            rt.block_on(store.delete_all()),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(rt.block_on(store.read(kept)).unwrap().body, b"kept");
        assert_eq!(all_messages(&store).len(), 1);
    }
}

fn full_file_system() {
    if !is_root() {
        return test_support::harness::skip("needs root to mount a small tmpfs (CI runs as root)");
    }
    let fs = Tmpfs::mount("size=512k").expect("root can mount tmpfs");
    let store = MessageStore::new(fs.path());
    let rt = runtime();
    let mut stored = Vec::new();
    let error = loop {
        let body = make_body(stored.len() as u64, 100_000);
        match rt.block_on(store.publish("application/x-test", &body)) {
            Ok(id) => stored.push(id),
            Err(error) => break error,
        }
        assert!(stored.len() < 100, "a 512 KiB file system never filled up");
    };
    assert!(matches!(error, StoreError::Full(_)), "{error:?}");
    assert!(!stored.is_empty());
    let names = names_under(fs.path());
    assert_eq!(
        names.len(),
        stored.len() + 1,
        "the failed write left nothing (beside the messages, the cut-off file): {names:?}"
    );
    for message in all_messages(&store) {
        assert!(body_is_whole(&message.body));
    }
    // Deleting, then reclaiming, makes room again.
    rt.block_on(store.delete_all()).unwrap();
    let done = rt.block_on(store.reclaim(everything())).unwrap();
    assert_eq!(done.messages, stored.len());
    rt.block_on(store.publish("text/plain", b"room again"))
        .unwrap();
}

fn permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut command = Command::new(env::current_exe().unwrap());
    command
        .env(ROLE, "probe")
        .env(DIR, &locked)
        .stdout(Stdio::piped());
    if is_root() {
        // Root ignores file modes: probe as `nobody`, as the access point's POSIX user would be.
        command.uid(65534).gid(65534);
    }
    let output = command.output().expect("probe runs");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(output.status.success(), "{output:?}");
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        report.trim(),
        "list=unavailable:PermissionDenied publish=unavailable:PermissionDenied"
    );
}

/// One message file nobody may read (written by another POSIX user, say) among good ones: a page
/// skips it and lists the rest, as for any file that is not a message; reading it by id says the
/// store denies access (503), not that it is missing.
fn unreadable_message_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::new(dir.path());
    let rt = runtime();
    let ids: Vec<MessageId> = (0..5)
        .map(|i| {
            rt.block_on(store.publish("text/plain", format!("good {i}").as_bytes()))
                .unwrap()
        })
        .collect();
    let locked = ids[2];
    if is_root() {
        // As if `nobody` (the access point's POSIX user, below) had written them all.
        for path in walk_dirs(dir.path())
            .into_iter()
            .chain(files_under(dir.path()))
        {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
    }
    std::fs::set_permissions(
        store.message_path(locked),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let mut command = Command::new(env::current_exe().unwrap());
    command
        .env(ROLE, "list-and-read")
        .env(DIR, dir.path())
        .env(ID, locked.to_string())
        .stdout(Stdio::piped());
    if is_root() {
        // Root ignores file modes: list as `nobody`, as the access point's POSIX user would be.
        command.uid(65534).gid(65534);
    }
    let output = command.output().expect("lister runs");
    assert!(output.status.success(), "{output:?}");
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        report.trim(),
        "returned=4 read=unavailable:PermissionDenied"
    );
}

/// Every directory under `root`, `root` included.
fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        let children: Vec<PathBuf> = std::fs::read_dir(&dirs[i])
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .collect();
        dirs.extend(children);
        i += 1;
    }
    dirs
}
