//! A store's history: messages deleted one by one, a DELETE of everything reclaimed by another
//! client while a reader still holds handles, reclaiming past what it cannot remove, a DELETE
//! whose lock holder froze.

use std::{
    thread,
    time::{Duration, Instant},
};

use shared::MessageId;

use crate::{
    instance::Function,
    world::{now_millis, World},
};

/// Round trips of the kinds a listing makes, sent by one client so far.
fn listing_trips(world: &World, client: usize) -> u64 {
    let mount = world.mount(client);
    ["lookup", "getattr", "readdir", "open", "read"]
        .iter()
        .map(|rpc| mount.rpcs(rpc))
        .sum()
}

/// The last millisecond a store directory (`top`, `top/mid` or `top/mid/leaf`) holds.
fn last_millis(backing: &std::path::Path, dir: &std::path::Path) -> u64 {
    let parts: Vec<u64> = dir
        .strip_prefix(backing)
        .expect("under the store")
        .iter()
        .map(|part| u64::from_str_radix(&part.to_string_lossy(), 16).expect("hex"))
        .collect();
    let (key, shift) = match parts[..] {
        [top] => (top, 24),
        [top, mid] => ((top << 8) | mid, 16),
        [top, mid, leaf] => ((((top << 8) | mid) << 8) | leaf, 8),
        _ => panic!("not a store directory: {}", dir.display()),
    };
    (key << shift) | ((1 << shift) - 1)
}

pub fn messages_deleted_one_by_one_leave_no_cost_behind() {
    let mut world = World::new();
    let start = now_millis() - 3 * 3_600_000;
    // Three hours ago, one live message; after it, 1,500 messages two seconds apart, each in a
    // directory of its own, all deleted one by one; and a few posted and deleted just now.
    let live = world.seed(MessageId::at_millis(start), b"live");
    let history: Vec<String> = (1..=1500)
        .map(|i| world.seed(MessageId::at_millis(start + i * 2000), b"deleted"))
        .collect();
    let mut deleter = world.instance(Function::Delete);
    for id in &history {
        assert_eq!(deleter.delete(id).status, 204);
    }
    let mut poster = world.instance(Function::Post);
    for _ in 0..10 {
        let (_, id) = poster.post(b"posted, then deleted", "text/plain");
        assert_eq!(deleter.delete(&id.expect("an id")).status, 204);
    }
    // Reclaiming runs every minute; let the recent directories close first.
    thread::sleep(Duration::from_secs(2));
    let run = deleter.reclaim();
    assert!(run.get("error").is_none(), "{run}");

    // Empty directories may stay only while messages can still be written into them: the time
    // ranges not yet closed.
    let closed_before = now_millis() - shared::store::SETTLE.as_millis() as u64;
    let empty: Vec<_> = world
        .directories()
        .into_iter()
        .filter(|dir| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()))
        .filter(|dir| last_millis(world.backing(), dir) < closed_before)
        .collect();
    assert!(
        empty.is_empty(),
        "{} emptied directories are left, e.g. {:?}",
        empty.len(),
        empty.first()
    );
    // A reader on a client of its own: the page that finds the one live message costs what a
    // fresh store's would, not a walk through the history.
    let client = world.client(&[]);
    let mut reader =
        crate::instance::Instance::start(Function::Get, world.dir(client), &Default::default());
    let before = listing_trips(&world, client);
    for order in ["desc", "asc"] {
        let page = reader.list(order, None, 100);
        assert_eq!(page.status, 200);
        assert_eq!(page.ids, std::slice::from_ref(&live), "{order}");
    }
    let trips = listing_trips(&world, client) - before;
    assert!(
        trips <= 60,
        "two pages of one message took {trips} round trips"
    );
}

