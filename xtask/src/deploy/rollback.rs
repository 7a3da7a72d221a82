//! `cargo xtask rollback [--to V]`: traffic back to an earlier good release — a switch when its slot is
//! still there with the recorded configuration, else a start from the ledger's digests — verified like a
//! deploy. A plain rollback undoes the last change only while it stands (see [`super::undo`]).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use xshell::Shell;

use super::context::{Ctx, Draft, TargetArgs};
use super::execute::{Ran, execute};
use super::kept::{self, Kept};
use super::labels::config_digest;
use super::ledger::{Entry, Event, History, Outcome, Release};
use super::live::{self, AfterFailure, LiveRelease};
use super::lock::DeployLock;
use super::plan::{self, Action, Live};
use super::slots::{self, Slot};
use super::target::{ContainerInfo, Edge};
use super::undo::{self, Undo};

#[derive(Args, Debug)]
pub struct Rollback {
    #[command(flatten)]
    target: TargetArgs,
    /// Version to return to [default: undo the last change, i.e. the good release before it; nothing
    /// when that change already undid itself, e.g. an aborted canary].
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
        if self.target.engine.is_swarm() {
            let project = crate::swarm::stack_name(self.target.env, &self.target.project);
            return crate::swarm::rollout::rollback(
                &project,
                self.to.as_deref(),
                crate::swarm::ROLLOUT_TIMEOUT,
                self.dry_run,
            );
        }
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
            Some(version) => self.explicit_target(&history, &serving, version)?,
            None => match undo::what_to_undo(&history, &serving)? {
                // The ledger's previous release is what the edge serves: the ledger is behind the edge.
                Undo::To(entry) if serving.version.as_deref() == Some(&entry.release.version) => {
                    bail!(
                        "the ledger's release before the live one is {}, which the edge serves already ({}): \
                     see `cargo xtask status` and name the release: `cargo xtask rollback --to VERSION`",
                        entry.release.version,
                        serving.describe()
                    )
                }
                Undo::To(entry) => entry,
                Undo::Nothing(why) => {
                    println!("rollback: nothing to undo: {why}");
                    println!("rollback: no change (live: {})", serving.describe());
                    return lock.map_or(Ok(()), DeployLock::release);
                }
                Undo::AbortCanary(canary) => {
                    return self.abort_canary(sh, lock, canary, &serving);
                }
            },
        };
        let live_version = serving
            .version
            .clone()
            .unwrap_or_else(|| "an unlabelled release".to_owned());
        let target_slot = live.other();
        let kept = kept::kept_for(containers, target_slot, &wanted.release);
        // A recreated slot runs today's configuration for the recorded images; the ledger records that
        // one, and the plan says whether it is the recorded one.
        let mut release = wanted.release.clone();
        let mut config_note = None;
        if let Kept::Recreate(_) = kept {
            let overlay = ctx
                .target
                .slot_overlay_json(sh, target_slot, &release, &BTreeMap::new())
                .context("reading the configuration the slot would be recreated with")?;
            let now = config_digest(&overlay)?;
            if now != release.config_digest {
                config_note = Some(format!(
                    "note: the stack's configuration changed since {} was recorded (config now {now}, recorded \
                     {}): the slot starts with the recorded images and today's configuration",
                    release.version, release.config_digest
                ));
                release.config_digest = now;
            }
        }
        let live_services = live.services();
        let live_intact = containers
            .iter()
            .filter(|c| live_services.contains(&c.service))
            .all(|c| c.running());
        println!(
            "rollback from {live_version} (slot {live}) to {} (slot {target_slot}):",
            release.version
        );
        println!("  {}", kept.describe(target_slot, &wanted.release));
        if let Some(note) = &config_note {
            println!("  {note}");
        }
        let actions = plan::rollback_plan(
            live,
            live_intact,
            kept.clone(),
            &release,
            &ctx.config.deploy,
        );
        plan::print("plan:", &actions);
        let Some(lock) = lock else {
            println!("dry run: nothing was changed");
            return Ok(());
        };
        let run = Run {
            sh,
            ctx: &ctx,
            edge: &edge,
            containers,
            release: &release,
            from: &live_version,
            live,
            target: target_slot,
            started,
        };
        let result = run.run(&actions, &kept);
        lock.release()?;
        result
    }

    /// The good release `--to` names, unless it is what the edge serves already or a canary is open.
    fn explicit_target<'h>(
        &self,
        history: &'h History,
        serving: &LiveRelease,
        version: &str,
    ) -> anyhow::Result<&'h Entry> {
        if let Some(canary) = history.canary_in_progress() {
            bail!(
                "a canary of {} is open on slot {} ({}): abort it first with `cargo xtask canary abort` \
                 (a plain `cargo xtask rollback` aborts it too)",
                canary.release.version,
                canary.slot,
                serving.describe()
            );
        }
        if serving.version.as_deref() == Some(version) {
            bail!(
                "{version} is already live: the edge serves {}",
                serving.describe()
            );
        }
        history.find_good(version).with_context(|| {
            format!("the ledger has no good release {version:?} (see `cargo xtask releases`)")
        })
    }

    /// Undoing an open canary is aborting it: weight 0, drain, stop; everyone stays on the stable slot.
    fn abort_canary(
        &self,
        sh: &Shell,
        lock: Option<DeployLock>,
        canary: &Entry,
        serving: &LiveRelease,
    ) -> anyhow::Result<()> {
        println!(
            "rollback: the last change is the canary of {} on slot {}, still open (live: {}); undoing it \
             is aborting it: weight 0, drain and stop slot {}",
            canary.release.version,
            canary.slot,
            serving.describe(),
            canary.slot
        );
        let Some(lock) = lock else {
            println!("dry run: nothing was changed");
            return Ok(());
        };
        // The abort takes the lock itself.
        lock.release()?;
        super::canary::abort_in_progress(sh, &self.target, "aborted by `rollback`".to_owned())
    }
}

