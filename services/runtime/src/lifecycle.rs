//! The shutdown sequence: SIGTERM/SIGINT → readiness 503 (draining) → drain delay → stop accepting →
//! in-flight work finishes within the deadline → exit. A second signal ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    draining: watch::Sender<bool>,
    stop_accepting: watch::Sender<bool>,
    /// How many [`ExitHold`]s are alive.
    exit_holds: watch::Sender<usize>,
    signalled: AtomicBool,
}

/// Keeps the process alive after the HTTP server has stopped, until dropped (or the shutdown deadline fires).
/// The server's graceful shutdown only waits for requests; upgraded WebSockets are not requests, so work that
/// must reach them (the game server's reconnect notices) holds the exit instead.
pub struct ExitHold {
    holds: watch::Sender<usize>,
}

impl Drop for ExitHold {
    fn drop(&mut self) {
        self.holds
            .send_modify(|count| *count = count.saturating_sub(1));
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle {
            inner: Arc::new(Inner {
                draining: watch::channel(false).0,
                stop_accepting: watch::channel(false).0,
                exit_holds: watch::channel(0).0,
                signalled: AtomicBool::new(false),
            }),
        }
    }

    pub fn is_draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    /// Resolves when draining begins: services react here (the game server tells clients to reconnect).
    pub async fn draining(&self) {
        let mut receiver = self.inner.draining.subscribe();
        // An error means the sender is gone, which only happens at exit: treat it as draining.
        let _ = receiver.wait_for(|draining| *draining).await;
    }

    /// Resolves when the listener must stop accepting connections.
    pub async fn stop_accepting(&self) {
        let mut receiver = self.inner.stop_accepting.subscribe();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Taken before draining begins by work that must finish before exit; see [`ExitHold`].
    pub fn hold_exit(&self) -> ExitHold {
        self.inner.exit_holds.send_modify(|count| *count += 1);
        ExitHold {
            holds: self.inner.exit_holds.clone(),
        }
    }

    /// Resolves once every [`ExitHold`] is dropped.
    pub async fn exit_holds_released(&self) {
        let mut receiver = self.inner.exit_holds.subscribe();
        let _ = receiver.wait_for(|count| *count == 0).await;
    }

    pub fn begin_draining(&self) {
        self.inner.draining.send_replace(true);
    }

    pub fn stop_accepting_now(&self) {
        self.inner.stop_accepting.send_replace(true);
    }

    /// Runs the sequence once a signal arrives. Returns after the listener was told to stop.
    pub async fn on_signal(&self, drain_delay: Duration, shutdown_timeout: Duration, signal: &str) {
        if self.inner.signalled.swap(true, Ordering::SeqCst) {
            tracing::warn!(signal, "second shutdown signal: exiting now");
            std::process::exit(1);
        }
        tracing::info!(
            signal,
            drain_delay_ms = drain_delay.as_millis() as u64,
            "shutdown: readiness now reports draining"
        );
        self.begin_draining();
        tokio::time::sleep(drain_delay).await;
        tracing::info!(
            deadline_ms = shutdown_timeout.as_millis() as u64,
            "shutdown: no longer accepting; waiting for in-flight work"
        );
        start_deadline(shutdown_timeout);
        self.stop_accepting_now();
    }
}

/// Runs on an OS thread so that it fires even if the async runtime is stuck.
fn start_deadline(deadline: Duration) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(deadline);
            tracing::error!(
                deadline_ms = deadline.as_millis() as u64,
                "shutdown: in-flight work did not finish before the deadline; exiting"
            );
            std::process::exit(1);
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "cannot start the shutdown deadline thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exit_waits_for_every_hold() {
        let lifecycle = Lifecycle::new();
        let first = lifecycle.hold_exit();
        let second = lifecycle.hold_exit();
        let waiting = tokio::spawn({
            let lifecycle = lifecycle.clone();
            async move { lifecycle.exit_holds_released().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one hold is still alive");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released once the last hold is dropped")
            .expect("the waiting task did not panic");
    }

    #[tokio::test]
    async fn no_hold_means_no_wait() {
        tokio::time::timeout(
            Duration::from_secs(5),
            Lifecycle::new().exit_holds_released(),
        )
        .await
        .expect("nothing holds the exit");
    }
}