pub fn reclaiming_through_c_while_b_reads_what_it_removes() {
    let mut world = World::new();
    let start = now_millis() - 3_600_000;
    let ids: Vec<String> = (0..300)
        .map(|i| world.seed(MessageId::at_millis(start + i * 10_000), b"old"))
        .collect();
    // B reads slowly (each READ takes 100 ms), C is quick.
    let mut b = world.instance_with(Function::Get, &["--read-us", "100000"], &Default::default());
    let b_client = 0;
    let mut a = world.instance(Function::Delete);
    let mut c = world.instance(Function::Delete);
    // B has read some by id already (its instance keeps handles on their directories).
    for id in ids.iter().step_by(30) {
        assert_eq!(b.get(id).status, 200);
    }
    let reads_before = world.mount(b_client).rpcs("read");
    let page = thread::spawn(move || {
        let page = b.list("asc", None, 300);
        (b, page)
    });
    // Once B is reading its page, everything is deleted and C reclaims it all.
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.mount(b_client).rpcs("read") == reads_before {
        assert!(Instant::now() < deadline, "B never started reading");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(a.delete_all().status, 204);
    let run = c.reclaim();
    assert!(run.get("error").is_none(), "{run}");
    let (mut b, page) = page.join().expect("B's page");
    assert_eq!(page.status, 200, "B's page failed while C reclaimed");
    for id in ids.iter().step_by(30) {
        assert_eq!(b.get(id).status, 404, "{id} is deleted");
    }
    assert!(b.list("asc", None, 100).ids.is_empty());
}

pub fn reclaiming_goes_past_what_it_cannot_remove() {
    let mut world = World::new();
    let start = now_millis() - 3_600_000;
    let ids: Vec<String> = (0..200)
        .map(|i| world.seed(MessageId::at_millis(start + i * 1000), b"old"))
        .collect();
    // Strays in condemned directories: a directory named like a message, a foreign file.
    let stray = shared::MessageStore::new(world.backing())
        .message_path(MessageId::at_millis(start + 50_500));
    std::fs::create_dir_all(&stray).expect("a stray directory");
    std::fs::write(stray.parent().unwrap().join("notes.txt"), "not ours").expect("a stray file");
    let mut deleter = world.instance(Function::Delete);
    let mut other = world.instance(Function::Delete);
    assert_eq!(deleter.delete_all().status, 204);
    // Two reclaimers on two clients at once, then runs until one finishes.
    let racing = thread::spawn(move || (other.reclaim(), other));
    let first = deleter.reclaim();
    let (second, _other) = racing.join().expect("the other reclaimer");
    assert!(first.get("error").is_none(), "{first}");
    assert!(second.get("error").is_none(), "{second}");
    let mut finished = false;
    for _ in 0..3 {
        let run = deleter.reclaim();
        assert!(run.get("error").is_none(), "{run}");
        if run["reclaimed"]["finished"] == true {
            finished = true;
            break;
        }
    }
    assert!(finished, "reclaiming never finished");
    let left: Vec<&String> = ids
        .iter()
        .filter(|id| {
            let id = MessageId::parse(id).unwrap();
            shared::MessageStore::new(world.backing())
                .message_path(id)
                .exists()
        })
        .collect();
    assert!(
        left.is_empty(),
        "{} condemned messages were never removed",
        left.len()
    );
}

pub fn a_delete_all_whose_lock_holder_froze_still_answers() {
    let mut world = World::new();
    let mut deleter = world.instance(Function::Delete);
    let mut poster = world.instance(Function::Post);
    let mut reader = world.instance(Function::Get);
    assert_eq!(deleter.delete_all().status, 204);
    let (_, id) = poster.post(b"to be deleted", "text/plain");
    // Another client's DELETE froze holding the cut-off file's lock (a frozen Lambda
    // environment keeps its NFS lock until its lease runs out).
    let frozen = world.client(&[]);
    let held = std::fs::File::open(world.dir(frozen).join("cutoff")).expect("the cut-off file");
    held.lock().expect("hold the lock");
    let started = Instant::now();
    let answer = deleter.delete_all();
    assert_eq!(answer.status, 204, "DELETE all behind a frozen lock holder");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(reader.get(&id.expect("an id")).status, 404);
    drop(held);
}
