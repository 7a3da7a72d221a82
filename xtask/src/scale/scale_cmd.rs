//! `cargo xtask scale --service api|websocket --replicas N [--dry-run] [--json]`: the live slot's replicas
//! of one service (the unslotted stack's, before any slotted deploy). Takes the deploy lock, so it never
//! runs while a deploy, canary or rollback does (and they wait for it); recorded in the release ledger.

use clap::Args;
use xshell::Shell;

use super::live_stack::ServiceKind;
use super::replicas::set_replicas;
use crate::deploy::{Ctx, DeployLock, TargetArgs};

#[derive(Args, Debug)]
pub struct Scale {
    #[command(flatten)]
    target: TargetArgs,
    /// The service to scale.
    #[arg(long, value_enum)]
    service: ServiceKind,
    /// Instances wanted (at least 1).
    #[arg(long, value_name = "N")]
    replicas: u32,
    /// Print what would start or drain; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the outcome as one JSON object.
    #[arg(long)]
    json: bool,
}

impl Scale {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        // Before either engine: `docker service scale … 0` would take the service away.
        super::replicas::check_replicas(self.replicas)?;
        if self.target.engine.is_swarm() {
            let project = crate::swarm::stack_name(self.target.env, &self.target.project);
            let report = crate::swarm::scale::scale(
                &project,
                self.service.name(),
                self.replicas,
                std::time::Duration::from_secs(300),
                self.dry_run,
            )?;
            if self.json {
                println!("{}", serde_json::to_string(&report)?);
            } else if !self.dry_run {
                println!(
                    "scale: {} {} → {} in {:.1}s",
                    report.service, report.from, report.to, report.seconds
                );
            }
            return Ok(());
        }
        let ctx = Ctx::new(&self.target)?;
        let reason = format!("cargo xtask scale by {}", crate::deploy::who());
        let report = if self.dry_run {
            if let Some(held) = DeployLock::observe(&ctx.target.docker, &ctx.target.project)? {
                println!(
                    "scale: the deploy lock is held by {}: a real scale would be refused now",
                    held.describe()
                );
            }
            set_replicas(&ctx, sh, self.service, self.replicas, true, &reason)?
        } else {
            let containers = ctx.target.containers()?;
            let lock = ctx.lock(&containers, "scale")?;
            let report = set_replicas(&ctx, sh, self.service, self.replicas, false, &reason);
            lock.release()?;
            report?
        };
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        } else if !self.dry_run {
            println!(
                "scale: {} {} → {} on {} in {:.1}s",
                report.compose_service, report.from, report.to, report.slot, report.seconds
            );
        }
        Ok(())
    }
}
