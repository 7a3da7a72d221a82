//! `cargo xtask rollback [--to V]`: traffic back to an earlier good release — a switch when its slot is
//! still there, else a start from the ledger's digests.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use xshell::Shell;

use super::context::{Ctx, Draft, TargetArgs};
use super::execute::execute;
use super::ledger::{Event, Outcome};
use super::live::{self, AfterFailure, LiveRelease};
use super::plan::{self, Action, Kept, Live};
use super::slots;

#[derive(Args, Debug)]
pub struct Rollback {
    #[command(flatten)]
    target: TargetArgs,
    /// Version to return to [default: the previous good release in the ledger].
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// The failure step of a pipeline: act only if the release the edge serves is no longer `--to` (the
    /// one recorded before the run; empty when none was): abort a canary the run left open, return to
    /// `--to` if the run moved everyone elsewhere, else change nothing.
    #[arg(long, requires = "to")]
    only_if_live_changed: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Rollback {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.only_if_live_changed {
            let before = self.to.clone().unwrap_or_default();
            if !self.needed_after_failure(sh, &before)? {
                return Ok(());
            }
        }
        self.roll_back(sh)
    }

    /// Whether the run that recorded `before` left traffic elsewhere (aborting an open canary first,
    /// which by itself returns everyone to the stable slot). Prints the decision.
    fn needed_after_failure(&self, sh: &Shell, before: &str) -> anyhow::Result<bool> {
        // Twice at most: an aborted canary leaves the stable slot, which is decided again.
        for _ in 0..2 {
            let ctx = Ctx::new(&self.target)?;
            let snapshot = ctx.target.snapshot()?;
            let model = ctx.target.edge_in(&snapshot)?.model()?;
            let now = LiveRelease::of(slots::routing_of(&model), &snapshot.containers);
            println!(
                "rollback: live before the run: {}; live now: {}",
                if before.is_empty() {
                    "no slotted release"
                } else {
                    before
                },
                now.describe()
            );
            match live::after_failure(before, &now) {
                AfterFailure::Nothing(why) => {
                    println!("rollback: nothing to do: {why}");
                    return Ok(false);
                }
                AfterFailure::RollBack { to } => {
                    println!("rollback: the run moved traffic off {to}; returning to it");
                    return Ok(true);
                }
                AfterFailure::AbortCanary if self.dry_run => {
                    println!(
                        "rollback: would abort the canary the run left open, then decide again"
                    );
                    println!("dry run: nothing was changed");
                    return Ok(false);
                }
                AfterFailure::AbortCanary => {
                    println!("rollback: the run left a canary open; aborting it");
                    super::canary::abort_in_progress(
                        sh,
                        &self.target,
                        "aborted by the failure step of the run that started it".to_owned(),
                    )?;
                }
            }
        }
        bail!("a canary is still open after aborting it; see `cargo xtask canary status`")
    }

    fn roll_back(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        let ctx = Ctx::new(&self.target)?;
        // Every engine round trip before the switch counts on the rollback's clock: one listing serves
        // the containers and the edge, and the independent reads after the lock run side by side.
        let snapshot = ctx.target.snapshot()?;
        let containers = &snapshot.containers;
        let edge = ctx.target.edge_in(&snapshot)?;
        let lock = if self.dry_run {
            None
        } else {
            Some(ctx.lock(containers, "rollback")?)
        };
        let (history, model) = std::thread::scope(|scope| {
            let history = scope.spawn(|| ctx.history(containers));
            let model = scope.spawn(|| {
                edge.endpoint();
                edge.model()
            });
            (joined(history), joined(model))
        });
        let (history, model) = (history?, model?);
        let Live::Slot(live) = ctx.target.live(&model, containers) else {
            bail!("nothing to roll back: the edge routes to no slot (no slotted deploy yet)");
        };
        // What is live is what the edge serves (a deploy stopped after its switch serves a release the
        // ledger never verified): a plain rollback then returns to the last verified release.
        let serving = LiveRelease::of(slots::routing_of(&model), containers);
        let wanted = match &self.to {
            Some(version) => history.find_good(version).with_context(|| {
                format!("the ledger has no good release {version:?} (see `cargo xtask releases`)")
            })?,
            None => live::rollback_target(&history, &serving)
                .context("the ledger has no earlier good release to return to")?,
        };
        let live_version = serving.version.clone();
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
        let kept = if kept.len() < 2 {
            Kept::Gone
        } else if kept.iter().all(|c| c.running()) {
            Kept::Running
        } else {
            Kept::Stopped(kept.iter().map(|c| c.kept()).collect())
        };
        let how = match &kept {
            Kept::Running => "running: instant switch",
            Kept::Stopped(_) => "kept: start, then switch",
            Kept::Gone => "gone: start from the ledger's digests",
        };
        let live_services = live.services();
        let live_intact = containers
            .iter()
            .filter(|c| live_services.contains(&c.service))
            .all(|c| c.running());
        let actions =
            plan::rollback_plan(live, live_intact, kept, &wanted.release, &ctx.config.deploy);
        plan::print(
            &format!(
                "rollback from {} (slot {live}) to {} (slot {target_slot}, {how}):",
                live_version.as_deref().unwrap_or("unknown"),
                wanted.release.version,
            ),
            &actions,
        );
        let Some(lock) = lock else {
            println!("dry run: nothing was changed");
            return Ok(());
        };
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
            containers,
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

/// A scoped thread's result; a panic there is an error here, not a second panic.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>) -> anyhow::Result<T> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("a reading thread panicked"))?
}
