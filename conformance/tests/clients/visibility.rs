//! What one client did is what every other client sees at once, whatever they cached before:
//! names looked up and not found, listings read, the cut-off file's absence.

use std::{thread, time::Duration};

use shared::MessageId;

use crate::{
    instance::{Function, Instance},
    world::{now_millis, World},
};

/// Reads ids in every leaf directory of the next `span_ms` (one every 50 ms), so that the reader's
/// client caches "no such name" for directories that do not exist yet.
fn look_ahead(reader: &mut Instance, span_ms: u64) {
    let now = now_millis();
    for ahead in (0..span_ms).step_by(50) {
        let id = MessageId::at_millis(now + ahead).to_string();
        assert_eq!(reader.get(&id).status, 404);
    }
}

fn assert_seen(reader: &mut Instance, id: &str, who: &str) {
    let answer = reader.get(id);
    assert_eq!(answer.status, 200, "{who} cannot read {id} by id");
    let page = reader.list("desc", None, 10);
    assert_eq!(page.status, 200);
    assert!(
        page.ids.iter().any(|listed| listed == id),
        "{who}'s newest-first first page lacks {id}: {:?}",
        page.ids
    );
}

pub fn a_first_delete_all_is_seen_at_once_by_a_client_that_cached_its_absence() {
    let mut world = World::new();
    let mut reader = world.instance(Function::Get);
    let mut poster = world.instance(Function::Post);
    let mut deleter = world.instance(Function::Delete);
    // The reader looks for a message of last year: its client learns there is no cut-off file.
    let old = MessageId::at_millis(now_millis() - 365 * 86_400_000).to_string();
    assert_eq!(reader.get(&old).status, 404);
    let (status, id) = poster.post(b"soon deleted", "text/plain");
    assert_eq!(status, 201);
    let id = id.expect("an id");
    assert_eq!(reader.get(&id).status, 200);
    assert_eq!(deleter.delete_all().status, 204);
    assert_eq!(
        reader.get(&id).status,
        404,
        "the reader still serves a deleted message"
    );
    for order in ["asc", "desc"] {
        let page = reader.list(order, None, 100);
        assert_eq!(page.status, 200);
        assert!(
            page.ids.is_empty(),
            "{order}: deleted messages listed: {:?}",
            page.ids
        );
    }
}

pub fn the_first_messages_of_a_new_time_window_are_seen_at_once() {
    let mut world = World::new();
    let mut reader = world.instance(Function::Get);
    let mut poster = world.instance(Function::Post);
    // On an empty store the reader's client caches "no such name" for this window's directories.
    assert!(reader.list("desc", None, 10).ids.is_empty());
    look_ahead(&mut reader, 1000);
    let (status, id) = poster.post(b"first of its window", "text/plain");
    assert_eq!(status, 201);
    assert_seen(&mut reader, &id.expect("an id"), "the reader");
}

pub fn a_message_posted_through_a_is_read_and_listed_through_b_and_c_at_once() {
    let mut world = World::new();
    let mut a = world.instance(Function::Post);
    let mut readers = [world.instance(Function::Get), world.instance(Function::Get)];
    // Warm caches: B and C have listed and read before, and looked up what does not exist yet.
    let (_, first) = a.post(b"warm-up", "text/plain");
    for reader in &mut readers {
        assert_seen(reader, &first.clone().expect("an id"), "warm-up");
        look_ahead(reader, 3000);
    }
    for n in 0..12 {
        let (status, id) = a.post(format!("message {n}").as_bytes(), "text/plain");
        assert_eq!(status, 201);
        let id = id.expect("an id");
        for (reader, who) in readers.iter_mut().zip(["B", "C"]) {
            assert_seen(reader, &id, who);
        }
        thread::sleep(Duration::from_millis(200));
    }
}

pub fn a_leaf_created_after_b_listed_its_parent_is_seen_at_once() {
    let mut world = World::new();
    let mut poster = world.instance(Function::Post);
    let mut reader = world.instance(Function::Get);
    let (_, first) = poster.post(b"first", "text/plain");
    assert_seen(&mut reader, &first.expect("an id"), "the reader");
    // The reader has listed this minute's directory, and looked up the leaves to come.
    look_ahead(&mut reader, 1500);
    thread::sleep(Duration::from_millis(300));
    let (status, id) = poster.post(b"in a new leaf", "text/plain");
    assert_eq!(status, 201);
    assert_seen(&mut reader, &id.expect("an id"), "the reader");
}
