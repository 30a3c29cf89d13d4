//! The message store against a real directory: publication, paging in both orders, deletion,
//! the delete-all cut-off, retention, reclaiming and the faults a mount can show. (The same store
//! across NFS clients, with their caches and clocks: conformance/tests/clients.)

use std::{
    collections::HashSet,
    fs,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use shared::{
    format,
    store::{Listed, PageSink, ReclaimBudget, MAX_CLOCK_SKEW, SETTLE},
    Message, MessageId, MessageStore, Order, StoreError,
};

mod common;
use common::{names_under as names, seed};

fn store() -> (tempfile::TempDir, MessageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::new(dir.path());
    (dir, store)
}

/// Waits until what was just published has settled: oldest-first pages list only what no POST
/// still being published can precede.
async fn settle() {
    tokio::time::sleep(SETTLE + Duration::from_millis(50)).await;
}

#[tokio::test]
async fn publish_writes_one_file_named_by_the_id_and_reads_back() {
    let (dir, store) = store();
    let id = store.publish("text/plain", b"hello").await.unwrap();
    assert_eq!(
        names(dir.path()),
        vec![id.to_string(), "cutoff".to_owned()],
        "no temporary is left; the first POST creates the cut-off file"
    );
    let message = store.read(id).await.unwrap();
    assert_eq!(message.id, id);
    assert_eq!(message.content_type, "text/plain");
    assert_eq!(message.body, b"hello");
    // The Content-Type travels inside the file, not in an xattr or a second file.
    let path = store.message_path(id);
    assert_eq!(
        path.ancestors().nth(4).unwrap(),
        dir.path(),
        "three directory levels: top, mid, leaf"
    );
    let text = id.to_string();
    let expected = dir
        .path()
        .join(&text[..6])
        .join(&text[6..8])
        .join(&text[9..11])
        .join(&text);
    assert_eq!(
        path, expected,
        "the directories are the id's leading time digits"
    );
    let raw = fs::read(path).unwrap();
    assert_eq!(
        format::decode(raw).unwrap(),
        ("text/plain".to_owned(), b"hello".to_vec())
    );
}

#[tokio::test]
async fn binary_bodies_round_trip_byte_for_byte() {
    let (_dir, store) = store();
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let id = store
        .publish("application/octet-stream", &body)
        .await
        .unwrap();
    assert_eq!(store.read(id).await.unwrap().body, body);
}

#[tokio::test]
async fn paging_250_messages_by_100_returns_three_pages_in_creation_order() {
    let (_dir, store) = store();
    let mut posted = Vec::new();
    for i in 0..250 {
        posted.push(
            store
                .publish("text/plain", format!("message {i}").as_bytes())
                .await
                .unwrap(),
        );
    }
    settle().await;
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list(Order::Asc, after, 100).await.unwrap();
        pages += 1;
        assert!(page.messages.len() <= 100);
        seen.extend(page.messages.iter().map(|m| m.id));
        match page.next {
            Some(next) => {
                assert_eq!(Some(next), page.messages.last().map(|m| m.id));
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, posted, "creation order, no gaps, no duplicates");
    let bodies: Vec<Vec<u8>> = store
        .list(Order::Asc, None, 1000)
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies[7], b"message 7");
}

#[tokio::test]
async fn an_unknown_after_cursor_still_pages_by_id_order() {
    let (_dir, store) = store();
    let first = store.publish("text/plain", b"1").await.unwrap();
    let between = MessageId::generate(); // never stored
    let second = store.publish("text/plain", b"2").await.unwrap();
    let third = store.publish("text/plain", b"3").await.unwrap();
    settle().await;

    let page = store.list(Order::Asc, Some(between), 1).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![second]
    );
    assert_eq!(page.next, Some(second));
    let page = store.list(Order::Asc, page.next, 10).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![third]
    );
    assert_eq!(page.next, None);

    // A deleted cursor behaves the same.
    store.delete(first).await.unwrap();
    let page = store.list(Order::Asc, Some(first), 10).await.unwrap();
    assert_eq!(page.messages.len(), 2);
    // A cursor past everything is an empty last page.
    let page = store
        .list(Order::Asc, Some(MessageId::generate()), 10)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn listings_ignore_temporaries_and_foreign_files() {
    let (dir, store) = store();
    let id = store.publish("text/plain", b"real").await.unwrap();
    let leaf = store.message_path(id).parent().unwrap().to_owned();
    fs::write(leaf.join(".tmp-half-written"), b"EFSM\x01").unwrap();
    fs::write(dir.path().join("README"), b"not a message").unwrap();
    fs::create_dir(dir.path().join("subdir")).unwrap();
    // A message file outside its directory was not written by the store: not served.
    let stray = MessageId::generate();
    fs::write(
        dir.path().join(stray.to_string()),
        format::encode("text/plain", b"x"),
    )
    .unwrap();
    settle().await;
    let page = store.list(Order::Asc, None, 100).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![id]
    );
    store.delete_all().await.unwrap();
    store.reclaim(everything()).await.unwrap();
    assert!(
        dir.path().join("README").exists() && dir.path().join(stray.to_string()).exists(),
        "foreign files are not ours to delete"
    );
}

