//! The message store against a real directory: publication, paging, deletion, sweeping and the
//! faults a mount can show.

use std::{collections::HashSet, fs, time::Duration};

use shared::{format, MessageId, MessageStore, StoreError};

mod common;
use common::names_under as names;

fn store() -> (tempfile::TempDir, MessageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::new(dir.path());
    (dir, store)
}

#[tokio::test]
async fn publish_writes_one_file_named_by_the_id_and_reads_back() {
    let (dir, store) = store();
    let id = store.publish("text/plain", b"hello").await.unwrap();
    assert_eq!(
        names(dir.path()),
        vec![id.to_string()],
        "no temporary is left"
    );
    let message = store.read(id).await.unwrap();
    assert_eq!(message.id, id);
    assert_eq!(message.content_type, "text/plain");
    assert_eq!(message.body, b"hello");
    // The Content-Type travels inside the file, not in an xattr or a second file.
    let path = store.message_path(id);
    assert_eq!(
        path.parent().unwrap().parent().unwrap(),
        dir.path(),
        "one shard level"
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
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list(after, 100).await.unwrap();
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
        .list(None, 1000)
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

    let page = store.list(Some(between), 1).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![second]
    );
    assert_eq!(page.next, Some(second));
    let page = store.list(page.next, 10).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![third]
    );
    assert_eq!(page.next, None);

    // A deleted cursor behaves the same.
    store.delete(first).await.unwrap();
    let page = store.list(Some(first), 10).await.unwrap();
    assert_eq!(page.messages.len(), 2);
    // A cursor past everything is an empty last page.
    let page = store.list(Some(MessageId::generate()), 10).await.unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn listings_ignore_temporaries_and_foreign_files() {
    let (dir, store) = store();
    let id = store.publish("text/plain", b"real").await.unwrap();
    let shard = store.message_path(id).parent().unwrap().to_owned();
    fs::write(shard.join(".tmp-half-written"), b"EFSM\x01").unwrap();
    fs::write(dir.path().join("README"), b"not a message").unwrap();
    fs::create_dir(dir.path().join("subdir")).unwrap();
    // A message file outside its shard was not written by the store: not served.
    let stray = MessageId::generate();
    fs::write(
        dir.path().join(stray.to_string()),
        format::encode("text/plain", b"x"),
    )
    .unwrap();
    let page = store.list(None, 100).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![id]
    );
    assert_eq!(store.delete_all().await.unwrap(), 1);
    assert!(
        dir.path().join("README").exists(),
        "foreign files are not ours to delete"
    );
}

#[tokio::test]
async fn delete_one_and_not_found() {
    let (dir, store) = store();
    let id = store.publish("text/plain", b"x").await.unwrap();
    store.delete(id).await.unwrap();
    assert!(names(dir.path()).is_empty());
    assert!(matches!(store.delete(id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.read(id).await, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn delete_all_removes_every_message_and_counts_them() {
    let (dir, store) = store();
    for i in 0..300 {
        store.publish("text/plain", &[i as u8]).await.unwrap();
    }
    assert_eq!(store.delete_all().await.unwrap(), 300);
    assert!(names(dir.path()).is_empty());
    assert_eq!(store.delete_all().await.unwrap(), 0);
    let shards = fs::read_dir(dir.path()).unwrap().count();
    assert!(
        shards > 32,
        "300 messages spread over the 64 shards, got {shards} directories"
    );
}

#[tokio::test]
async fn stale_temporaries_are_swept_and_fresh_ones_kept() {
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
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    // delete_all sweeps with the production age (15 minutes).
    store.delete_all().await.unwrap();
    assert!(
        !stale.exists(),
        "an hour-old temporary is a crashed writer's"
    );
    assert!(
        fresh.exists(),
        "a fresh temporary may belong to a live writer"
    );
    assert_eq!(
        store.sweep_stale_temporaries(Duration::ZERO).await.unwrap(),
        1
    );
    assert!(!fresh.exists());
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
        store.list(None, 10).await,
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
    let listed: HashSet<MessageId> = store
        .list(None, 1000)
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, all);
}
