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
    signalled: AtomicBool,
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
