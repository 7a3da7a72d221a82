//! `cargo xtask unlock`: breaks a stale deploy lock — one whose holder stopped renewing its lease or whose
//! process is gone — and refuses a running one, naming its holder and the lease's age. Breaking is safe
//! even if the holder comes back: its lease is lost by its own clock, and the fence a new holder takes
//! makes the ledger and the edge refuse its writes (lock.rs).

use clap::Args;
use serde::Serialize;

use super::context::{Ctx, TargetArgs};
use super::lock::{DeployLock, Liveness, Observed};

#[derive(Args, Debug)]
pub struct Unlock {
    #[command(flatten)]
    target: TargetArgs,
    /// Say what would be broken; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The lock and what was done, as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    lock: Option<Observed>,
    /// `none`, `running` (refused), `stale` (broken unless a dry run).
    state: &'static str,
    broken: bool,
    dry_run: bool,
}

impl Unlock {
    pub fn run(self) -> anyhow::Result<()> {
        if self.target.engine.is_swarm() {
            // The Swarm lock is a config on the cluster (swarm::lock): observed with the same liveness
            // rule, removed by the id it was observed with (a lock taken since has another id).
            let project = crate::swarm::stack_name(self.target.env, &self.target.project);
            crate::swarm::target::SwarmTarget::new(project.clone()).require_manager()?;
            let observed = crate::swarm::lock::SwarmLock::observe(&project)?;
            return self.finish(observed, &project, true, |lock| {
                crate::swarm::lock::SwarmLock::remove_by_id(
                    &crate::command::DockerCli::default(),
                    &lock.id,
                )
            });
        }
        let ctx = Ctx::new(&self.target)?;
        let observed = DeployLock::observe(&ctx.target.docker, &ctx.target.project)?;
        self.finish(observed, &ctx.target.project, false, |lock| {
            DeployLock::break_stale(&ctx.target.docker, lock)
        })
    }

    /// Refuses a running lock, breaks a stale one with `break_stale` (unless a dry run), reports.
    fn finish(
        &self,
        observed: Option<Observed>,
        project: &str,
        swarm: bool,
        break_stale: impl FnOnce(&Observed) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let state = match observed.as_ref().map(|o| &o.liveness) {
            None => "none",
            Some(Liveness::Running { .. }) => "running",
            Some(Liveness::Stale { .. }) => "stale",
        };
        let broken = match &observed {
            Some(
                lock @ Observed {
                    liveness: Liveness::Stale { .. },
                    ..
                },
            ) if !self.dry_run => {
                break_stale(lock)?;
                true
            }
            _ => false,
        };
        let report = Report {
            lock: observed,
            state,
            broken,
            dry_run: self.dry_run,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report, project, swarm);
        }
        match &report.lock {
            Some(lock) if state == "running" => anyhow::bail!(
                "not breaking a running lock: {}; its lease was renewed {}s ago. Wait for it to finish, or \
                 stop that command (Ctrl-C cleans up and releases the lock)",
                lock.describe(),
                match lock.liveness {
                    Liveness::Running { lease_age_seconds } => lease_age_seconds,
                    Liveness::Stale { .. } => 0,
                }
            ),
            _ => Ok(()),
        }
    }
}

fn print_report(report: &Report, project: &str, swarm: bool) {
    let Some(lock) = &report.lock else {
        println!("unlock: no deploy lock is held on project {project}");
        return;
    };
    let fence = lock
        .fence()
        .map_or(String::new(), |f| format!(", fence {f}"));
    match (&lock.liveness, report.broken) {
        (Liveness::Stale { why }, true) => println!(
            "unlock: broke the stale deploy lock of {}{fence}: {why}",
            lock.describe()
        ),
        (Liveness::Stale { why }, false) => println!(
            "unlock: dry run: would break the stale deploy lock of {}{fence}: {why}",
            lock.describe()
        ),
        (Liveness::Running { .. }, _) => println!(
            "unlock: the deploy lock of {}{fence} is running",
            lock.describe()
        ),
    }
    if report.broken && swarm {
        println!(
            "unlock: now check what the stack runs: `cargo xtask status --engine swarm`, then \
             `cargo xtask deploy --engine swarm` or `cargo xtask rollback --engine swarm`"
        );
    } else if report.broken {
        println!(
            "unlock: now check what the edge serves and what is open: `cargo xtask status`, then \
             `cargo xtask deploy --resume` or `cargo xtask rollback` (docs/operations.md, \"When a deploy \
             is interrupted\")"
        );
    }
}
