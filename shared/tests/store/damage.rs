//! What a mount can hold or show besides messages: temporaries, foreign files and S3 objects,
//! files too large or undecodable, a missing directory or a file in its place.

use super::*;

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
