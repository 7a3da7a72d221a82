//! Runs a plan's actions against the target, printing each as it starts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xshell::Shell;

use super::analysis::Verdict;
use super::context::Ctx;
use super::plan::Action;
use super::slots::{self, Slot};
use super::target::{Edge, KeptContainer};
use super::watch::{Judgment, watch};
use crate::nginx;

/// How a plan run ended.
pub enum Ran {
    Done,
    /// A verification judged the new slot bad (its judgment attached); nothing after it ran.
    VerificationFailed(Judgment),
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
    for (index, action) in actions.iter().enumerate() {
        let started = Instant::now();
        println!("[{}/{total}] {action}", index + 1);
        match action {
            Action::StartSlot {
                slot,
                release,
                timeout_seconds,
            } => {
                ctx.target.start_slot(
                    sh,
                    *slot,
                    release,
                    extra_env,
                    Duration::from_secs(*timeout_seconds),
                )?;
            }
            Action::RestartSlot {
                slot,
                timeout_seconds,
                containers,
            } => {
                staged = restart_and_stage_next(
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
                let judgment = watch(
                    &ctx.target,
                    edge,
                    &ctx.config,
                    *slot,
                    None,
                    Duration::from_secs(*window_seconds),
                )?;
                judgment.print();
                match judgment.verdict {
                    Verdict::Fail { .. } => return Ok(Ran::VerificationFailed(judgment)),
                    // Verification after a full switch: real traffic plus the probe should always give data;
                    // a slot that serves nothing is not verified either.
                    Verdict::Inconclusive { .. } => return Ok(Ran::VerificationFailed(judgment)),
                    Verdict::Pass => {}
                }
            }
            Action::DrainAndStop { slot, wait_seconds } => {
                std::thread::sleep(Duration::from_secs(*wait_seconds));
                ctx.target
                    .stop_services(&slot.services())
                    .with_context(|| format!("stopping slot {slot}"))?;
            }
            Action::DrainAndStopUnslotted { wait_seconds } => {
                std::thread::sleep(Duration::from_secs(*wait_seconds));
                let services: Vec<String> = slots::UNSLOTTED_SERVICES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
                ctx.target.stop_services(&services)?;
            }
        }
        println!("      done in {:.1}s", started.elapsed().as_secs_f64());
    }
    Ok(Ran::Done)
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
