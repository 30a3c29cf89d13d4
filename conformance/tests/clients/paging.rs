//! Following `next`: every acknowledged message exactly once, in order, while writers on other
//! clients, with clocks inside the bound and large bodies, are still posting.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use shared::store::SETTLE;

use crate::{
    instance::{Function, Options},
    world::World,
};

/// How long writers post, and the most the reader may take to catch up with them.
const POSTING: Duration = Duration::from_secs(4);
const CATCHING_UP: Duration = Duration::from_secs(60);

pub fn a_tailing_reader_sees_every_acknowledged_post_exactly_once() {
    let mut world = World::new();
    let mut tailer = world.instance(Function::Get);
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // Two writers on clients of their own: one on time, one 80 ms behind (inside the 100 ms
    // bound clocks may be off); every fifth body is 128 KiB, so that publishing takes a while.
    let writers: Vec<_> = [None, Some("-0.08".to_owned())]
        .into_iter()
        .map(|clock| {
            let mut writer = world.instance_with(
                Function::Post,
                &[],
                &Options {
                    clock,
                    ..Options::default()
                },
            );
            let acknowledged = Arc::clone(&acknowledged);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let body = if n.is_multiple_of(5) {
                        vec![b'x'; 128 * 1024]
                    } else {
                        b"hello".to_vec()
                    };
                    let (status, id) = writer.post(&body, "text/plain");
                    assert_eq!(status, 201, "a POST failed");
                    acknowledged.lock().unwrap().insert(id.expect("an id"));
                    n += 1;
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut writers = Some(writers);
    // When the last POST was acknowledged: the reader has seen everything once an empty page
    // comes back more than the settle horizon after that.
    let mut all_posted: Option<u64> = None;
    // When each page was asked for, and what it returned: to say which page passed a miss.
    let mut history: Vec<(u64, Vec<String>)> = Vec::new();
    loop {
        let fetched = crate::world::now_millis();
        let page = tailer.list("asc", after.as_deref(), 100);
        assert_eq!(page.status, 200);
        history.push((fetched, page.ids.clone()));
        if page.ids.is_empty()
            && all_posted.is_some_and(|at| fetched > at + SETTLE.as_millis() as u64 + 250)
        {
            break;
        }
        seen.extend(page.ids.iter().cloned());
        // Follow `next`; on the last page, keep the last id seen as the cursor and ask again.
        after = page.next.or_else(|| seen.last().cloned());
        if all_posted.is_none() && started.elapsed() > POSTING {
            stop.store(true, Ordering::Relaxed);
            for writer in writers.take().into_iter().flatten() {
                writer.join().expect("a writer failed");
            }
            all_posted = Some(crate::world::now_millis());
        }
        assert!(
            started.elapsed() < CATCHING_UP,
            "the reader never caught up"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a message was returned twice");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "not in id order");
    let acknowledged = acknowledged.lock().unwrap();
    let missed: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !unique.contains(id))
        .collect();
    assert!(
        acknowledged.len() > 50,
        "too few posts to show anything: {}",
        acknowledged.len()
    );
    let passed_by = missed.iter().min().and_then(|first| {
        let ms = shared::MessageId::parse(first).ok()?.unix_millis();
        let (fetched, _) = history
            .iter()
            .find(|(_, ids)| ids.iter().any(|id| id > *first))?;
        Some(format!(
            "; the first, {first}, was passed by a page asked for {} ms after its id's time",
            *fetched as i64 - ms as i64
        ))
    });
    assert!(
        missed.is_empty(),
        "{} of {} acknowledged posts never reached the tailing reader{}",
        missed.len(),
        acknowledged.len(),
        passed_by.unwrap_or_default()
    );
    assert_eq!(
        seen.len(),
        acknowledged.len(),
        "the reader saw messages nobody acknowledged"
    );
}
