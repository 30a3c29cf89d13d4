//! Paging in both orders: cursors across directory edges, the settle horizon oldest first, pages
//! that open only the directories around their cursor, and sinks that bound what a page reads.

use super::*;

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
