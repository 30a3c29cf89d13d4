//! The kernel's inode numbers for the server's objects.

use std::collections::HashMap;

use fuser::INodeNo;

use crate::server::Handle;

/// The kernel's inode numbers for the server's objects, with the kernel's reference counts.
pub(super) struct Inodes {
    by_ino: HashMap<u64, (Handle, u64)>,
    by_handle: HashMap<Handle, u64>,
    next: u64,
}

impl Inodes {
    pub(super) fn new(root: &Handle) -> Self {
        let mut inodes = Self {
            by_ino: HashMap::new(),
            by_handle: HashMap::new(),
            next: 2,
        };
        inodes.by_ino.insert(1, (root.clone(), 1));
        inodes.by_handle.insert(root.clone(), 1);
        inodes
    }

    /// The inode number of `handle`, counting one more kernel reference to it.
    pub(super) fn reference(&mut self, handle: &Handle) -> u64 {
        if let Some(&ino) = self.by_handle.get(handle) {
            if let Some(entry) = self.by_ino.get_mut(&ino) {
                entry.1 += 1;
            }
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_ino.insert(ino, (handle.clone(), 1));
        self.by_handle.insert(handle.clone(), ino);
        ino
    }

    pub(super) fn handle(&self, ino: INodeNo) -> Option<Handle> {
        self.by_ino.get(&ino.0).map(|(handle, _)| handle.clone())
    }

    pub(super) fn forget(&mut self, ino: u64, n: u64) {
        if ino == 1 {
            return;
        }
        if let Some(entry) = self.by_ino.get_mut(&ino) {
            entry.1 = entry.1.saturating_sub(n);
            if entry.1 == 0 {
                let (handle, _) = entry.clone();
                self.by_ino.remove(&ino);
                self.by_handle.remove(&handle);
            }
        }
    }
}