/// On S3 Files, objects put or deleted through the S3 API appear in (or vanish from) the file
/// system: a foreign object under the messages directory costs at most one message, never a
/// listing, a read of another message, or reclaiming; an object deleted in S3 is simply gone.
#[tokio::test]
async fn objects_changed_through_s3_cost_one_message_never_a_listing() {
    let (dir, store) = store();
    let hour_ago = now_millis() - 3_600_000;
    let ids: Vec<MessageId> = (0..6)
        .map(|i| seed(&store, MessageId::at_millis(hour_ago + i * 300), b"good"))
        .collect();
    let leaf = store.message_path(ids[0]).parent().unwrap().to_owned();
    let mid = leaf.parent().unwrap().to_owned();
    // Keys a bucket user might put: a foreign name in a leaf, an object named like a message
    // holding anything (and an empty one), a file where a leaf directory goes, a "directory" of
    // foreign objects (an S3 prefix), and an object where a top-level directory goes.
    fs::write(leaf.join("notes.txt"), b"hello from S3").unwrap();
    let beside = || MessageId::at_millis(ids[0].unix_millis());
    let foreign = beside();
    fs::write(store.message_path(foreign), b"<html>uploaded</html>").unwrap();
    let empty = beside();
    fs::write(store.message_path(empty), b"").unwrap();
    // Half a mid-level directory away from the messages' leaves.
    let unused_leaf = format!("{:02x}", ((ids[0].unix_millis() >> 8) + 128) & 0xff);
    fs::write(mid.join(unused_leaf), b"an object named like a leaf").unwrap();
    fs::create_dir_all(mid.join("images")).unwrap();
    fs::write(mid.join("images").join("cat.png"), b"\x89PNG").unwrap();
    let top_object = MessageId::at_millis(hour_ago - 86_400_000);
    fs::write(dir.path().join(&top_object.to_string()[..6]), b"object").unwrap();
    // An object deleted through S3: its file is gone on the server.
    fs::remove_file(store.message_path(ids[5])).unwrap();
    let live = &ids[..5];

    for order in [Order::Asc, Order::Desc] {
        let mut messages = Vec::new();
        let listed = store
            .list_into(order, None, 100, &mut messages)
            .await
            .unwrap();
        let mut expected = live.to_vec();
        if order == Order::Desc {
            expected.reverse();
        }
        assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), expected);
        assert_eq!(
            listed.skipped, 2,
            "{order:?}: the two objects named like messages"
        );
    }
    assert!(matches!(store.read(foreign).await, Err(StoreError::Corrupt(id)) if id == foreign));
    assert!(matches!(
        store.read(ids[5]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete(ids[5]).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.read(ids[1]).await.unwrap().body, b"good");

    store.delete_all().await.unwrap();
    let done = store.reclaim(everything()).await.unwrap();
    assert_eq!(
        done.messages,
        5 + 2,
        "{done:?}: ours, and the objects named like ours"
    );
    assert!(all_ids(&store, Order::Asc).await.is_empty());
    assert!(
        leaf.join("notes.txt").exists() && mid.join("images/cat.png").exists(),
        "foreign objects are not ours to delete"
    );
}

/// A file far larger than any message the store writes (an object uploaded through S3, or a
/// damaged file) is not read whole: it costs one message, not the function's memory.
#[tokio::test]
async fn a_file_larger_than_any_message_is_skipped_not_read_whole() {
    let (_dir, store) = store();
    let hour_ago = now_millis() - 3_600_000;
    let good = seed(&store, MessageId::at_millis(hour_ago), b"good");
    let huge = MessageId::at_millis(hour_ago);
    // A well-formed message file, but with a body three times the largest a POST may store.
    let body = vec![b'x'; 3 * shared::config::MAX_MESSAGE_BYTES_CEILING];
    fs::write(
        store.message_path(huge),
        format::encode("text/plain", &body),
    )
    .unwrap();
    let mut messages = Vec::new();
    let listed = store
        .list_into(Order::Desc, None, 100, &mut messages)
        .await
        .unwrap();
    assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), [good]);
    assert_eq!(listed.skipped, 1);
    assert!(matches!(store.read(huge).await, Err(StoreError::Corrupt(id)) if id == huge));
}

