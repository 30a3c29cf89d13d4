//! A POST that fails leaves no message behind: what a client was told was not stored is never
//! listed or read, by any instance, then or later (it would come back as a duplicate when the
//! client retries).

use std::collections::BTreeMap;

use shared::{MessageStore, Order};

use crate::{
    instance::{Function, Instance},
    world::World,
};

/// Posts `count` messages with distinct bodies; returns each body with the status it got.
fn post_distinct(poster: &mut Instance, tag: &str, count: usize) -> BTreeMap<String, i64> {
    (0..count)
        .map(|n| {
            let body = format!("{tag} {n}");
            let (status, _) = poster.post(body.as_bytes(), "text/plain");
            (body, status)
        })
        .collect()
}

/// Every message on the server's side, by body (read without any client cache).
fn stored_bodies(world: &World) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let page = runtime
        .block_on(MessageStore::new(world.backing()).list(Order::Desc, None, 1000))
        .expect("the server's side lists");
    page.messages
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

/// Stored exactly when answered `201`.
fn assert_stored_iff_created(answers: &BTreeMap<String, i64>, stored: &[String]) {
    for body in stored {
        assert_eq!(
            answers.get(body),
            Some(&201),
            "{body:?} is stored, but its POST was answered {:?}",
            answers.get(body)
        );
    }
    for (body, status) in answers {
        if *status == 201 {
            assert!(
                stored.contains(body),
                "{body:?} was answered 201, not stored"
            );
        }
    }
}

pub fn a_post_that_could_not_read_the_cut_off_stores_nothing() {
    let mut world = World::new();
    // A client that fails a third of its opens (the cut-off's among them) and every remove: a
    // POST that cannot check the cut-off must not have published, as it cannot take it back.
    let faults = ["--faults", "eio:0.3:open,eio:1.0:remove", "--seed", "5"];
    let mut poster = world.instance_with(Function::Post, &faults, &Default::default());
    let answers = post_distinct(&mut poster, "checked", 60);
    let failed = answers.values().filter(|s| **s != 201).count();
    assert!(failed > 0, "no POST failed: the test proved nothing");
    assert!(
        failed < answers.len(),
        "every POST failed: the test proved little"
    );
    assert_stored_iff_created(&answers, &stored_bodies(&world));
}

pub fn a_post_too_slow_to_publish_takes_its_message_back() {
    let mut world = World::new();
    // Every rename takes longer than the publish deadline, and half of the removes fail: each
    // POST is refused, and each must take its message back, however many tries that needs.
    let faults = [
        "--faults",
        "spike=1100:1.0:rename,eio:0.5:remove",
        "--seed",
        "7",
    ];
    let mut poster = world.instance_with(Function::Post, &faults, &Default::default());
    let answers = post_distinct(&mut poster, "slow", 8);
    assert!(
        answers.values().all(|s| *s == 503),
        "a POST past its deadline was not refused: {answers:?}"
    );
    assert_stored_iff_created(&answers, &stored_bodies(&world));
}
