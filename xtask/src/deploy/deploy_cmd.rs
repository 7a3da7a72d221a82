//! `cargo xtask deploy`: a blue/green deploy of one release.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;
use xshell::Shell;

use super::context::{Ctx, Draft, TargetArgs};
use super::execute::{Ran, execute, undo_switch};
use super::ledger::{Event, Outcome};
use super::lock::DeployLock;
use super::plan::{self, Live};
use super::slots::{self, Slot};
use super::{ReleaseArgs, preflight};

#[derive(Args, Debug)]
pub struct Deploy {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    release: ReleaseArgs,
    /// Print the pre-flight results and the plan; change nothing (no lock, no container, no reload).
    #[arg(long)]
    dry_run: bool,
}

impl Deploy {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        let ctx = Ctx::new(&self.target)?;
        let (version, api_image, ws_image) = self.release.resolve()?;
        let containers = ctx.target.containers()?;
        let edge = ctx.target.edge()?;
        let model = edge.model()?;
        if let Some(routing) =
            slots::routing_of(&model).filter(|r| r.canary.is_some_and(|(_, w)| w > 0))
        {
            anyhow::bail!(
                "a canary is running ({}); promote or abort it first (`cargo xtask canary status`)",
                routing.describe()
            );
        }
        let live = ctx.target.live(&model, &containers);
        let idle = match live {
            Live::Slot(slot) => slot.other(),
            _ => Slot::Blue,
        };
        let images_there = preflight::ensure_images(
            &ctx.target,
            &[&api_image, &ws_image],
            self.release.pull,
            self.dry_run,
        )?;
        if !images_there {
            println!("dry run: the plan needs the images on the target; stopping before it");
            return Ok(());
        }
        let release = ctx.release(sh, &version, &api_image, &ws_image, idle, &BTreeMap::new())?;
        preflight::check_config(
            &ctx.target.effective(sh, &release)?,
            ctx.target.engine_is_remote(),
        )?;
        preflight::check_disk(&ctx.target, ctx.config.deploy.min_free_disk_mib)?;
        if let Some(holder) = DeployLock::holder(&ctx.target.docker, &ctx.target.project)? {
            anyhow::bail!(
                "{} by {} holds the deploy lock since {}",
                holder.command,
                holder.holder,
                holder.since
            );
        }
        let (target_slot, actions) = plan::deploy_plan(live, &release, &ctx.config.deploy);
        plan::print(
            &format!(
                "deploy {version} to {} (project {}, live: {live:?}, config {}):",
                target_slot, ctx.target.project, release.config_digest
            ),
            &actions,
        );
        if self.dry_run {
            println!("dry run: nothing was changed");
            return Ok(());
        }

        let lock = ctx.lock(&containers, "deploy")?;
        let draft = |outcome, note: Option<String>| Draft {
            event: Event::Deploy,
            release: release.clone(),
            slot: target_slot,
            weight: if outcome == Outcome::Succeeded {
                100
            } else {
                0
            },
            outcome,
            note,
            plan: None,
        };
        ctx.record(&containers, draft(Outcome::Started, None))?;
        let old = match live {
            Live::Slot(slot) => Some(slot),
            _ => None,
        };
        let result = execute(sh, &ctx, &edge, &actions, &BTreeMap::new());
        let outcome = match result {
            Ok(Ran::Done) => {
                ctx.record(&containers, draft(Outcome::Succeeded, None))?;
                println!(
                    "deploy: {version} is live on slot {target_slot} after {:.1}s",
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Ok(Ran::VerificationFailed(judgment)) => {
                undo_switch(sh, &ctx, &edge, target_slot, old)?;
                let note = format!("verification: {}", judgment.verdict.describe());
                ctx.record(&containers, draft(Outcome::RolledBack, Some(note.clone())))?;
                Err(anyhow::anyhow!(
                    "deploy of {version} rolled back automatically: {note}"
                ))
            }
            Err(err) => {
                eprintln!("deploy failed: {err:#}");
                let switched = edge
                    .model()
                    .ok()
                    .and_then(|m| slots::routing_of(&m))
                    .is_some_and(|r| r.primary == target_slot);
                if switched {
                    undo_switch(sh, &ctx, &edge, target_slot, old)?;
                } else if let Err(stop) = ctx.target.stop_services(&target_slot.services()) {
                    eprintln!("could not stop slot {target_slot}: {stop:#}");
                }
                ctx.record(
                    &containers,
                    draft(Outcome::Failed, Some(format!("{err:#}"))),
                )?;
                Err(err.context(format!(
                    "deploy of {version} failed; traffic stays on the previous release"
                )))
            }
        };
        lock.release()?;
        outcome
    }
}