#[tokio::test]
async fn delete_one_and_not_found() {
    let (dir, store) = store();
    let id = store.publish("text/plain", b"x").await.unwrap();
    store.delete(id).await.unwrap();
    assert_eq!(names(dir.path()), ["cutoff"]);
    assert!(matches!(store.delete(id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.read(id).await, Err(StoreError::NotFound)));
}

fn everything() -> ReclaimBudget {
    ReclaimBudget {
        max_operations: usize::MAX,
        max_time: Duration::from_secs(60),
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn all_ids(store: &MessageStore, order: Order) -> Vec<MessageId> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(order, after, 37).await.unwrap();
        ids.extend(page.messages.iter().map(|m| m.id));
        match page.next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn delete_all_hides_everything_at_once_and_reclaiming_removes_the_files() {
    let (dir, store) = store();
    for i in 0..300 {
        store.publish("text/plain", &[i as u8]).await.unwrap();
    }
    let kept_before = store.publish("text/plain", b"last").await.unwrap();
    let started = std::time::Instant::now();
    store.delete_all().await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= MAX_CLOCK_SKEW,
        "waits out the clock-skew bound before answering: {took:?}"
    );
    // Nothing is unlinked yet, and nothing is visible.
    assert_eq!(
        names(dir.path()).len(),
        302,
        "300 + 1 messages and the cut-off"
    );
    assert!(store
        .list(Order::Asc, None, 1000)
        .await
        .unwrap()
        .messages
        .is_empty());
    assert!(store
        .list(Order::Desc, None, 1000)
        .await
        .unwrap()
        .messages
        .is_empty());
    assert!(matches!(
        store.read(kept_before).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete(kept_before).await,
        Err(StoreError::NotFound)
    ));
    // A message posted after the DELETE answered is kept, through reclaiming too.
    let after = store.publish("text/plain", b"after").await.unwrap();
    let done = store.reclaim(everything()).await.unwrap();
    assert_eq!((done.messages, done.finished), (300, true), "{done:?}");
    assert_eq!(names(dir.path()), {
        let mut expected = vec![
            after.to_string(),
            "cutoff".to_owned(),
            "reclaimed".to_owned(),
        ];
        expected.sort();
        expected
    });
    assert_eq!(store.read(after).await.unwrap().body, b"after");
    assert_eq!(all_ids(&store, Order::Desc).await, vec![after]);
    settle().await;
    assert_eq!(all_ids(&store, Order::Asc).await, vec![after]);
    // Fresh directories stay: a writer may still be putting a message in them.
    assert_eq!(done.directories, 0);
}

#[tokio::test]
async fn reclaiming_removes_old_empty_directories_in_bounded_steps() {
    let (dir, store) = store();
    // 2,000 messages an hour's worth apart two days ago, in directories whose whole time range
    // is long past, so reclaiming may remove them once empty.
    let two_days_ago = now_millis() - 2 * 86_400_000;
    for i in 0..2_000 {
        seed(
            &store,
            MessageId::at_millis(two_days_ago - i * 1_800),
            b"old",
        );
    }
    store.delete_all().await.unwrap();
    let mut runs = 0;
    let mut removed = 0;
    loop {
        let done = store
            .reclaim(ReclaimBudget {
                max_operations: 300,
                max_time: Duration::from_secs(60),
            })
            .await
            .unwrap();
        runs += 1;
        removed += done.messages;
        assert!(
            done.messages + done.directories < 300 + 64 * 2,
            "a run stops near its budget: {done:?}"
        );
        if done.finished {
            break;
        }
        assert!(runs < 100, "reclaiming makes progress");
    }
    assert!(
        runs >= 7,
        "2,000 removals at 300 a run take several runs: {runs}"
    );
    assert_eq!(removed, 2_000);
    let left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        vec!["cutoff".to_owned(), "reclaimed".to_owned()],
        "old empty directories are removed too"
    );
}

#[tokio::test]
async fn stale_temporaries_below_the_cutoff_are_reclaimed_and_fresh_ones_kept() {
    let (_dir, store) = store();
    let temporary = |id: MessageId| {
        let path = store.message_path(id).with_file_name(format!(".tmp-{id}"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    };
    let stale = temporary(MessageId::generate());
    let fresh = temporary(MessageId::generate());
    fs::write(&stale, b"crashed writer").unwrap();
    fs::write(&fresh, b"writer still running").unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    store.delete_all().await.unwrap();
    let done = store.reclaim(everything()).await.unwrap();
    assert!(
        !stale.exists(),
        "an hour-old temporary is a crashed writer's"
    );
    assert!(
        fresh.exists(),
        "a fresh temporary may belong to a live writer"
    );
    assert_eq!(done.temporaries, 1);
}

#[tokio::test]
async fn both_orders_page_across_directory_edges_with_exclusive_cursors() {
    let (_dir, store) = store();
    // Ids on each side of leaf (256 ms), mid (65.5 s) and top (4.66 h) boundaries, several per
    // millisecond, and a sparse tail days apart.
    let mut seeded = Vec::new();
    for edge in [
        5u64 << 24,
        6 << 24,
        (6 << 24) + (3 << 16),
        (6 << 24) + (3 << 16) + (9 << 8),
    ] {
        let edge = edge + (0x18a << 24);
        for millis in [edge - 1, edge, edge + 1] {
            for _ in 0..3 {
                seeded.push(seed(&store, MessageId::at_millis(millis), b"x"));
            }
        }
    }
    for day in 0..20 {
        seeded.push(seed(
            &store,
            MessageId::at_millis((0x18b << 24) + day * 86_400_000),
            b"y",
        ));
    }
    seeded.sort();
    assert_eq!(all_ids(&store, Order::Asc).await, seeded);
    let mut newest_first = seeded.clone();
    newest_first.reverse();
    assert_eq!(all_ids(&store, Order::Desc).await, newest_first);
    // Every id as a cursor, both ways: exactly the ids beyond it.
    for (i, id) in seeded.iter().enumerate() {
        let page = store.list(Order::Asc, Some(*id), 5).await.unwrap();
        let expected: Vec<MessageId> = seeded[i + 1..].iter().take(5).copied().collect();
        assert_eq!(
            page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(page.next.is_some(), seeded.len() - i - 1 > 5);
        let page = store.list(Order::Desc, Some(*id), 5).await.unwrap();
        let expected: Vec<MessageId> = seeded[..i].iter().rev().take(5).copied().collect();
        assert_eq!(
            page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            expected
        );
    }
}

#[tokio::test]
async fn newest_first_starts_with_the_latest_post() {
    let (_dir, store) = store();
    for day in 1..=3 {
        seed(
            &store,
            MessageId::at_millis(now_millis() - day * 86_400_000),
            b"old",
        );
    }
    let mut posted = Vec::new();
    for i in 0..5 {
        posted.push(store.publish("text/plain", &[i]).await.unwrap());
    }
    let page = store.list(Order::Desc, None, 3).await.unwrap();
    posted.reverse();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        posted[..3]
    );
    assert_eq!(page.next, Some(posted[2]));
    assert_eq!(all_ids(&store, Order::Desc).await.len(), 8);
}

#[tokio::test]
async fn a_corrupt_message_file_is_an_error_not_a_panic() {
    let (_dir, store) = store();
    let id = MessageId::generate();
    let path = store.message_path(id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"garbage").unwrap();
    assert!(matches!(store.read(id).await, Err(StoreError::Corrupt(bad)) if bad == id));
}

#[tokio::test]
async fn a_missing_directory_is_unavailable_for_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::new(dir.path().join("not-mounted"));
    let id = MessageId::generate();
    assert!(matches!(
        store.publish("text/plain", b"x").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.list(Order::Asc, None, 10).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.read(id).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.delete(id).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.delete_all().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.reclaim(everything()).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_file_where_the_directory_should_be_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let store = MessageStore::new(&file);
    assert!(matches!(
        store.read(MessageId::generate()).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.publish("a/b", b"x").await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tasks_never_collide_or_lose_a_message() {
    let (_dir, store) = store();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                ids.push(
                    store
                        .publish("text/plain", format!("{t}-{i}").as_bytes())
                        .await
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(all.insert(id), "duplicate id {id}");
        }
    }
    settle().await;
    let listed: HashSet<MessageId> = store
        .list(Order::Asc, None, 1000)
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, all);
}

/// Directories that report being opened: inotify watches for `IN_OPEN` on each (listing a
/// directory opens it; an `O_PATH` handle or a lookup of a name under it does not).
struct Traps(std::os::fd::OwnedFd);

impl Traps {
    fn new() -> Self {
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify");
        Self(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
    }

    /// Makes `path` an empty directory that reports being opened.
    fn set(&self, path: &std::path::Path) {
        fs::create_dir_all(path).unwrap();
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.0);
        let watch = unsafe { libc::inotify_add_watch(fd, name.as_ptr(), libc::IN_OPEN) };
        assert!(watch >= 0, "watch {}", path.display());
    }

    /// Whether any trap was opened since the last call.
    fn sprung(&self) -> bool {
        let mut buffer = [0u8; 4096];
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.0);
        let mut sprung = false;
        while unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) } > 0 {
            sprung = true;
        }
        sprung
    }
}

#[tokio::test]
async fn a_page_opens_only_the_directories_around_its_cursor() {
    let (dir, store) = store();
    // Yesterday: 300 messages 50 ms apart. Now: 150 posted.
    let day_ago = now_millis() - 86_400_000;
    let yesterday: Vec<MessageId> = (0..300)
        .map(|i| seed(&store, MessageId::at_millis(day_ago + i * 50), b"yesterday"))
        .collect();
    let mut today = Vec::new();
    for _ in 0..150 {
        today.push(store.publish("text/plain", b"today").await.unwrap());
    }
    // Between yesterday and the far past, a week ago: listing ahead a little (several
    // directories at once) may open it, but no page here needs anything beyond it.
    for i in 0..300 {
        seed(
            &store,
            MessageId::at_millis(day_ago - 6 * 86_400_000 + i * 50),
            b"week",
        );
    }
    // Traps at the far ends of time: any listing that walked the whole store would open one.
    let traps = Traps::new();
    traps.set(&dir.path().join("000001"));
    traps.set(&dir.path().join("ffffff"));
    settle().await;
    let ids = |page: shared::Page| page.messages.iter().map(|m| m.id).collect::<Vec<_>>();
    let mut newest: Vec<MessageId> = today.iter().rev().copied().collect();
    newest.truncate(100);
    assert_eq!(
        ids(store.list(Order::Desc, None, 100).await.unwrap()),
        newest
    );
    assert_eq!(
        ids(store
            .list(Order::Asc, Some(yesterday[49]), 100)
            .await
            .unwrap()),
        yesterday[50..150]
    );
    let back: Vec<MessageId> = yesterday[150..250].iter().rev().copied().collect();
    assert_eq!(
        ids(store
            .list(Order::Desc, Some(yesterday[250]), 100)
            .await
            .unwrap()),
        back
    );
    // Across the gap between yesterday and today, still without walking to the traps.
    let page = store.list(Order::Desc, Some(today[20]), 100).await.unwrap();
    let mut expected: Vec<MessageId> = today[..20].iter().rev().copied().collect();
    expected.extend(yesterday.iter().rev().take(80));
    assert_eq!(ids(page), expected);
    assert!(
        !traps.sprung(),
        "a page opened a directory at the ends of time"
    );
    // After a delete of everything, oldest first starts at the cut-off: it never opens the
    // directories of the past (the trap at the beginning of time stays shut).
    store.delete_all().await.unwrap();
    let fresh = store.publish("text/plain", b"fresh").await.unwrap();
    settle().await;
    assert_eq!(
        ids(store.list(Order::Asc, None, 100).await.unwrap()),
        vec![fresh]
    );
    assert!(
        !traps.sprung(),
        "oldest first after a DELETE opened the past"
    );
    // The control: with nothing to start from, oldest first must list from the beginning of
    // time, and there it opens the trap. (Proves the traps would catch a walk of the store.)
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::new(dir.path());
    seed(&store, MessageId::at_millis(day_ago), b"x");
    traps.set(&dir.path().join("000001"));
    store.list(Order::Asc, None, 10).await.unwrap();
    assert!(traps.sprung(), "the control walk did not open the trap");
}

#[tokio::test]
async fn listings_after_a_delete_all_skip_the_condemned_in_both_orders() {
    let (_dir, store) = store();
    let day_ago = now_millis() - 86_400_000;
    let old: Vec<MessageId> = (0..50)
        .map(|i| seed(&store, MessageId::at_millis(day_ago + i * 1000), b"old"))
        .collect();
    let condemned_now = store.publish("text/plain", b"now").await.unwrap();
    store.delete_all().await.unwrap();
    let mut kept = Vec::new();
    for _ in 0..5 {
        kept.push(store.publish("text/plain", b"kept").await.unwrap());
    }
    settle().await;
    assert_eq!(all_ids(&store, Order::Asc).await, kept);
    let newest: Vec<MessageId> = kept.iter().rev().copied().collect();
    assert_eq!(all_ids(&store, Order::Desc).await, newest);
    for cursor in [old[10], condemned_now] {
        let page = store.list(Order::Desc, Some(cursor), 100).await.unwrap();
        assert!(page.messages.is_empty() && page.next.is_none(), "{page:?}");
        let page = store.list(Order::Asc, Some(cursor), 100).await.unwrap();
        assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), kept);
    }
    let page = store.list(Order::Desc, Some(kept[3]), 100).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        newest[2..]
    );
}

