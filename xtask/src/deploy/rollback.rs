//! `cargo xtask rollback [--to V]`: traffic back to an earlier good release — a switch when its slot is
//! still there, else a start from the ledger's digests.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use xshell::Shell;

use super::context::{Ctx, Draft, TargetArgs, who};
use super::execute::execute;
use super::ledger::{Event, Outcome};
use super::lock::DeployLock;
use super::plan::{self, Action, Live};

#[derive(Args, Debug)]
pub struct Rollback {
    #[command(flatten)]
    target: TargetArgs,
    /// Version to return to [default: the previous good release in the ledger].
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// Print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Rollback {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        let ctx = Ctx::new(&self.target)?;
        let containers = ctx.target.containers()?;
        let edge = ctx.target.edge()?;
        let history = ctx.history(&containers)?;
        let Live::Slot(live) = ctx.target.live(&edge.model()?, &containers) else {
            bail!("nothing to roll back: the edge routes to no slot (no slotted deploy yet)");
        };
        let wanted = match &self.to {
            Some(version) => history.find_good(version).with_context(|| {
                format!("the ledger has no good release {version:?} (see `cargo xtask releases`)")
            })?,
            None => history
                .previous_good()
                .context("the ledger has no earlier good release to return to")?,
        };
        let live_version = history.live().map(|e| e.release.version.clone());
        if live_version.as_deref() == Some(wanted.release.version.as_str()) && self.to.is_some() {
            bail!("{} is already live", wanted.release.version);
        }
        let target_slot = live.other();
        let kept: Vec<_> = containers
            .iter()
            .filter(|c| {
                c.slot == Some(target_slot)
                    && c.release.as_deref() == Some(wanted.release.version.as_str())
            })
            .collect();
        let has_release = kept.len() >= 2;
        let running = has_release && kept.iter().all(|c| c.running());
        let actions = plan::rollback_plan(
            live,
            has_release,
            running,
            &wanted.release,
            &ctx.config.deploy,
        );
        plan::print(
            &format!(
                "rollback from {} (slot {live}) to {} (slot {target_slot}, {}):",
                live_version.as_deref().unwrap_or("unknown"),
                wanted.release.version,
                if running {
                    "running: instant switch"
                } else if has_release {
                    "kept: start, then switch"
                } else {
                    "gone: start from the ledger's digests"
                }
            ),
            &actions,
        );
        if self.dry_run {
            println!("dry run: nothing was changed");
            return Ok(());
        }
        let helper = ctx.target.helper_image(&containers)?;
        let lock = DeployLock::acquire(
            &ctx.target.docker,
            &ctx.target.project,
            &helper,
            "rollback",
            &who(),
        )?;
        // The switch happens in the first Route; time it from the command's start.
        let switch_at = actions
            .iter()
            .position(|a| matches!(a, Action::Route { .. }))
            .unwrap_or(0);
        let (before, after) = actions.split_at(switch_at + 1);
        execute(sh, &ctx, &edge, before, &BTreeMap::new())?;
        let switched = started.elapsed();
        println!(
            "rollback: 100% of traffic on {} after {:.2}s",
            wanted.release.version,
            switched.as_secs_f64()
        );
        execute(sh, &ctx, &edge, after, &BTreeMap::new())?;
        ctx.record(
            &containers,
            Draft {
                event: Event::Rollback,
                release: wanted.release.clone(),
                slot: target_slot,
                weight: 100,
                outcome: Outcome::Succeeded,
                note: Some(format!(
                    "from {}; traffic switched after {:.2}s",
                    live_version.as_deref().unwrap_or("unknown"),
                    switched.as_secs_f64()
                )),
                plan: None,
            },
        )?;
        lock.release()
    }
}
