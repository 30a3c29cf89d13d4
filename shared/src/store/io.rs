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
/// items' order in the results. Stops at the first error.
///
/// The items are dealt into at most [`IO_CONCURRENCY`] runs of consecutive items, one blocking
/// task each: 100 reads make 64 tasks (36 of two, 28 of one), which take the same two round trips
/// as 100 tasks 64 at a time, for about a third fewer task switches (CPU is what a small Lambda
/// instance lacks).
pub(crate) async fn concurrently<I, T, E, F>(items: Vec<I>, work: F) -> Result<Vec<T>, StoreError>
where
    I: Send + 'static,
    T: Send + 'static,
    E: Into<StoreError> + Send + 'static,
    F: Fn(I) -> Result<T, E> + Send + Sync + 'static,
{
    let runs = deal(items, IO_CONCURRENCY);
    let work = Arc::new(work);
    let done: Vec<Vec<T>> = stream::iter(runs)
        .map(|run| {
            let work = Arc::clone(&work);
            blocking(move || {
                run.into_iter()
                    .map(|item| work(item))
                    .collect::<Result<Vec<T>, E>>()
            })
        })
        .buffered(IO_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(done.into_iter().flatten().collect())
}

/// Deals `items` into at most `tasks` runs of consecutive items, in order, differing in length
/// by at most one (longer ones first).
pub(crate) fn deal<I>(items: Vec<I>, tasks: usize) -> Vec<Vec<I>> {
    let total = items.len();
    let tasks = total.min(tasks.max(1));
    let mut runs = Vec::with_capacity(tasks);
    let mut items = items.into_iter();
    for task in 0..tasks {
        let len = total / tasks + usize::from(task < total % tasks);
        runs.push(items.by_ref().take(len).collect());
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_order_and_bounds_the_tasks() {
        for total in [0, 1, 63, 64, 65, 100, 1000] {
            let threads = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
            let seen = Arc::clone(&threads);
            let items: Vec<usize> = (0..total).collect();
            let out = concurrently(items, move |i: usize| {
                seen.lock().unwrap().insert(std::thread::current().id());
                Ok::<_, std::io::Error>(i * 2)
            })
            .await
            .unwrap();
            assert_eq!(out, (0..total).map(|i| i * 2).collect::<Vec<_>>());
            assert!(threads.lock().unwrap().len() <= IO_CONCURRENCY);
        }
    }

    #[test]
    fn deals_runs_in_order_of_nearly_equal_length() {
        let runs = deal((0..7).collect::<Vec<_>>(), 3);
        assert_eq!(runs, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
        assert_eq!(deal((0..2).collect::<Vec<_>>(), 64), vec![vec![0], vec![1]]);
        assert!(deal(Vec::<u8>::new(), 64).is_empty());
    }

    #[tokio::test]
    async fn stops_at_an_error() {
        let out = concurrently((0..200).collect(), |i: usize| {
            if i == 150 {
                Err(std::io::Error::other("boom"))
            } else {
                Ok(i)
            }
        })
        .await;
        assert!(matches!(out, Err(StoreError::Unavailable(_))));
    }
}
