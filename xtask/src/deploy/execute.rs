//! Runs a plan's actions against the target, printing each as it starts.
//!
//! Between actions, and inside the long waits (a slot starting, a verification window, a drain), the run
//! looks at SIGINT/SIGTERM and at the deploy lock's lease (interrupt.rs): a stop comes back as
//! [`StoppedAt`], naming the step, for the command to clean up after. An edge swap is never cut short.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xshell::Shell;

use super::analysis::Verdict;
use super::context::Ctx;
use super::interrupt::{self, Stopped};
use super::plan::Action;
use super::slots::{self, Slot};
use super::target::{Edge, KeptContainer, Target};
use super::watch::{Judgment, watch};
use crate::nginx;

/// How a plan run ended.
pub enum Ran {
    Done,
    /// A verification judged the new slot bad (its judgment attached); nothing after it ran.
    VerificationFailed(Judgment),
}

/// A run stopped early by an interrupt or a lost lease: at which action, which had not finished.
#[derive(Debug)]
pub struct StoppedAt {
    pub stopped: Stopped,
    /// `start`, `switch`, `verify` or `drain` (what operators and the ledger call the steps): the action
    /// that was running, or the one that had just finished when the stop was noticed.
    pub step: &'static str,
    /// Actions before this index finished; the rest did not run (or did not finish).
    pub index: usize,
}

impl fmt::Display for StoppedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at step {}", self.stopped, self.step)
    }
}

impl std::error::Error for StoppedAt {}

/// The step an action belongs to, as the runbooks name them.
pub fn step_name(action: &Action) -> &'static str {
    match action {
        Action::StartSlot { .. } | Action::RestartSlot { .. } => "start",
        Action::Route { .. } | Action::RouteUnslotted => "switch",
        Action::Verify { .. } => "verify",
        Action::DrainAndStop { .. } | Action::DrainAndStopUnslotted { .. } => "drain",
    }
}

/// An action's error as a stop when the command was told to stop (the error may be a Docker child's
/// that shared the terminal's Ctrl-C), else as it is.
fn stop_or_error(err: anyhow::Error, action: &Action, index: usize) -> anyhow::Error {
    let stopped = match err.downcast_ref::<Stopped>() {
        Some(stopped) => Some(stopped.clone()),
        None => interrupt::requested().then_some(Stopped::Interrupted),
    };
    match stopped {
        Some(stopped) => anyhow::Error::new(StoppedAt {
            stopped,
            step: step_name(action),
            index,
        }),
        None => err,
    }
}

pub fn execute(
    sh: &Shell,
    ctx: &Ctx,
    edge: &Edge,
    actions: &[Action],
    extra_env: &BTreeMap<String, String>,
) -> anyhow::Result<Ran> {
    let total = actions.len();
    // A route staged (rendered, sent, `nginx -t`) while the slot before it was starting.
    let mut staged: Option<(&Action, nginx::PendingReload)> = None;
    let stop = |stopped, action, index| {
        anyhow::Error::new(StoppedAt {
            stopped,
            step: step_name(action),
            index,
        })
    };
    if let (Some(first), Err(stopped)) = (actions.first(), interrupt::checkpoint(ctx.holding())) {
        return Err(stop(stopped, first, 0));
    }
    for (index, action) in actions.iter().enumerate() {
        let started = Instant::now();
        println!("[{}/{total}] {action}", index + 1);
        match run_action(sh, ctx, edge, actions, index, extra_env, &mut staged) {
            Ok(None) => {}
            Ok(Some(ran)) => return Ok(ran),
            Err(err) => return Err(stop_or_error(err, action, index)),
        }
        println!("      done in {:.1}s", started.elapsed().as_secs_f64());
        // A stop that arrived during an action that cannot be cut short (an edge swap) is named after it:
        // "interrupted at switch", with the switch done.
        if index + 1 < total
            && let Err(stopped) = interrupt::checkpoint(ctx.holding())
        {
            return Err(stop(stopped, action, index + 1));
        }
    }
    Ok(Ran::Done)
}