#[tokio::test]
async fn directories_removed_and_made_again_are_seen_through_kept_handles() {
    let (dir, store) = store();
    let old = store.publish("text/plain", b"old").await.unwrap();
    assert_eq!(store.read(old).await.unwrap().body, b"old");
    // The whole tree goes (as a wipe or a restore would do it) and comes back with another
    // message in the same directories: the instance's kept handles are on removed directories.
    let top = dir.path().join(&old.to_string()[..6]);
    fs::remove_dir_all(&top).unwrap();
    let restored = seed(&store, MessageId::at_millis(old.unix_millis()), b"restored");
    assert_eq!(store.read(restored).await.unwrap().body, b"restored");
    assert!(matches!(store.read(old).await, Err(StoreError::NotFound)));
    store.delete(restored).await.unwrap();
    assert!(matches!(
        store.read(restored).await,
        Err(StoreError::NotFound)
    ));
    let posted = store.publish("text/plain", b"posted").await.unwrap();
    assert_eq!(store.read(posted).await.unwrap().body, b"posted");
}

#[tokio::test]
async fn oldest_first_pages_stop_at_the_settle_horizon() {
    let (_dir, store) = store();
    let old = seed(
        &store,
        MessageId::at_millis(now_millis() - 60_000),
        b"a minute ago",
    );
    let new = store.publish("text/plain", b"now").await.unwrap();
    // Newest first, a message is listed at once.
    let page = store.list(Order::Desc, None, 10).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [new, old]
    );
    // Oldest first, not until nothing can still be published before it: a client following
    // `next` never passes a message still being written.
    let page = store.list(Order::Asc, None, 10).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [old]
    );
    assert_eq!(page.next, None, "the last page for now");
    settle().await;
    let page = store.list(Order::Asc, Some(old), 10).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [new]
    );
}

