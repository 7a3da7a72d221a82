//! `cargo xtask deploy`: a blue/green deploy of one release, or `--resume` of one that did not finish.
//!
//! What is live is read from the edge (never the ledger's last intent). A deploy refuses to start while
//! the edge serves a release no verification passed (one killed after its switch): `--resume` or
//! `rollback` first. SIGINT/SIGTERM stop it at the next safe point (interrupt.rs); it then puts the edge
//! back on the last verified route, stops the slot it started and records `interrupted` with the step.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Args;
use xshell::Shell;

use super::context::{Ctx, Draft, TargetArgs};
use super::execute::{Ran, StoppedAt, execute, undo_switch};
use super::interrupt::{self, Stopped};
use super::ledger::{Event, History, Outcome, Release};
use super::live::{self, LiveRelease, Situation};
use super::lock::{self, DeployLock};
use super::plan::{self, Action, Live};
use super::slots::{self, Routing, Slot};
use super::target::{ContainerInfo, Edge};
use super::{ReleaseArgs, preflight};

#[derive(Args, Debug)]
pub struct Deploy {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    release: ReleaseArgs,
    /// Finish the deploy that was interrupted or killed (its release from the ledger): verify and drain if
    /// the edge already serves it, else deploy it again from its start. Says so when there is none.
    #[arg(long, conflicts_with_all = ["version", "image_tag", "api_image", "ws_image"])]
    resume: bool,
    /// Print the pre-flight results and the plan; change nothing (no lock, no container, no reload).
    #[arg(long)]
    dry_run: bool,
}

/// What one run deploys and how.
struct Run<'a> {
    ctx: &'a Ctx,
    edge: &'a Edge,
    containers: &'a [ContainerInfo],
    release: Release,
    target_slot: Slot,
    /// The slot serving before the run (`None`: unslotted or empty stack).
    old: Option<Slot>,
    actions: Vec<Action>,
    command: &'static str,
}

impl Deploy {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.target.engine.is_swarm() {
            crate::swarm::refuse_ignored(
                "deploy",
                &[
                    (
                        "--pull",
                        self.release.pull,
                        "each Swarm node pulls the image itself when its task starts (or it must \
                         already hold it)",
                    ),
                    (
                        "--resume",
                        self.resume,
                        "a Swarm rolling update has no slot to finish: run the same deploy again, or \
                         `rollback --engine swarm`",
                    ),
                ],
            )?;
            let (version, api, ws) = self.release.resolve()?;
            let project = crate::swarm::stack_name(self.target.env, &self.target.project);
            return crate::swarm::rollout::roll(
                &project,
                crate::swarm::rollout::release(&version, &api, &ws, ""),
                super::ledger::Event::Deploy,
                None,
                crate::swarm::ROLLOUT_TIMEOUT,
                self.dry_run,
            );
        }
        let started = Instant::now();
        let ctx = Ctx::new(&self.target)?;
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
        let serving = LiveRelease::of(slots::routing_of(&model), &containers);
        let history = ctx.history(&containers)?;
        let situation = live::situation(&history, &serving);
        if let Some(advice) = situation.advice() {
            println!("deploy: {advice}");
        }
        if let Some(held) = DeployLock::observe(&ctx.target.docker, &ctx.target.project)? {
            return Err(lock::refusal(&held));
        }
        let run = if self.resume {
            match resume_run(&ctx, &edge, &containers, &history, &serving, live)? {
                Some(run) => run,
                None => return Ok(()),
            }
        } else {
            // Only a deploy stopped after its switch blocks a new one (resume or roll it back first); a
            // release left unverified on purpose (a rollback whose verification failed) or by hand is
            // what a new deploy replaces, verified like any other.
            if let Situation::Unverified {
                unfinished: Some(_),
                ..
            } = situation
            {
                anyhow::bail!(
                    "not deploying over an unverified release: {}",
                    situation.advice().unwrap_or_default()
                );
            }
            match self.fresh_run(sh, &ctx, &edge, &containers, live)? {
                Some(run) => run,
                None => return Ok(()),
            }
        };
        plan::print(
            &format!(
                "{} {} to {} (project {}, live: {live:?}, config {}):",
                run.command,
                run.release.version,
                run.target_slot,
                ctx.target.project,
                run.release.config_digest
            ),
            &run.actions,
        );
        if self.dry_run {
            println!("dry run: nothing was changed");
            return Ok(());
        }
        run.go(sh, started, slots::routing_of(&model))
    }

    /// A deploy of the release named on the command line: pre-flight, then the plan.
    fn fresh_run<'a>(
        &self,
        sh: &Shell,
        ctx: &'a Ctx,
        edge: &'a Edge,
        containers: &'a [ContainerInfo],
        live: Live,
    ) -> anyhow::Result<Option<Run<'a>>> {
        let (version, api_image, ws_image) = self.release.resolve()?;
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
            return Ok(None);
        }
        let release = ctx.release(sh, &version, &api_image, &ws_image, idle, &BTreeMap::new())?;
        preflight::check_config(
            &ctx.target.effective(sh, &release)?,
            ctx.target.engine_is_remote(),
        )?;
        preflight::check_disk(&ctx.target, ctx.config.deploy.min_free_disk_mib)?;
        let (target_slot, actions) = plan::deploy_plan(live, &release, &ctx.config.deploy);
        Ok(Some(Run {
            ctx,
            edge,
            containers,
            release,
            target_slot,
            old: live_slot(live),
            actions,
            command: "deploy",
        }))
    }
}

