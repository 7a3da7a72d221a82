//! The holder's checks on a Swarm: before every mutating docker call and on every poll of a wait, a command
//! under the deploy lock stops when its lease is lost (another operator may have broken the lock and own
//! the cluster now) or when SIGINT/SIGTERM arrived. deploy::interrupt's rules; the Swarm waits are read-only
//! polls, so a stopped wait is abandoned rather than kicked.

use std::sync::mpsc;
use std::time::Duration;

use crate::deploy::interrupt::{self, Stopped};
use crate::deploy::lock::Holding;

const POLL: Duration = Duration::from_millis(100);

/// A safe point before a mutating docker call: Err (a [`Stopped`]) when the command must change nothing more.
pub fn checkpoint(holding: &Holding) -> anyhow::Result<()> {
    interrupt::checkpoint(holding).map_err(anyhow::Error::new)
}

/// Runs a read-only wait on its own thread and polls [`checkpoint`] meanwhile. On a stop the wait is left
/// to end by itself (it only inspects services and the process is about to exit) and the [`Stopped`] is
/// returned, so the caller records the outcome and releases the lock now rather than at the wait's deadline.
pub fn wait<T: Send + 'static>(
    holding: &Holding,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    loop {
        checkpoint(holding)?;
        match rx.recv_timeout(POLL) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the wait's thread ended without an answer (it panicked)")
            }
        }
    }
}

/// The ledger outcome of a command that stopped with `err`: Interrupted for SIGINT/SIGTERM, else Failed.
pub fn outcome(err: &anyhow::Error) -> crate::deploy::ledger::Outcome {
    match err.downcast_ref::<Stopped>() {
        Some(Stopped::Interrupted) => crate::deploy::ledger::Outcome::Interrupted,
        _ => crate::deploy::ledger::Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Instant;

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
    fn a_lost_lease_stops_a_mutation_and_a_wait() {
        let clock = Arc::new(LeaseClock::new(Duration::from_secs(60)));
        let holding = held(clock.clone());
        checkpoint(&holding).unwrap();
        assert_eq!(wait(&holding, || Ok(7)).unwrap(), 7);

        let started = Instant::now();
        let loser = clock.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            loser.lose("the lock config was removed".to_owned());
        });
        let err = wait(&holding, || {
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        })
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(format!("{err:#}").contains("removed"));
        assert_eq!(outcome(&err), crate::deploy::ledger::Outcome::Failed);
        assert!(checkpoint(&holding).is_err());
    }
}