/// A sink that takes `room` messages, then refuses.
struct Room(usize, Vec<Message>);

impl PageSink for Room {
    fn offer(&mut self, message: Message) -> bool {
        if self.1.len() == self.0 {
            return false;
        }
        self.1.push(message);
        true
    }
}

/// A sink that takes everything but says it has room for `room` more body bytes, as a page near
/// Lambda's response limit does.
struct Tight {
    room: usize,
    taken: Vec<Message>,
}

impl PageSink for Tight {
    fn offer(&mut self, message: Message) -> bool {
        self.room = self.room.saturating_sub(message.body.len());
        self.taken.push(message);
        true
    }

    fn room(&self) -> usize {
        self.room
    }
}

#[tokio::test]
async fn a_page_reads_no_further_ahead_than_its_sink_has_room_for_and_skips_nothing() {
    let (_dir, store) = store();
    let start = now_millis() - 600_000;
    let body = vec![b'm'; 1000];
    let ids: Vec<MessageId> = (0..300)
        .map(|i| seed(&store, MessageId::at_millis(start + i * 300), &body))
        .collect();
    for order in [Order::Asc, Order::Desc] {
        // Room for two messages and a half, then none: every window reads one message per task
        // at most, and what it left unread comes first in the next; every message arrives once,
        // in order.
        let mut sink = Tight {
            room: 2500,
            taken: Vec::new(),
        };
        let listed = store.list_into(order, None, 250, &mut sink).await.unwrap();
        let mut expected = ids.clone();
        if order == Order::Desc {
            expected.reverse();
        }
        assert_eq!(listed.returned, 250);
        assert_eq!(
            sink.taken.iter().map(|m| m.id).collect::<Vec<_>>(),
            expected[..250],
            "{order:?}"
        );
        assert_eq!(listed.next, Some(expected[249]));
    }
}