/// A rollback's plan being run, and what its ledger entry and messages say.
struct Run<'a> {
    sh: &'a Shell,
    ctx: &'a Ctx,
    edge: &'a Edge,
    containers: &'a [ContainerInfo],
    release: &'a Release,
    /// The release traffic leaves, as its containers are labelled.
    from: &'a str,
    live: Slot,
    target: Slot,
    started: Instant,
}

impl Run<'_> {
    /// Up to the switch, then the verification, then the rest: a failure in each part is recorded for
    /// what it left (traffic not moved; moved but not verified; verified but the old slot not dropped).
    fn run(&self, actions: &[Action], kept: &Kept) -> anyhow::Result<()> {
        let switch_at = actions
            .iter()
            .position(|a| matches!(a, Action::Route { .. }))
            .unwrap_or(0);
        let verify_at = actions
            .iter()
            .position(|a| matches!(a, Action::Verify { .. }))
            .unwrap_or(switch_at);
        let (to_switch, rest) = actions.split_at(switch_at + 1);
        let (to_verify, to_finish) = rest.split_at(verify_at.saturating_sub(switch_at));
        let no_env = BTreeMap::new();
        if let Err(err) = execute(self.sh, self.ctx, self.edge, to_switch, &no_env) {
            return self.failed_before_switch(err, kept);
        }
        let switched = self.started.elapsed();
        println!(
            "rollback: 100% of traffic on {} after {:.2}s",
            self.release.version,
            switched.as_secs_f64()
        );
        let note = format!(
            "from {}; traffic switched after {:.2}s",
            self.from,
            switched.as_secs_f64()
        );
        match execute(self.sh, self.ctx, self.edge, to_verify, &no_env) {
            Ok(Ran::Done) => {}
            Ok(Ran::VerificationFailed(judgment)) => {
                return self.not_verified(&note, &judgment.verdict.describe());
            }
            Err(err) => return self.not_verified(&note, &format!("{err:#}")),
        }
        let finished = execute(self.sh, self.ctx, self.edge, to_finish, &no_env);
        let note = match &finished {
            Ok(_) => format!("{note}; verified"),
            Err(err) => format!(
                "{note}; verified; dropping slot {} failed: {err:#}",
                self.live
            ),
        };
        self.record(Outcome::Succeeded, 100, note)?;
        finished.map(|_| ()).with_context(|| {
            format!(
                "{} is live on slot {} and verified, but slot {} was not dropped cleanly",
                self.release.version, self.target, self.live
            )
        })?;
        println!(
            "rollback: {} is live on slot {} and verified, after {:.1}s",
            self.release.version,
            self.target,
            self.started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn failed_before_switch(&self, err: anyhow::Error, kept: &Kept) -> anyhow::Result<()> {
        eprintln!("rollback failed: {err:#}");
        // A slot this rollback started (or started again) and that never took traffic goes back down.
        if !matches!(kept, Kept::Running)
            && let Err(stop) = self.ctx.target.stop_services(&self.target.services())
        {
            eprintln!("could not stop slot {}: {stop:#}", self.target);
        }
        self.record(Outcome::Failed, 0, format!("{err:#}"))?;
        Err(err.context(format!(
            "rollback to {} failed before traffic moved; {} stays live on slot {}",
            self.release.version, self.from, self.live
        )))
    }

    /// The verification after the switch failed: traffic stays, loudly (switching back would ping-pong).
    fn not_verified(&self, note: &str, why: &str) -> anyhow::Result<()> {
        self.record(
            Outcome::VerifyFailed,
            100,
            format!(
                "{note}; verification failed: {why}; left live unverified, {} kept on slot {}",
                self.from, self.live
            ),
        )?;
        eprintln!(
            "\nROLLBACK NOT VERIFIED: {} on slot {} failed its verification: {why}\n\
             \x20 live now: {} on slot {} takes 100% of traffic, unverified.\n\
             \x20 slot {} ({}) still runs and was not drained; nothing switched back (that would ping-pong \
             between two releases).\n\
             \x20 next: read the figures above and `cargo xtask status`, then serve a release you trust: \
             `cargo xtask rollback --to VERSION` (good ones: `cargo xtask releases`) or deploy a fix.",
            self.release.version,
            self.target,
            self.release.version,
            self.target,
            self.live,
            self.from
        );
        bail!(
            "rollback to {} failed its verification ({why}); it stays live on slot {}, unverified",
            self.release.version,
            self.target
        )
    }

    fn record(&self, outcome: Outcome, weight: u8, note: String) -> anyhow::Result<()> {
        self.ctx
            .record(
                self.containers,
                Draft {
                    event: Event::Rollback,
                    release: self.release.clone(),
                    slot: self.target,
                    weight,
                    outcome,
                    note: Some(note),
                    plan: None,
                },
            )
            .map(|_| ())
    }
}

/// A scoped thread's result; a panic there is an error here, not a second panic.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>) -> anyhow::Result<T> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("a reading thread panicked"))?
}
