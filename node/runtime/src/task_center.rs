//! The task centre: the only place a node spawns tasks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// Every task of a node: tracked (shutdown waits for it), named (shutdown
/// says which did not stop), and told to stop through one token.
#[derive(Clone)]
pub struct TaskCenter {
    inner: Arc<Inner>,
}

struct Inner {
    tracker: TaskTracker,
    cancel: CancellationToken,
    next_id: AtomicU64,
    running: Mutex<BTreeMap<u64, Cow<'static, str>>>,
}

/// Removes a task's name when the task ends, however it ends.
struct Registration {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inner
            .running
            .lock()
            .expect("task names lock")
            .remove(&self.id);
    }
}

impl Default for TaskCenter {
    fn default() -> Self {
        TaskCenter::new()
    }
}

impl TaskCenter {
    pub fn new() -> TaskCenter {
        TaskCenter {
            inner: Arc::new(Inner {
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                next_id: AtomicU64::new(0),
                running: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Runs `fut` as a tracked task called `name`. The task should watch
    /// [`TaskCenter::cancelled`]; shutdown waits for it (with a bound).
    pub fn spawn<F>(&self, name: impl Into<Cow<'static, str>>, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .running
            .lock()
            .expect("task names lock")
            .insert(id, name.into());
        let reg = Registration {
            inner: self.inner.clone(),
            id,
        };
        self.inner.tracker.spawn(async move {
            let _reg = reg;
            fut.await
        })
    }

    /// Runs `fut` as a tracked task that is dropped at shutdown if it has
    /// not finished (for tasks with no loop of their own to watch the token:
    /// a delayed wake-up, a background refill).
    pub fn spawn_until_shutdown<F>(&self, name: impl Into<Cow<'static, str>>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.inner.cancel.clone();
        self.spawn(name, async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = fut => {}
            }
        });
    }

    /// Runs `fut` to completion as a tracked task even if the caller stops
    /// waiting (a gRPC handler whose client went away is dropped; the change
    /// it started must not be cut between its durable write and the wake-up
    /// that acts on it).
    pub async fn run_detached<T, F>(&self, name: &'static str, fut: F) -> Result<T, String>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(name, fut)
            .await
            .map_err(|e| format!("the {name} task failed: {e}"))
    }

    /// Resolves when shutdown begins.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.inner.cancel.cancelled()
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// The token shutdown cancels, for code that must own one (a server's
    /// graceful-shutdown signal, a stream that ends with the node).
    pub fn token(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    /// Names of the tasks still running, sorted.
    pub fn running(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .running
            .lock()
            .expect("task names lock")
            .values()
            .map(|n| n.to_string())
            .collect();
        v.sort();
        v
    }

    /// Cancels every task and waits up to `grace` for them to end. Returns
    /// the names of those that did not (empty: a clean stop).
    pub async fn shutdown(&self, grace: Duration) -> Vec<String> {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_ok()
        {
            return vec![];
        }
        self.running()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_tasks_that_watch_the_token() {
        let tc = TaskCenter::new();
        let done = Arc::new(AtomicU64::new(0));
        for i in 0..3 {
            let (tc2, done) = (tc.clone(), done.clone());
            tc.spawn(format!("loop-{i}"), async move {
                tc2.cancelled().await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(tc.running(), vec!["loop-0", "loop-1", "loop-2"]);
        assert!(tc.shutdown(Duration::from_secs(5)).await.is_empty());
        assert_eq!(done.load(Ordering::SeqCst), 3);
        assert!(tc.running().is_empty());
    }

    #[tokio::test]
    async fn shutdown_names_the_tasks_that_did_not_stop() {
        let tc = TaskCenter::new();
        tc.spawn("stubborn", async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        tc.spawn("polite", {
            let tc = tc.clone();
            async move { tc.cancelled().await }
        });
        let left = tc.shutdown(Duration::from_millis(100)).await;
        assert_eq!(left, vec!["stubborn"]);
    }

    #[tokio::test]
    async fn until_shutdown_tasks_are_dropped_at_shutdown() {
        let tc = TaskCenter::new();
        tc.spawn_until_shutdown("sleeper", async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        assert!(tc.shutdown(Duration::from_secs(5)).await.is_empty());
    }

    #[tokio::test]
    async fn detached_work_finishes_when_the_caller_gives_up() {
        let tc = TaskCenter::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let call = tc.run_detached("change", async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = done_tx.send(());
        });
        // The caller stops waiting almost at once...
        let _ = tokio::time::timeout(Duration::from_millis(1), call).await;
        // ...and the work still completes.
        tokio::time::timeout(Duration::from_secs(5), done_rx)
            .await
            .expect("the detached work finished")
            .expect("it ran to its end");
    }

    #[tokio::test]
    async fn a_panicking_detached_task_is_an_error_not_a_crash() {
        let tc = TaskCenter::new();
        let r: Result<(), String> = tc.run_detached("bad", async { panic!("boom") }).await;
        assert!(r.unwrap_err().contains("bad"));
        assert!(tc.running().is_empty());
    }
}
