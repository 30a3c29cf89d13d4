//! Lambda's limits: 1,024 open files, 6 MB per response, the function's memory, whatever the
//! store holds.

use std::path::PathBuf;

use shared::{format, MessageId, MessageStore};

use crate::{
    instance::{Function, Instance, Options},
    world::{now_millis, World},
};

/// Lambda's synchronous response limit.
const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

pub fn a_page_of_1000_from_a_sparse_store_fits_lambdas_open_file_limit() {
    let mut world = World::new();
    let start = now_millis() - 3_600_000;
    // One message every 300 ms: each in a leaf directory of its own.
    for i in 0..1100 {
        world.seed(MessageId::at_millis(start + i * 300), b"sparse");
    }
    let options = Options {
        max_files: Some(1024),
        ..Options::default()
    };
    let mut reader = world.instance_with(Function::Get, &[], &options);
    for order in ["asc", "desc"] {
        let page = reader.list(order, None, 1000);
        assert_eq!(page.status, 200, "{order}: a page of 1,000 failed");
        assert_eq!(page.ids.len(), 1000, "{order}");
        assert!(page.next.is_some());
    }
    let open = reader.open_files();
    assert!(open < 512, "{open} files open after the pages");
}

pub fn a_page_stays_within_lambdas_response_limit() {
    let mut world = World::new();
    let mut poster = world.instance(Function::Post);
    let mut reader = world.instance(Function::Get);
    // 256 KiB of control characters is valid UTF-8, six times larger once JSON-escaped.
    let heavy = vec![1u8; 256 * 1024];
    let mut posted = Vec::new();
    for n in 0..8 {
        let body = if (2..6).contains(&n) {
            heavy.clone()
        } else {
            b"light".to_vec()
        };
        let (status, id) = poster.post(&body, "text/plain");
        assert_eq!(status, 201);
        posted.push(id.expect("an id"));
    }
    // Newest first: an oldest-first page would wait for the messages to settle.
    posted.reverse();
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        pages += 1;
        let page = reader.list("desc", after.as_deref(), 100);
        assert_eq!(page.status, 200);
        assert!(
            page.encoded <= RESPONSE_LIMIT,
            "a response of {} bytes",
            page.encoded
        );
        assert!(
            !page.ids.is_empty(),
            "a page must carry at least one message"
        );
        seen.extend(page.ids.iter().cloned());
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, posted, "every message once, in order");
    assert!(
        pages > 1,
        "four heavy messages must not fit in one response"
    );
    assert!(
        pages > 1,
        "four heavy messages must not fit in one response"
    );
}

/// A cgroup v1 memory group of `bytes`, removed when dropped.
struct MemoryGroup(PathBuf);

impl MemoryGroup {
    fn new(bytes: u64) -> Option<Self> {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/efs-clients-{}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).ok()?;
        let group = Self(dir);
        std::fs::write(group.0.join("memory.limit_in_bytes"), bytes.to_string()).ok()?;
        // No swap: over the limit is over the limit.
        let _ = std::fs::write(
            group.0.join("memory.memsw.limit_in_bytes"),
            bytes.to_string(),
        );
        Some(group)
    }

    fn procs(&self) -> PathBuf {
        self.0.join("cgroup.procs")
    }

    fn peak(&self) -> u64 {
        std::fs::read_to_string(self.0.join("memory.max_usage_in_bytes"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

pub fn a_page_of_large_messages_stays_within_the_functions_memory() {
    let mut world = World::new();
    let start = now_millis() - 3_600_000;
    let body = vec![1u8; 256 * 1024];
    let store = MessageStore::new(world.backing());
    for i in 0..100 {
        let path = store.message_path(MessageId::at_millis(start + i * 1000));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format::encode("text/plain", &body)).unwrap();
    }
    // get-messages is deployed with 256 MB.
    let Some(group) = MemoryGroup::new(256 << 20) else {
        return test_support::harness::skip("no cgroup v1 memory controller here");
    };
    let client = world.client(&[]);
    let options = Options {
        cgroup_procs: Some(group.procs()),
        ..Options::default()
    };
    let mut reader = Instance::start(Function::Get, world.dir(client), &options);
    let mut seen = 0;
    let mut after: Option<String> = None;
    loop {
        let page = reader.list("asc", after.as_deref(), 100);
        assert_eq!(page.status, 200);
        seen += page.ids.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, 100);
    println!(
        "    peak memory of the instance: {} MiB",
        group.peak() >> 20
    );
    drop(reader);
}