/// `--resume`: the unfinished deploy's release and the plan that finishes it, or `None` (said why).
fn resume_run<'a>(
    ctx: &'a Ctx,
    edge: &'a Edge,
    containers: &'a [ContainerInfo],
    history: &History,
    serving: &LiveRelease,
    live: Live,
) -> anyhow::Result<Option<Run<'a>>> {
    let Some(entry) = history.unfinished_deploy() else {
        println!(
            "deploy --resume: nothing to resume: {}; the edge serves {}",
            history
                .last()
                .map_or("the ledger is empty".to_owned(), |e| format!(
                    "the newest entry #{} ({:?} of {}) ended {:?}",
                    e.seq, e.event, e.release.version, e.outcome
                )),
            serving.describe()
        );
        return Ok(None);
    };
    let (target_slot, actions) = live::resume_plan(entry, serving, live, &ctx.config.deploy)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "ledger #{} names no slot this version knows ({:?})",
                entry.seq,
                entry.slot
            )
        })?;
    println!(
        "deploy --resume: #{} deploy of {} to slot {} ({:?})",
        entry.seq, entry.release.version, entry.slot, entry.outcome
    );
    // Traffic on the new slot: the old one is what a failed verification returns to.
    let old = if live::serves(serving, &entry.release.version, &entry.slot) {
        Some(target_slot.other())
    } else {
        live_slot(live)
    };
    Ok(Some(Run {
        ctx,
        edge,
        containers,
        release: entry.release.clone(),
        target_slot,
        old,
        actions,
        command: "deploy --resume",
    }))
}

fn live_slot(live: Live) -> Option<Slot> {
    match live {
        Live::Slot(slot) => Some(slot),
        _ => None,
    }
}

