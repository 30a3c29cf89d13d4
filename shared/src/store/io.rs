//! Running blocking file-system calls from async code, one or many at a time.
//!
//! On EFS every open, read, readdir and unlink is a network round trip, so work on many files
//! (a page of messages, reclaiming) keeps up to [`IO_CONCURRENCY`] calls in flight on tokio's
//! blocking pool instead of making them one after another.

use std::{io, sync::Arc};

use futures_util::{stream, StreamExt, TryStreamExt};

use super::StoreError;

/// How many file operations one request keeps in flight, and so the most blocking threads an
/// instance runs. EFS serves many parallel requests per client; 64 hides its per-operation
/// latency (a page of 100 messages takes two rounds) without flooding a small Lambda instance.
pub const IO_CONCURRENCY: usize = 64;

/// Runs blocking file-system work off the async worker threads.
pub(crate) async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    E: Into<StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(join) => Err(StoreError::Unavailable(io::Error::other(join))),
    }
}

/// Applies blocking `work` to every item with up to [`IO_CONCURRENCY`] in flight, keeping the
/// items' order in the results. Stops at the first error. A single item runs without a second
/// task's overhead.
pub(crate) async fn concurrently<I, T, E, F>(items: Vec<I>, work: F) -> Result<Vec<T>, StoreError>
where
    I: Send + 'static,
    T: Send + 'static,
    E: Into<StoreError> + Send + 'static,
    F: Fn(I) -> Result<T, E> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    stream::iter(items)
        .map(|item| {
            let work = Arc::clone(&work);
            blocking(move || work(item))
        })
        .buffered(IO_CONCURRENCY)
        .try_collect()
        .await
}
