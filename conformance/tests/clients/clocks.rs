//! Instances whose clocks are off: a DELETE of everything never hides a later acknowledged
//! POST and always answers within a second; a writer whose clock is off either refuses or
//! stores a message that behaves as if its clock were right.

use std::time::{Duration, Instant};

use crate::{
    instance::{Function, Instance, Options},
    world::World,
};

fn skewed(world: &mut World, function: Function, shift: &str) -> Instance {
    let options = Options {
        clock: Some(shift.to_owned()),
        ..Options::default()
    };
    world.instance_with(function, &[], &options)
}

fn timed_delete_all(deleter: &mut Instance, who: &str) {
    let started = Instant::now();
    assert_eq!(deleter.delete_all().status, 204, "{who}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "{who}: DELETE all took {took:?}"
    );
}

pub fn a_cut_off_never_hides_an_acknowledged_post_whatever_the_clocks() {
    let mut world = World::new();
    let mut reader = world.instance(Function::Get);
    let mut poster = world.instance(Function::Post);
    let mut on_time = world.instance(Function::Delete);
    let mut ahead = skewed(&mut world, Function::Delete, "+30");

    let (_, before) = poster.post(b"before", "text/plain");
    timed_delete_all(&mut ahead, "a deleter 30 s ahead");
    assert_eq!(reader.get(&before.expect("an id")).status, 404);
    let (status, after) = poster.post(b"after", "text/plain");
    assert_eq!(status, 201);
    let after = after.expect("an id");
    assert_eq!(
        reader.get(&after).status,
        200,
        "a POST after the DELETE is hidden"
    );
    assert!(reader.list("desc", None, 10).ids.contains(&after));
    timed_delete_all(&mut on_time, "the next DELETE all");
    assert_eq!(reader.get(&after).status, 404);

    // A writer 5 s behind: refused, or stored and visible; never acknowledged and hidden.
    let mut behind = skewed(&mut world, Function::Post, "-5");
    let (status, id) = behind.post(b"from the past", "text/plain");
    match status {
        201 => assert_eq!(
            reader.get(&id.expect("an id")).status,
            200,
            "201 but hidden"
        ),
        503 => {}
        other => panic!("a writer behind got {other}"),
    }
    // A writer 5 s ahead: refused, or stored and deleted by a DELETE that began after it.
    let mut early = skewed(&mut world, Function::Post, "+5");
    let (status, id) = early.post(b"from the future", "text/plain");
    match status {
        201 => {
            let id = id.expect("an id");
            timed_delete_all(&mut on_time, "a DELETE after a writer ahead");
            assert_eq!(
                reader.get(&id).status,
                404,
                "a POST completed before the DELETE survived"
            );
        }
        503 => {}
        other => panic!("a writer ahead got {other}"),
    }
    // And a writer on time still writes after all that.
    let (status, id) = poster.post(b"on time", "text/plain");
    assert_eq!(status, 201);
    assert_eq!(reader.get(&id.expect("an id")).status, 200);
}