#[tokio::test]
async fn a_full_sink_ends_the_page_with_next() {
    let (_dir, store) = store();
    let start = now_millis() - 600_000;
    let ids: Vec<MessageId> = (0..150)
        .map(|i| seed(&store, MessageId::at_millis(start + i * 700), b"x"))
        .collect();
    let mut room = Room(70, Vec::new());
    let listed: Listed = store
        .list_into(Order::Asc, None, 100, &mut room)
        .await
        .unwrap();
    assert_eq!(listed.returned, 70);
    assert_eq!(
        listed.next,
        Some(ids[69]),
        "the next page starts with the refused one"
    );
    assert_eq!(room.1.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..70]);
    let page = store.list(Order::Asc, listed.next, 100).await.unwrap();
    assert_eq!(page.messages.first().map(|m| m.id), Some(ids[70]));
}

#[tokio::test]
async fn a_file_that_does_not_decode_is_skipped_and_counted() {
    let (_dir, store) = store();
    let start = now_millis() - 600_000;
    let good: Vec<MessageId> = (0..5)
        .map(|i| seed(&store, MessageId::at_millis(start + i), b"good"))
        .collect();
    let bad = MessageId::at_millis(start + 2);
    fs::write(store.message_path(bad), b"not a message").unwrap();
    let newer = MessageId::at_millis(start + 3);
    fs::write(store.message_path(newer), b"EFSM\x02\x00\x00future").unwrap();
    let mut messages = Vec::new();
    let listed = store
        .list_into(Order::Asc, None, 100, &mut messages)
        .await
        .unwrap();
    assert_eq!(messages.iter().map(|m| m.id).collect::<Vec<_>>(), good);
    assert_eq!(listed.skipped, 2);
    assert!(matches!(store.read(bad).await, Err(StoreError::Corrupt(id)) if id == bad));
}

