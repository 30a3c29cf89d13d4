//! The message store against a real directory: publication, paging in both orders, deletion,
//! the delete-all cut-off, retention, reclaiming and the faults a mount can show. (The same store
//! across NFS clients, with their caches and clocks: conformance/tests/clients.)
//!
//! One test binary, a module per concern: `writing` (publishing and reading by id), `paging`,
//! `deleting` (one, all, retention, reclaiming) and `damage` (what else a mount can hold or show).
//! The helpers they share are here.

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

#[path = "../common/mod.rs"]
mod common;
use common::{names_under as names, seed};

mod damage;
mod deleting;
mod paging;
mod writing;

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
