//! Deleting: one message, everything at once (the cut-off), retention, and reclaiming what they
//! leave behind in bounded runs.

use super::*;

#[tokio::test]
async fn delete_one_and_not_found() {
    let (dir, store) = store();
    let id = store.publish("text/plain", b"x").await.unwrap();
    store.delete(id).await.unwrap();
    assert_eq!(names(dir.path()), ["cutoff"]);
    assert!(matches!(store.delete(id).await, Err(StoreError::NotFound)));
    assert!(matches!(store.read(id).await, Err(StoreError::NotFound)));
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