#[tokio::test]
async fn messages_older_than_the_retention_period_are_gone_and_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(86_400);
    let store = MessageStore::new(dir.path()).with_retention(Some(day));
    let two_days_ago = now_millis() - 2 * 86_400_000;
    let expired: Vec<MessageId> = (0..20)
        .map(|i| {
            seed(
                &store,
                MessageId::at_millis(two_days_ago + i * 1000),
                b"old",
            )
        })
        .collect();
    let hour_ago = seed(
        &store,
        MessageId::at_millis(now_millis() - 3_600_000),
        b"recent",
    );
    let fresh = store.publish("text/plain", b"fresh").await.unwrap();
    assert!(matches!(
        store.read(expired[0]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete(expired[1]).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.read(hour_ago).await.unwrap().body, b"recent");
    assert_eq!(all_ids(&store, Order::Desc).await, [fresh, hour_ago]);
    // Retention composes with a DELETE of everything: both are cut-offs, the later one wins.
    store.delete_all().await.unwrap();
    assert!(all_ids(&store, Order::Desc).await.is_empty());
    let done = store.reclaim(everything()).await.unwrap();
    assert_eq!(done.messages, 21, "{done:?}");
    // The same files with everything kept: still there (retention is the store's setting).
    let kept = MessageStore::new(dir.path());
    assert!(
        all_ids(&kept, Order::Desc).await.is_empty(),
        "deleted all the same"
    );
}

#[tokio::test]
async fn deleting_the_last_message_of_a_closed_directory_removes_it() {
    let (dir, store) = store();
    let hour_ago = now_millis() - 3_600_000;
    let alone = seed(&store, MessageId::at_millis(hour_ago), b"alone");
    let pair = [
        seed(&store, MessageId::at_millis(hour_ago + 600_000), b"one"),
        seed(&store, MessageId::at_millis(hour_ago + 600_000), b"two"),
    ];
    let leaf = |id: MessageId| store.message_path(id).parent().unwrap().to_owned();
    store.delete(pair[0]).await.unwrap();
    assert!(leaf(pair[1]).exists(), "another message is still there");
    store.delete(pair[1]).await.unwrap();
    assert!(!leaf(pair[1]).exists(), "the emptied directory is removed");
    store.delete(alone).await.unwrap();
    let top = dir.path().join(&alone.to_string()[..6]);
    assert!(!leaf(alone).exists() && !leaf(alone).parent().unwrap().exists());
    // The top-level directory spans 4.66 hours: removed too if its time is over.
    let top_ends = (alone.unix_millis() | ((1 << 24) - 1)) + SETTLE.as_millis() as u64;
    let top_over = top_ends < now_millis();
    assert!(!top_over || !top.exists(), "{}", top.display());
    // A message deleted right after it was posted leaves its directory open (a POST may still
    // write into it); reclaiming removes it once its time is over.
    let now = store.publish("text/plain", b"now").await.unwrap();
    store.delete(now).await.unwrap();
    assert!(leaf(now).exists(), "not closed yet");
    // Closed once its 256 ms have ended and SETTLE passed.
    let closes = (now.unix_millis() | 0xff) + SETTLE.as_millis() as u64 + 50;
    tokio::time::sleep(Duration::from_millis(closes.saturating_sub(now_millis()))).await;
    let done = store.reclaim(everything()).await.unwrap();
    assert!(!leaf(now).exists(), "swept once closed: {done:?}");
    assert!(done.directories >= 1);
}

#[tokio::test]
async fn a_cut_off_far_in_the_future_hides_nothing_posted_after_it_was_written() {
    // Store v2's cut-off file (slots of version 1), written by an instance whose clock was a day
    // ahead: capped at the file's time plus the clock bound.
    let (dir, store) = store();
    let mut slot = [0u8; 32];
    slot[..4].copy_from_slice(b"EFSC");
    slot[4] = 1;
    slot[8..16].copy_from_slice(&1u64.to_be_bytes());
    slot[16..24].copy_from_slice(&(now_millis() + 86_400_000).to_be_bytes());
    let checksum = slot[..24]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    slot[24..].copy_from_slice(&checksum.to_be_bytes());
    fs::write(dir.path().join("cutoff"), slot).unwrap();
    tokio::time::sleep(MAX_CLOCK_SKEW + Duration::from_millis(20)).await;
    let id = store.publish("text/plain", b"after").await.unwrap();
    assert_eq!(store.read(id).await.unwrap().body, b"after");
    // And the next DELETE answers at once, not a day later.
    let started = std::time::Instant::now();
    store.delete_all().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(store.read(id).await, Err(StoreError::NotFound)));
}