impl Run<'_> {
    fn draft(&self, outcome: Outcome, weight: u8, note: Option<String>) -> Draft {
        Draft {
            event: Event::Deploy,
            release: self.release.clone(),
            slot: self.target_slot,
            weight,
            outcome,
            note,
            plan: None,
        }
    }

    fn record(&self, outcome: Outcome, weight: u8, note: Option<String>) -> anyhow::Result<()> {
        self.ctx
            .record(self.containers, self.draft(outcome, weight, note))
            .map(|_| ())
    }

    fn go(self, sh: &Shell, started: Instant, planned: Option<Routing>) -> anyhow::Result<()> {
        // From here on SIGINT/SIGTERM stop the deploy at its next safe point, to be cleaned up after.
        interrupt::install()?;
        let lock = self.ctx.lock(self.containers, self.command)?;
        // The plan was made before the lock: a command that held it meanwhile may have moved traffic (this
        // plan could then start the slot that now serves). Re-read the edge under the lock.
        let now = self.edge.model().map(|model| slots::routing_of(&model));
        if now.as_ref().ok() != Some(&planned) {
            lock.release()?;
            anyhow::bail!(
                "the edge changed while this {} was planned (planned from {}, now {}); nothing was \
                 changed: run it again",
                self.command,
                planned.map_or("no slotted route".to_owned(), |r| r.describe()),
                match now {
                    Ok(Some(routing)) => routing.describe(),
                    Ok(None) => "no slotted route".to_owned(),
                    Err(err) => format!("unreadable: {err:#}"),
                }
            );
        }
        self.record(Outcome::Started, 0, None)?;
        let version = &self.release.version;
        let result = execute(sh, self.ctx, self.edge, &self.actions, &BTreeMap::new());
        let outcome = match result {
            Ok(Ran::Done) => {
                self.record(Outcome::Succeeded, 100, None)?;
                println!(
                    "deploy: {version} is live on slot {} after {:.1}s",
                    self.target_slot,
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Ok(Ran::VerificationFailed(judgment)) => {
                undo_switch(sh, self.ctx, self.edge, self.target_slot, self.old)?;
                let note = format!("verification: {}", judgment.verdict.describe());
                self.record(Outcome::RolledBack, 0, Some(note.clone()))?;
                Err(anyhow::anyhow!(
                    "deploy of {version} rolled back automatically: {note}"
                ))
            }
            Err(err) => match err.downcast::<StoppedAt>() {
                Ok(at) => self.after_stop(sh, &at),
                Err(err) => self.after_failure(sh, err),
            },
        };
        lock.release()?;
        outcome
    }

    /// An interrupt: back to the last verified route, stop what this run started, record it. A lost
    /// lease: change nothing more (another command may own the target now).
    fn after_stop(&self, sh: &Shell, at: &StoppedAt) -> anyhow::Result<()> {
        let version = &self.release.version;
        if let Stopped::LeaseLost(why) = &at.stopped {
            return Err(anyhow::anyhow!(
                "deploy of {version} stopped at step {}: {why}. It changed nothing after that; see \
                 `cargo xtask status` for what the edge serves",
                at.step
            ));
        }
        interrupt::begin_cleanup();
        println!(
            "deploy: interrupted at step {} (action {} of {}); cleaning up",
            at.step,
            at.index + 1,
            self.actions.len()
        );
        let verified = self.actions[..at.index]
            .iter()
            .any(|a| matches!(a, Action::Verify { .. }));
        let (weight, note) = if verified {
            (
                100,
                format!(
                    "at {}: {version} passed its verification and takes all traffic; slot {} was not \
                     drained (`cargo xtask deploy --resume` drains it)",
                    at.step,
                    self.old.map_or("-".to_owned(), |s| s.to_string())
                ),
            )
        } else {
            self.put_back(sh)?;
            (
                0,
                format!(
                    "at {}: traffic back on {}; slot {} stopped",
                    at.step,
                    self.old
                        .map_or("the unslotted services".to_owned(), |s| format!(
                            "the verified release on slot {s}"
                        )),
                    self.target_slot
                ),
            )
        };
        self.record(Outcome::Interrupted, weight, Some(note.clone()))?;
        Err(anyhow::anyhow!("deploy of {version} interrupted {note}"))
    }

    /// The edge back where it was before this run (the last verified route), this run's slot stopped.
    fn put_back(&self, sh: &Shell) -> anyhow::Result<()> {
        let switched = self
            .edge
            .model()
            .ok()
            .and_then(|m| slots::routing_of(&m))
            .is_none_or(|r| r.weight_of(self.target_slot) > 0);
        if switched {
            undo_switch(sh, self.ctx, self.edge, self.target_slot, self.old)
        } else {
            println!("stopping slot {}", self.target_slot);
            self.ctx.target.stop_services(&self.target_slot.services())
        }
    }

    fn after_failure(&self, sh: &Shell, err: anyhow::Error) -> anyhow::Result<()> {
        eprintln!("deploy failed: {err:#}");
        let version = &self.release.version;
        let switched = self
            .edge
            .model()
            .ok()
            .and_then(|m| slots::routing_of(&m))
            .is_some_and(|r| r.primary == self.target_slot);
        if switched {
            undo_switch(sh, self.ctx, self.edge, self.target_slot, self.old)?;
        } else if let Err(stop) = self.ctx.target.stop_services(&self.target_slot.services()) {
            eprintln!("could not stop slot {}: {stop:#}", self.target_slot);
        }
        self.record(Outcome::Failed, 0, Some(format!("{err:#}")))?;
        Err(err.context(format!(
            "deploy of {version} failed; traffic stays on the previous release"
        )))
    }
}
