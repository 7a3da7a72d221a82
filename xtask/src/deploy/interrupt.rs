//! SIGINT/SIGTERM and a lost lease stop a command that changes the target at its next safe point, never
//! in the middle of an edge swap, and never with the lock left behind.
//!
//! The signal handler only counts: the command polls [`checkpoint`] between steps and inside its waits
//! ([`sleep`], [`wait_for`]), so no step holds an interrupt back for more than a fraction of a second
//! (an edge swap, which is atomic and verified, runs to its end). The command then cleans up — the edge
//! back on the last verified route, what this run started stopped, `interrupted` in the ledger — during
//! which further interrupts are reported and otherwise ignored: obeying them would leave exactly the
//! half-done state the clean-up exists to avoid. SIGKILL cannot be caught; the next command sees a stale
//! lock and an unverified route, and `status`, `deploy --resume` and `rollback` deal with that.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::lock::Holding;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static CLEANING: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// How often waits look at the interrupt and the lease.
const POLL: Duration = Duration::from_millis(100);
/// How often a stopped wait's work is kicked again (a container created after the last kick).
const KICK_EVERY: Duration = Duration::from_secs(2);

/// Why a command stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT or SIGTERM: clean up, then exit non-zero.
    Interrupted,
    /// The lease ran out or the lock was broken: change nothing more.
    LeaseLost(String),
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interrupted => write!(f, "interrupted (SIGINT/SIGTERM)"),
            Self::LeaseLost(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for Stopped {}

/// Installs the handler once per process. Until a command calls this, SIGINT ends it the usual way.
pub fn install() -> anyhow::Result<()> {
    let installed = INSTALLED.get_or_init(|| {
        ctrlc::set_handler(|| {
            let count = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
            if CLEANING.load(Ordering::SeqCst) {
                eprintln!(
                    "\ninterrupt #{count} ignored: putting the edge back on the last verified route and \
                     recording the interruption first (SIGKILL abandons that: the next command then finds \
                     a stale lock and an unverified route)"
                );
            } else if count == 1 {
                eprintln!("\ninterrupt: stopping at the next safe point, then cleaning up");
            } else {
                eprintln!("\ninterrupt #{count}: already stopping at the next safe point");
            }
        })
        .map_err(|err| err.to_string())
    });
    installed
        .clone()
        .map_err(|err| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {err}"))
}

/// Whether SIGINT/SIGTERM arrived (and is being obeyed: not during a clean-up).
pub fn requested() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0 && !CLEANING.load(Ordering::SeqCst)
}

/// From here on interrupts are reported, not obeyed; a lost lease still stops everything.
pub fn begin_cleanup() {
    CLEANING.store(true, Ordering::SeqCst);
}

/// A safe point: Err when the command must stop here.
pub fn checkpoint(holding: &Holding) -> Result<(), Stopped> {
    if let Some(why) = holding.lost() {
        return Err(Stopped::LeaseLost(why));
    }
    if requested() {
        return Err(Stopped::Interrupted);
    }
    Ok(())
}

/// `std::thread::sleep` that wakes for an interrupt or a lost lease.
pub fn sleep(duration: Duration, holding: &Holding) -> Result<(), Stopped> {
    let until = Instant::now() + duration;
    loop {
        checkpoint(holding)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(POLL));
    }
}

/// Runs `work` on its own thread and waits for it, looking at the interrupt and the lease meanwhile. On an
/// interrupt, `kick` runs (it makes `work` return soon: stopping the containers a `compose up --wait`
/// waits for), every [`KICK_EVERY`] until `work` has returned, so nothing it does outlives the clean-up.
/// On a lost lease nothing is kicked — another holder may own those containers by now — and `work` is
/// only waited for.
pub fn wait_for<T: Send>(
    holding: &Holding,
    work: impl FnOnce() -> T + Send,
    mut kick: impl FnMut(),
) -> Result<T, (Stopped, T)> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(work);
        let stopped = loop {
            if worker.is_finished() {
                break None;
            }
            if let Err(stopped) = checkpoint(holding) {
                break Some(stopped);
            }
            std::thread::sleep(POLL);
        };
        if matches!(stopped, Some(Stopped::Interrupted)) {
            let mut kicked: Option<Instant> = None;
            while !worker.is_finished() {
                if kicked.is_none_or(|at| at.elapsed() >= KICK_EVERY) {
                    kick();
                    kicked = Some(Instant::now());
                }
                std::thread::sleep(POLL);
            }
        }
        let result = match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match stopped {
            None => Ok(result),
            Some(stopped) => Err((stopped, result)),
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::deploy::lock::{Held, LeaseClock};

    fn held(clock: Arc<LeaseClock>) -> Holding {
        let holding = Holding::default();
        holding.set_for_tests(Held {
            container: "lock".to_owned(),
            fence: Some(3),
            clock,
        });
        holding
    }

    #[test]
    fn a_lost_lease_wakes_a_sleep_and_a_wait() {
        let clock = Arc::new(LeaseClock::new(Duration::from_secs(60)));
        let holding = held(clock.clone());
        let started = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(150));
                clock.lose("the lock container was removed".to_owned());
            });
            let stopped = sleep(Duration::from_secs(30), &holding).unwrap_err();
            assert!(matches!(stopped, Stopped::LeaseLost(why) if why.contains("removed")));
        });
        assert!(started.elapsed() < Duration::from_secs(2));

        // A lost lease is noticed while the work runs, but nothing is kicked: the containers the work
        // waits for may belong to the holder that took over. The work is waited for to its own end.
        let kicked = AtomicBool::new(false);
        let stopped = wait_for(
            &holding,
            || {
                std::thread::sleep(Duration::from_millis(300));
                "work returned by itself"
            },
            || kicked.store(true, Ordering::SeqCst),
        )
        .unwrap_err();
        assert!(matches!(stopped.0, Stopped::LeaseLost(_)));
        assert_eq!(stopped.1, "work returned by itself");
        assert!(
            !kicked.load(Ordering::SeqCst),
            "a lost lease kicked the work"
        );
    }

    #[test]
    fn work_that_finishes_is_returned() {
        let holding = Holding::default();
        assert_eq!(wait_for(&holding, || 7, || ()).unwrap(), 7);
        assert!(sleep(Duration::from_millis(20), &holding).is_ok());
    }
}
