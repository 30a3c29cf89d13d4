//! Files a listing cannot decode cost one message, never the listing.

use std::os::unix::fs::symlink;

use shared::{MessageId, MessageStore};

use crate::{instance::Function, world::World};

pub fn an_undecodable_file_costs_one_message_not_the_listing() {
    let mut world = World::new();
    let mut poster = world.instance(Function::Post);
    let mut reader = world.instance(Function::Get);
    let posted: Vec<String> = (0..5)
        .map(|n| {
            poster
                .post(format!("good {n}").as_bytes(), "text/plain")
                .1
                .expect("an id")
        })
        .collect();
    // Beside the first one, on the server's side: damaged bytes, a message in a newer format, a
    // directory and a link named like messages.
    let first = MessageId::parse(&posted[0]).unwrap();
    let store = MessageStore::new(world.backing());
    let beside = |_: u64| MessageId::at_millis(first.unix_millis());
    let damaged = beside(0);
    std::fs::write(store.message_path(damaged), b"not a message").unwrap();
    let newer = beside(1);
    std::fs::write(
        store.message_path(newer),
        b"EFSM\x09\x00\x0atext/plain future",
    )
    .unwrap();
    let directory = beside(0);
    std::fs::create_dir(store.message_path(directory)).unwrap();
    let link = beside(1);
    symlink("/etc/passwd", store.message_path(link)).unwrap();

    let ids = |order: &str, reader: &mut crate::instance::Instance| {
        let page = reader.list(order, None, 100);
        assert_eq!(page.status, 200, "{order}: one bad file failed the page");
        page.ids
    };
    let mut newest_first = posted.clone();
    newest_first.reverse();
    assert_eq!(ids("desc", &mut reader), newest_first);
    // Oldest first lists them once they settled.
    std::thread::sleep(shared::store::SETTLE + std::time::Duration::from_millis(100));
    assert_eq!(ids("asc", &mut reader), posted);
    for bad in [damaged, newer] {
        let answer = reader.get(&bad.to_string());
        assert_eq!(answer.status, 500, "a file that is not a message");
        assert_eq!(answer.json()["error"]["code"], "internal_error");
    }
    let answer = reader.get(&link.to_string());
    assert_ne!(
        answer.status, 200,
        "a link named like a message is followed"
    );
    assert!(!String::from_utf8_lossy(&answer.body).contains("root:"));
}

pub fn a_stale_answer_is_confirmed_never_believed() {
    let mut world = World::new();
    let mut poster = world.instance(Function::Post);
    let posted: Vec<String> = (0..20)
        .map(|n| {
            let (status, id) = poster.post(format!("live {n}").as_bytes(), "text/plain");
            assert_eq!(status, 201);
            id.expect("an id")
        })
        .collect();
    // A reader whose client gets ESTALE for a third of its look-ups, opens and listings, where
    // nothing is gone: every answer must be right, or a 503; never "not found" for a live message
    // and never a page without one.
    let faults = [
        "--faults",
        "estale:0.3:lookup+open+getattr+readdir+read",
        "--seed",
        "11",
    ];
    let mut reader = world.instance_with(Function::Get, &faults, &Default::default());
    let (mut right, mut unavailable) = (0, 0);
    for id in &posted {
        for _ in 0..3 {
            match reader.get(id).status {
                200 => right += 1,
                503 => unavailable += 1,
                other => panic!("{id}: {other} for a live message"),
            }
        }
    }
    let mut newest_first = posted.clone();
    newest_first.reverse();
    for _ in 0..20 {
        let page = reader.list("desc", None, 100);
        match page.status {
            200 => {
                assert_eq!(page.ids, newest_first, "a page without live messages");
                right += 1;
            }
            503 => unavailable += 1,
            other => panic!("a page answered {other}"),
        }
    }
    assert!(
        right > 10,
        "{right} right answers, {unavailable} 503s: the test proved little"
    );
    assert!(
        unavailable > 0,
        "no fault reached the store: the test proved nothing"
    );
}
