//! Helpers for the store's own tests.

use std::path::{Path, PathBuf};

use shared::{format, MessageId, MessageStore};

/// Every file below `dir` (the store's time directories included), sorted by name.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// The names of [`files_under`].
pub fn names_under(dir: &Path) -> Vec<String> {
    files_under(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Writes a message file for `id` straight into the store's directory, as a seeding tool does:
/// for histories that `publish` (which stamps ids with the current time) cannot make.
#[allow(dead_code)]
pub fn seed(store: &MessageStore, id: MessageId, body: &[u8]) -> MessageId {
    let path = store.message_path(id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format::encode("text/plain", body)).unwrap();
    id
}
