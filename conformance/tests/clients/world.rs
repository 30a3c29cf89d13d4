//! One store on one "server" (a backing directory) and its clients (mounts of the EFS client
//! model), with the instances that run on them.

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use efs_model::Mount;
use shared::{format, MessageId, MessageStore};

use crate::instance::{Function, Instance, Options};

/// The client model's settings for the suite: the NFS client's rules with short attribute
/// timeouts (a directory's attributes, and so its "no such name" answers, are trusted for 5 to
/// 10 s, longer than any scenario step), and small latencies so that requests overlap as on EFS
/// without making the suite slow.
pub const CLIENT: [&str; 15] = [
    "--nfs-cache",
    "--acregmin",
    "2",
    "--acregmax",
    "10",
    "--acdirmin",
    "5",
    "--acdirmax",
    "10",
    "--meta-us",
    "200",
    "--read-us",
    "50",
    "--write-us",
    "500",
];

/// The backing directory (the EFS file system seen from the server) and its clients.
pub struct World {
    backing: tempfile::TempDir,
    clients: Vec<Mount>,
}

impl World {
    pub fn new() -> Self {
        Self {
            backing: tempfile::tempdir().expect("backing directory"),
            clients: Vec::new(),
        }
    }

    /// A new client (one Lambda execution environment's NFS mount), with `extra` options.
    pub fn client(&mut self, extra: &[&str]) -> usize {
        let mut options = CLIENT.to_vec();
        options.extend_from_slice(extra);
        let mount = Mount::new(self.backing.path(), &options).expect("mount the client model");
        self.clients.push(mount);
        self.clients.len() - 1
    }

    /// The messages directory as client `client` sees it.
    pub fn dir(&self, client: usize) -> &Path {
        self.clients[client].path()
    }

    /// The client's mount, for its counters.
    pub fn mount(&self, client: usize) -> &Mount {
        &self.clients[client]
    }

    /// An instance of `function` on a client of its own.
    pub fn instance(&mut self, function: Function) -> Instance {
        self.instance_with(function, &[], &Options::default())
    }

    /// An instance of `function` on a client of its own, with client options and process options.
    pub fn instance_with(
        &mut self,
        function: Function,
        client: &[&str],
        options: &Options,
    ) -> Instance {
        let client = self.client(client);
        Instance::start(function, self.dir(client), options)
    }

    /// The store's directory on the server's side.
    pub fn backing(&self) -> &Path {
        self.backing.path()
    }

    /// Writes a message straight into the server's directory, as a seeding tool does: for
    /// histories a POST (which stamps ids with the current time) cannot make.
    pub fn seed(&self, id: MessageId, body: &[u8]) -> String {
        let path = MessageStore::new(self.backing()).message_path(id);
        std::fs::create_dir_all(path.parent().expect("a leaf")).expect("seed directories");
        std::fs::write(&path, format::encode("text/plain", body)).expect("seed a message");
        id.to_string()
    }

    /// Every directory under the store on the server's side.
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.backing().to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("list").flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    found.push(entry.path());
                    pending.push(entry.path());
                }
            }
        }
        found
    }
}

/// The wall clock now, in Unix milliseconds (the orchestrator's clock is the server's).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
