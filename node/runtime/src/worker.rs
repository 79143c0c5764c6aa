//! A component loop under supervision.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::retry::Backoff;
use crate::TaskCenter;

/// What a supervised loop is doing, for whoever shows component states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerState {
    Running,
    /// The loop failed and starts again after a pause.
    Restarting(String),
    /// The loop returned on its own (shutdown, or nothing left to do).
    Stopped,
}

/// Runs a loop as a tracked task: a loop that fails is logged, reported as
/// restarting and started again after a growing pause (0.5 s doubling to
/// 30 s); a loop that returns Ok is done. Shutdown ends the pause at once.
pub struct Worker {
    name: Cow<'static, str>,
    first_pause: Duration,
    max_pause: Duration,
}

impl Worker {
    pub fn new(name: impl Into<Cow<'static, str>>) -> Worker {
        Worker {
            name: name.into(),
            first_pause: Duration::from_millis(500),
            max_pause: Duration::from_secs(30),
        }
    }

    /// Shorter pauses, for tests.
    pub fn pauses(mut self, first: Duration, max: Duration) -> Worker {
        self.first_pause = first;
        self.max_pause = max;
        self
    }

    /// Starts the loop; `observe` hears every state change.
    pub fn start<F, Fut, O>(self, tasks: &TaskCenter, mut run: F, observe: O)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
        O: Fn(WorkerState) + Send + Sync + 'static,
    {
        let observe = Arc::new(observe);
        let tc = tasks.clone();
        let name = self.name.clone();
        tasks.spawn(self.name.clone(), async move {
            let mut backoff = Backoff::new(self.first_pause, self.max_pause, 2.0, 0.0);
            loop {
                observe(WorkerState::Running);
                match run().await {
                    Ok(()) => {
                        observe(WorkerState::Stopped);
                        return;
                    }
                    Err(e) => {
                        let pause = backoff.next_delay();
                        tracing::error!(component = %name, "failed, restarting in {pause:?}: {e:#}");
                        observe(WorkerState::Restarting(format!("{e:#}")));
                        tokio::select! {
                            _ = tc.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    #[tokio::test]
    async fn restarts_until_success_then_stops() {
        let tc = TaskCenter::new();
        let runs = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(Mutex::new(vec![]));
        let (r, s) = (runs.clone(), seen.clone());
        Worker::new("flaky")
            .pauses(Duration::from_millis(1), Duration::from_millis(5))
            .start(
                &tc,
                move || {
                    let n = r.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 2 {
                            anyhow::bail!("attempt {n} failed")
                        }
                        Ok(())
                    }
                },
                move |st| s.lock().unwrap().push(st),
            );
        for _ in 0..200 {
            if seen.lock().unwrap().last() == Some(&WorkerState::Stopped) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                WorkerState::Running,
                WorkerState::Restarting("attempt 0 failed".into()),
                WorkerState::Running,
                WorkerState::Restarting("attempt 1 failed".into()),
                WorkerState::Running,
                WorkerState::Stopped,
            ]
        );
        assert!(tc.running().is_empty());
    }

    #[tokio::test]
    async fn shutdown_ends_the_pause_between_restarts() {
        let tc = TaskCenter::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        Worker::new("always-failing")
            .pauses(Duration::from_secs(3600), Duration::from_secs(3600))
            .start(
                &tc,
                || async { anyhow::bail!("no") },
                move |s| {
                    let _ = tx.send(s);
                },
            );
        // Wait until it is in its hour-long pause.
        loop {
            let s = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("the worker reports its states")
                .expect("the observer lives");
            if matches!(s, WorkerState::Restarting(_)) {
                break;
            }
        }
        assert_eq!(tc.running(), vec!["always-failing"]);
        assert!(tc.shutdown(Duration::from_secs(2)).await.is_empty());
    }
}