fn run_action<'a>(
    sh: &Shell,
    ctx: &Ctx,
    edge: &Edge,
    actions: &'a [Action],
    index: usize,
    extra_env: &BTreeMap<String, String>,
    staged: &mut Option<(&'a Action, nginx::PendingReload)>,
) -> anyhow::Result<Option<Ran>> {
    let action = &actions[index];
    {
        match action {
            Action::StartSlot {
                slot,
                release,
                timeout_seconds,
            } => {
                let timeout = Duration::from_secs(*timeout_seconds);
                let started = interrupt::wait_for(
                    ctx.holding(),
                    || {
                        // xshell's Shell is not shared across threads; this one runs only `compose up`.
                        let sh = Shell::new()?;
                        sh.change_dir(crate::project::root());
                        ctx.target
                            .start_slot(&sh, *slot, release, extra_env, timeout)
                    },
                    // `compose up --wait` returns once the containers it waits for are stopped.
                    || {
                        if let Err(err) = ctx.target.stop_services(&slot.services()) {
                            eprintln!("could not stop slot {slot} yet: {err:#}");
                        }
                    },
                );
                match started {
                    Ok(result) => result?,
                    Err((stopped, _)) => return Err(anyhow::Error::new(stopped)),
                }
            }
            Action::RestartSlot {
                slot,
                timeout_seconds,
                containers,
            } => {
                *staged = restart_and_stage_next(
                    ctx,
                    edge,
                    containers,
                    Duration::from_secs(*timeout_seconds),
                    actions.get(index + 1),
                )
                .with_context(|| format!("slot {slot} did not come back"))?;
            }
            Action::Route { routing, keep_idle } => match staged.take() {
                Some((for_action, pending)) if std::ptr::eq(for_action, action) => {
                    edge.finish(sh, pending)?;
                }
                _ => {
                    edge.route(sh, *routing, *keep_idle)?;
                }
            },
            Action::RouteUnslotted => {
                let mut model = edge.model()?;
                model.slots = crate::nginx::EdgeModel::default().slots;
                model.canary.slot = None;
                edge.apply(sh, &model)?;
            }
            Action::Verify {
                slot,
                window_seconds,
                ..
            } => {
                let judgment = verify(ctx, edge, *slot, Duration::from_secs(*window_seconds))?;
                judgment.print();
                match judgment.verdict {
                    Verdict::Fail { .. } => return Ok(Some(Ran::VerificationFailed(judgment))),
                    // Verification after a full switch: real traffic plus the probe should always give data;
                    // a slot that serves nothing is not verified either.
                    Verdict::Inconclusive { .. } => {
                        return Ok(Some(Ran::VerificationFailed(judgment)));
                    }
                    Verdict::Pass => {}
                }
            }
            Action::DrainAndStop { slot, wait_seconds } => {
                interrupt::sleep(Duration::from_secs(*wait_seconds), ctx.holding())?;
                ctx.target
                    .stop_services(&slot.services())
                    .with_context(|| format!("stopping slot {slot}"))?;
            }
            Action::DrainAndStopUnslotted { wait_seconds } => {
                interrupt::sleep(Duration::from_secs(*wait_seconds), ctx.holding())?;
                let services: Vec<String> = slots::UNSLOTTED_SERVICES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                ctx.target.stop_services(&services)?;
            }
        }
    }
    Ok(None)
}

/// The verification window on a thread of its own, waited for while the interrupt and the lease are
/// watched: a stop leaves the window behind (its probe only reads), so it is not waited out.
fn verify(ctx: &Ctx, edge: &Edge, slot: Slot, window: Duration) -> anyhow::Result<Judgment> {
    let (sender, judged) = mpsc::channel();
    let target = Target {
        docker: ctx.target.docker.clone(),
        env: ctx.target.env,
        project: ctx.target.project.clone(),
        holding: ctx.target.holding.clone(),
    };
    let (edge, config) = (edge.clone(), ctx.config.clone());
    std::thread::spawn(move || {
        let _ = sender.send(watch(&target, &edge, &config, slot, None, window));
    });
    loop {
        match judged.recv_timeout(Duration::from_millis(100)) {
            Ok(judgment) => return judgment,
            Err(mpsc::RecvTimeoutError::Timeout) => interrupt::checkpoint(ctx.holding())?,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the verification thread ended without a judgment")
            }
        }
    }
}

/// Starts a kept slot and, while its containers pass their checks, stages the route that follows (its
/// model read while the containers start), so that only the swap and the signal wait for the slot: a
/// rollback's clock. A route that cannot be staged early is staged again in its turn.
fn restart_and_stage_next<'a>(
    ctx: &Ctx,
    edge: &Edge,
    containers: &[KeptContainer],
    timeout: Duration,
    next: Option<&'a Action>,
) -> anyhow::Result<Option<(&'a Action, nginx::PendingReload)>> {
    let Some(next @ Action::Route { routing, keep_idle }) = next else {
        return ctx
            .target
            .restart_kept(containers, timeout, || ())
            .0
            .map(|()| None);
    };
    std::thread::scope(|scope| {
        let model = scope.spawn(|| {
            edge.model()
                .map(|live| slots::edge_model(&live, *routing, *keep_idle))
        });
        let (ready, early) = ctx.target.restart_kept(containers, timeout, || {
            // Staged once every service has a started container: `nginx -t` resolves their names.
            let model = model
                .join()
                .map_err(|_| anyhow::anyhow!("the thread reading the edge model panicked"))??;
            edge.stage(&model)
        });
        ready?;
        Ok(match early {
            Some(Ok(pending)) => Some((next, pending)),
            Some(Err(err)) => {
                eprintln!(
                    "note: the next route could not be staged early ({err:#}); it is staged in its turn"
                );
                None
            }
            None => None,
        })
    })
}

/// Undo a switch to `new`: everything back to `old` (or the unslotted services), then stop `new`.
pub fn undo_switch(
    sh: &Shell,
    ctx: &Ctx,
    edge: &Edge,
    new: Slot,
    old: Option<Slot>,
) -> anyhow::Result<()> {
    let actions = match old {
        Some(old) => vec![
            Action::Route {
                routing: slots::Routing::all_to(old),
                keep_idle: None,
            },
            Action::DrainAndStop {
                slot: new,
                wait_seconds: ctx.config.deploy.drain.as_secs(),
            },
        ],
        None => vec![
            Action::RouteUnslotted,
            Action::DrainAndStop {
                slot: new,
                wait_seconds: ctx.config.deploy.drain.as_secs(),
            },
        ],
    };
    println!(
        "undoing: traffic back to {}",
        old.map_or("the unslotted services".to_owned(), |s| format!("slot {s}"))
    );
    execute(sh, ctx, edge, &actions, &BTreeMap::new()).map(|_| ())
}
