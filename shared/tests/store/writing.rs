//! Publishing and reading by id: one file per message named by its id, bytes round-trip, concurrent
//! writers never collide, and kept directory handles follow directories removed and made again.

use super::*;

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
