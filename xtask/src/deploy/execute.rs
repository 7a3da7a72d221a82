//! Runs a plan's actions against the target, printing each as it starts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use xshell::Shell;

use super::analysis::Verdict;
use super::context::Ctx;
use super::plan::Action;
use super::slots::{self, Slot};
use super::target::Edge;
use super::watch::{Judgment, watch};

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
                ctx.target
                    .restart_kept(containers, Duration::from_secs(*timeout_seconds))
                    .with_context(|| format!("slot {slot} did not come back"))?;
            }
            Action::Route { routing, keep_idle } => {
                edge.route(sh, *routing, *keep_idle)?;
            }
            Action::RouteUnslotted => {
                let mut model = edge.model()?;
                model.slots = crate::nginx::EdgeModel::default().slots;
                model.canary.slot = None;
                edge.apply(sh, &model)?;
            }
            Action::Verify {
                slot,
                window_seconds,
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
