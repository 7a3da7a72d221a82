//! `cargo xtask heal [--watch SECS]`: replaces containers that stay unhealthy, and brings back the ones
//! that exited and that nothing else will start again.
//!
//! Docker restarts a container whose process exits (restart policy, with its own exponential back-off)
//! and the runtime watchdog turns a stalled async runtime into an exit. What neither covers is a process
//! that cannot run at all — SIGSTOPped, or stuck in the kernel — where even the watchdog thread is frozen:
//! Docker marks it unhealthy and does nothing more. `heal` closes that gap from the host, through the
//! Docker CLI, instead of a sidecar holding the Docker socket: no container gets the socket (CIS Docker
//! Benchmark 5.32), and what it may do is exactly what the operator's CLI may do, scoped to one Compose
//! project. Run it as a service (`--watch 5`; scripts/systemd/avalon-heal.service) or from a timer.
//!
//! A container is restarted once its healthcheck has failed `--after` times in a row.
//!
//! An `exited` container is started again when all of these hold (see [`verdict`]):
//! - it ended on its own: a non-zero exit code or the OOM killer. `docker stop`, `compose stop` and a
//!   deploy stopping the old slot end our processes with SIGTERM, which they answer with a clean exit 0:
//!   that is someone's decision and is respected. `docker kill` (137) counts as a crash on purpose — it
//!   is what the OOM killer and a killed process look like, and Docker's policy never restarts it;
//! - nothing else will: Docker puts a container its restart policy restarts into `restarting` at once,
//!   so a container still `exited` [`SETTLE`] after it ended is one the policy gave up on or never had;
//! - it serves users: nginx, redis or mongodb; the unslotted api/websocket of `up` while the edge routes
//!   to them (the first slotted deploy retires them); a container of a slot the edge routes to. The idle
//!   slot is stopped on purpose (kept for an instant rollback), and while the edge of a slotted stack
//!   cannot be read no api or websocket container is started.
//!
//! Repeated heals of the same service back off (30 s doubling to 10 min) and are reported loudly, here
//! and in `status`.

mod remedy;
mod verdict;

use std::time::{Duration, Instant};

use clap::Args;

use crate::deploy::{ContainerInfo, Ctx, Snapshot, TargetArgs, UNSLOTTED_SERVICES, routing_of};
use verdict::{Backoff, Serving, Verdict, verdict};

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

/// What the edge routes to, read from its live model.
fn serving(ctx: &Ctx, snapshot: &Snapshot) -> Serving {
    let model = ctx.target.edge_in(snapshot).and_then(|edge| edge.model());
    match model {
        Ok(model) => match routing_of(&model) {
            Some(routing) => {
                let mut serving = vec![routing.primary];
                if let Some((canary, weight)) = routing.canary
                    && weight > 0
                {
                    serving.push(canary);
                }
                Serving::Slots(serving)
            }
            None => Serving::Unslotted,
        },
        // No edge to ask (it may be the container being healed): a stack never moved to slots is served
        // by its unslotted services; on a slotted one, nothing slotted is touched until the edge is back.
        Err(_) if snapshot.containers.iter().all(|c| c.slot.is_none()) => Serving::Unslotted,
        Err(_) => Serving::Unknown,
    }
}

impl Heal {
    pub fn run(self) -> anyhow::Result<()> {
        let ctx = Ctx::new(&self.target)?;
        let mut backoff = Backoff::default();
        loop {
            let snapshot = ctx.target.snapshot()?;
            // Reading the edge costs engine round trips: only when an exited api or websocket asks for it.
            let needs_routing = snapshot.containers.iter().any(|c| {
                c.state == "exited"
                    && (c.slot.is_some() || UNSLOTTED_SERVICES.contains(&c.service.as_str()))
            });
            let serving = if needs_routing {
                serving(&ctx, &snapshot)
            } else {
                Serving::Unknown
            };
            let now = time::OffsetDateTime::now_utc();
            for container in &snapshot.containers {
                let verdict = verdict(container, self.after, &serving, now);
                if verdict != Verdict::Leave {
                    self.heal(&ctx, &mut backoff, container, verdict)?;
                }
            }
            let Some(seconds) = self.watch else {
                return Ok(());
            };
            std::thread::sleep(Duration::from_secs(seconds.max(1)));
        }
    }

    fn heal(
        &self,
        ctx: &Ctx,
        backoff: &mut Backoff,
        container: &ContainerInfo,
        verdict: Verdict,
    ) -> anyhow::Result<()> {
        let count = match backoff.admit(&container.service, Instant::now()) {
            Ok(count) => count,
            Err(wait) => {
                eprintln!(
                    "!!! heal: {} needs healing again; next heal allowed in {}s (back-off)",
                    container.service,
                    wait.as_secs()
                );
                return Ok(());
            }
        };
        match verdict {
            Verdict::RestartHung => {
                eprintln!(
                    "heal: {} ({}) failed {} healthchecks in a row; restarting (heal #{count} of this service)",
                    container.name, container.service, container.failing_streak
                );
            }
            Verdict::StartExited => {
                eprintln!(
                    "heal: {} ({}) exited on its own (exit code {}{}) and nothing restarted it; starting it \
                     (heal #{count} of this service)",
                    container.name,
                    container.service,
                    container.exit_code,
                    if container.oom_killed {
                        ", OOM-killed"
                    } else {
                        ""
                    }
                );
            }
            Verdict::Leave => return Ok(()),
        }
        if count >= 3 {
            eprintln!(
                "!!! heal: {} keeps needing heals ({count}); backing off — investigate",
                container.service
            );
        }
        match remedy::command(&ctx.target.docker, container, verdict, self.stop_timeout) {
            Some(command) => remedy::apply(&command, self.dry_run),
            None => Ok(()),
        }
    }
}
