//! Aborts the process when the async runtime stops making progress, so that the container's restart policy
//! replaces a hung process, not only a crashed one. The check runs on a plain OS thread: a stalled runtime
//! cannot be trusted to notice its own stall.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Starts the heartbeat task on `runtime` and the checking thread.
pub fn start(runtime: &tokio::runtime::Handle, timeout: Duration) -> std::io::Result<()> {
    let origin = Instant::now();
    let last_beat_ms = Arc::new(AtomicU64::new(0));
    let period = (timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));

    let beat = Arc::clone(&last_beat_ms);
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            beat.store(elapsed_ms(origin), Ordering::Relaxed);
        }
    });

    std::thread::Builder::new().name("watchdog".into()).spawn(move || {
        loop {
            std::thread::sleep(period);
            let silent_for = Duration::from_millis(
                elapsed_ms(origin).saturating_sub(last_beat_ms.load(Ordering::Relaxed)),
            );
            if silent_for > timeout {
                // stderr directly: the logging pipeline may be what is stuck.
                eprintln!(
                    "{{\"level\":\"ERROR\",\"target\":\"watchdog\",\"message\":\"async runtime stalled; aborting so the restart policy replaces this process\",\"stalled_ms\":{},\"timeout_ms\":{}}}",
                    silent_for.as_millis(),
                    timeout.as_millis()
                );
                std::process::abort();
            }
        }
    })?;
    Ok(())
}

fn elapsed_ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}
