//! `cargo xtask heal [--watch SECS]`: replaces containers that stay unhealthy.
//!
//! Docker restarts a container whose process exits (restart policy, with its own exponential back-off)
//! and the runtime watchdog turns a stalled async runtime into an exit. What neither covers is a process
//! that cannot run at all — SIGSTOPped, or stuck in the kernel — where even the watchdog thread is frozen:
//! Docker marks it unhealthy and does nothing more. `heal` closes that gap from the host, through the
//! Docker CLI, instead of a sidecar holding the Docker socket: no container gets the socket (CIS Docker
//! Benchmark 5.32), and what it may do is exactly what the operator's CLI may do, scoped to one Compose
//! project. Run it as a service (`--watch 5`; scripts/systemd/avalon-heal.service) or from a timer.
//!
//! A container is restarted once its healthcheck has failed `--after` times in a row. Repeated heals of
//! the same service back off (30 s doubling to 10 min) and are reported loudly, here and in `status`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;

use super::context::{Ctx, TargetArgs};
use super::target::ContainerInfo;

#[derive(Args, Debug)]
pub struct Heal {
    #[command(flatten)]
    target: TargetArgs,
    /// Keep watching, checking every SECS seconds (otherwise one pass).
    #[arg(long, value_name = "SECS")]
    watch: Option<u64>,
    /// Consecutive failed healthchecks before a restart.
    #[arg(long, default_value_t = 3)]
    after: u64,
    /// Seconds a container being replaced gets to stop before SIGKILL. It has already failed its
    /// healthchecks `--after` times, so it serves nothing a longer grace could save.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    stop_timeout: u64,
    /// Print what would be restarted; restart nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Per-service back-off between heals.
#[derive(Default)]
pub struct Backoff {
    last: BTreeMap<String, (Instant, u32)>,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl Backoff {
    /// Whether `service` may be healed at `now`, and if so records the heal.
    pub fn admit(&mut self, service: &str, now: Instant) -> Result<u32, Duration> {
        match self.last.get(service) {
            Some((at, count)) => {
                let wait = FIRST_BACKOFF
                    .saturating_mul(1 << (*count - 1).min(5))
                    .min(MAX_BACKOFF);
                let ready = *at + wait;
                if now < ready {
                    return Err(ready - now);
                }
                // A service healthy for a long stretch starts again from the first back-off.
                let count = if now.duration_since(*at) > MAX_BACKOFF * 2 {
                    1
                } else {
                    count + 1
                };
                self.last.insert(service.to_owned(), (now, count));
                Ok(count)
            }
            None => {
                self.last.insert(service.to_owned(), (now, 1));
                Ok(1)
            }
        }
    }
}

pub fn needs_heal(container: &ContainerInfo, after: u64) -> bool {
    container.running() && container.health == "unhealthy" && container.failing_streak >= after
}

impl Heal {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = Ctx::new(&self.target)?;
        let mut backoff = Backoff::default();
        loop {
            let containers = ctx.target.containers()?;
            for container in containers.iter().filter(|c| needs_heal(c, self.after)) {
                match backoff.admit(&container.service, Instant::now()) {
                    Ok(count) => {
                        eprintln!(
                            "heal: {} ({}) failed {} healthchecks in a row; restarting (heal #{count} of this service)",
                            container.name, container.service, container.failing_streak
                        );
                        if count >= 3 {
                            eprintln!(
                                "!!! heal: {} keeps going unhealthy ({count} heals); backing off — investigate",
                                container.service
                            );
                        }
                        if !self.dry_run {
                            // `docker restart` sends the stop signal, then SIGKILL after the grace period:
                            // a SIGSTOPped process cannot act on SIGTERM, so the kill is what frees it.
                            let grace = self.stop_timeout.to_string();
                            ctx.target
                                .docker
                                .invocation()
                                .args(["container", "restart", "--time", &grace, &container.id])
                                .capture(None)?;
                        }
                    }
                    Err(wait) => eprintln!(
                        "!!! heal: {} is unhealthy again; next restart allowed in {}s (back-off)",
                        container.service,
                        wait.as_secs()
                    ),
                }
            }
            let Some(seconds) = self.watch else {
                return Ok(());
            };
            std::thread::sleep(Duration::from_secs(seconds.max(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn heals_of_one_service_back_off_and_recover() {
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(backoff.admit("api-blue", t0), Ok(1));
        assert!(
            backoff
                .admit("api-blue", t0 + Duration::from_secs(10))
                .is_err()
        );
        assert_eq!(backoff.admit("websocket-blue", t0), Ok(1));
        assert_eq!(
            backoff.admit("api-blue", t0 + Duration::from_secs(31)),
            Ok(2)
        );
        assert_eq!(
            backoff
                .admit("api-blue", t0 + Duration::from_secs(60))
                .unwrap_err(),
            Duration::from_secs(31)
        );
        assert_eq!(
            backoff.admit("api-blue", t0 + Duration::from_secs(92)),
            Ok(3)
        );
        assert_eq!(
            backoff.admit("api-blue", t0 + Duration::from_secs(92 + 1300)),
            Ok(1)
        );
    }
}
