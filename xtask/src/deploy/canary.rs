//! `cargo xtask canary start|status|step|promote|abort`: the idle slot takes a sticky share of users,
//! stepped by a plan from deploy/deploy.toml; every step is judged against the stable slot.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use xshell::Shell;

use super::analysis::{self, Verdict};
use super::context::{Ctx, Draft, TargetArgs};
use super::execute::{Ran, execute, undo_switch};
use super::ledger::{Entry, Event, Outcome, Release};
use super::lock::DeployLock;
use super::plan::{self, Action, Live};
use super::slots::{self, Routing, Slot};
use super::target::Edge;
use super::watch::watch;
use super::{ReleaseArgs, parse_env_pair, preflight};

#[derive(Subcommand, Debug)]
pub enum Canary {
    /// Start the release on the idle slot and walk the plan's steps, judging each (stops when a judgment
    /// is inconclusive, aborts by itself when one fails).
    Start(StartCmd),
    /// Weights, plan position and the figures of the last interval per slot.
    Status(StatusCmd),
    /// Judge the current step (again) and move to the next one.
    Step(StepCmd),
    /// Send everyone to the canary now, drain and stop the stable slot.
    Promote(SimpleCmd),
    /// Weight 0 for the canary, drain it, stop it; the ledger marks the release aborted.
    Abort(SimpleCmd),
}

#[derive(Args, Debug)]
pub struct StartCmd {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    release: ReleaseArgs,
    /// Plan name from the deploy config.
    #[arg(long, default_value = "default")]
    plan: String,
    /// Extra environment for the canary's containers, e.g. FAULT_INJECT_5XX_RATE=0.5 (staging rehearsals).
    #[arg(long = "set-env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    set_env: Vec<(String, String)>,
    /// Only start the canary and take the first step; continue with `canary step`.
    #[arg(long)]
    manual: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
pub struct StepCmd {
    #[command(flatten)]
    target: TargetArgs,
    /// Keep going through the remaining steps instead of taking one.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
pub struct SimpleCmd {
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct StatusCmd {
    #[command(flatten)]
    target: TargetArgs,
    /// Seconds of access log to summarise.
    #[arg(long, default_value_t = 60)]
    window: u64,
    #[arg(long)]
    json: bool,
}

impl Canary {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let target = match &self {
            Canary::Start(cmd) => &cmd.target,
            Canary::Status(cmd) => &cmd.target,
            Canary::Step(cmd) => &cmd.target,
            Canary::Promote(cmd) | Canary::Abort(cmd) => &cmd.target,
        };
        if target.engine.is_swarm() {
            anyhow::bail!(crate::swarm::CANARY_REFUSAL);
        }
        match self {
            Canary::Start(cmd) => cmd.run(sh),
            Canary::Status(cmd) => cmd.run(),
            Canary::Step(cmd) => {
                let state = State::load(&cmd.target)?;
                let _lock = state.lock("canary step")?;
                advance(sh, &state, cmd.all)
            }
            Canary::Promote(cmd) => {
                let state = State::load(&cmd.target)?;
                let _lock = state.lock("canary promote")?;
                promote(sh, &state)
            }
            Canary::Abort(cmd) => {
                let state = State::load(&cmd.target)?;
                let _lock = state.lock("canary abort")?;
                abort(sh, &state, "aborted by hand".to_owned())
            }
        }
    }
}

/// Aborts the canary in progress (under the lock): what a pipeline's failure step does with a canary
/// its run left taking a share of users.
pub fn abort_in_progress(sh: &Shell, target: &TargetArgs, why: String) -> anyhow::Result<()> {
    let state = State::load(target)?;
    let _lock = state.lock("canary abort")?;
    abort(sh, &state, why)
}

/// A canary in progress, from the ledger and the live edge.
struct State {
    ctx: Ctx,
    edge: Edge,
    containers: Vec<super::target::ContainerInfo>,
    stable: Slot,
    canary: Slot,
    weight: u8,
    /// Whether the current weight still needs a passing judgment before the next step.
    pending: bool,
    plan_name: String,
    release: Release,
}

impl State {
    fn load(args: &TargetArgs) -> anyhow::Result<Self> {
        let ctx = Ctx::new(args)?;
        let containers = ctx.target.containers()?;
        let edge = ctx.target.edge()?;
        let history = ctx.history(&containers)?;
        let entry: &Entry = history
            .canary_in_progress()
            .context("no canary in progress (see `cargo xtask releases`)")?;
        let canary = Slot::parse(&entry.slot).context("the ledger names an unknown slot")?;
        let routing = slots::routing_of(&edge.model()?).context("the edge routes to no slot")?;
        let weight = routing.weight_of(canary);
        Ok(Self {
            stable: canary.other(),
            canary,
            weight,
            pending: entry.event == Event::CanaryStep && entry.outcome == Outcome::Started,
            plan_name: entry.plan.clone().unwrap_or_else(|| "default".to_owned()),
            release: entry.release.clone(),
            ctx,
            edge,
            containers,
        })
    }

    fn lock(&self, command: &str) -> anyhow::Result<DeployLock> {
        self.ctx.lock(&self.containers, command)
    }

    fn record(
        &self,
        event: Event,
        weight: u8,
        outcome: Outcome,
        note: Option<String>,
    ) -> anyhow::Result<Entry> {
        self.ctx.record(
            &self.containers,
            Draft {
                event,
                release: self.release.clone(),
                slot: self.canary,
                weight,
                outcome,
                note,
                plan: Some(self.plan_name.clone()),
            },
        )
    }

    fn route(&self, sh: &Shell, weight: u8) -> anyhow::Result<()> {
        let routing = Routing {
            primary: self.stable,
            canary: Some((self.canary, weight)),
        };
        println!("canary: route {}", routing.describe());
        self.edge.route(sh, routing, None).map(|_| ())
    }
}

impl StartCmd {
    fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let ctx = Ctx::new(&self.target)?;
        let plan = ctx.config.plan(&self.plan)?.clone();
        let (version, api_image, ws_image) = self.release.resolve()?;
        let containers = ctx.target.containers()?;
        let edge = ctx.target.edge()?;
        let model = edge.model()?;
        let Live::Slot(stable) = ctx.target.live(&model, &containers) else {
            bail!(
                "a canary needs a slotted stack with a live slot; run `cargo xtask deploy` once first"
            );
        };
        // A slot kept in the upstreams at 0 % (a rollback that stopped on its verification leaves the slot
        // it left there) is no canary: like a deploy, a canary replaces it.
        if slots::routing_of(&model).is_some_and(|r| r.canary.is_some_and(|(_, w)| w > 0))
            || ctx.history(&containers)?.canary_in_progress().is_some()
        {
            bail!(
                "a canary is already in progress: `cargo xtask canary status`, then step, promote or abort it"
            );
        }
        let canary = stable.other();
        let extra_env: BTreeMap<String, String> = self.set_env.iter().cloned().collect();
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
        let release = ctx.release(sh, &version, &api_image, &ws_image, canary, &extra_env)?;
        preflight::check_config(
            &ctx.target.effective(sh, &release)?,
            ctx.target.engine_is_remote(),
        )?;
        preflight::check_disk(&ctx.target, ctx.config.deploy.min_free_disk_mib)?;
        println!(
            "canary {version} on slot {canary} against stable slot {stable}, plan {:?}:",
            self.plan
        );
        println!(
            "  1. start slot {canary} with {version} (config {}) and wait until healthy",
            release.config_digest
        );
        for (i, step) in plan.steps.iter().enumerate() {
            println!(
                "  {}. route {}% of users to {canary} (sticky per user), watch {}s, judge against {stable}",
                i + 2,
                step.weight,
                step.pause.as_secs()
            );
        }
        println!(
            "  {}. promote: everyone on {canary}, verified for {}s like a deploy (a failed judgment puts \
             everyone back on {stable}); then drain and stop {stable} (kept for rollback)",
            plan.steps.len() + 2,
            ctx.config.deploy.verify_window.as_secs()
        );
        println!(
            "  a failed judgment aborts: weight 0, drain {canary}, ledger marked; inconclusive pauses"
        );
        if self.dry_run {
            println!("dry run: nothing was changed");
            return Ok(());
        }
        let lock = ctx.lock(&containers, "canary start")?;
        let timeout = ctx.config.deploy.ready_timeout.as_secs();
        let start = [Action::StartSlot {
            slot: canary,
            release: release.clone(),
            timeout_seconds: timeout,
        }];
        if let Err(err) = execute(sh, &ctx, &edge, &start, &extra_env) {
            let _ = ctx.target.stop_services(&canary.services());
            ctx.record(
                &containers,
                Draft {
                    event: Event::CanaryStart,
                    release,
                    slot: canary,
                    weight: 0,
                    outcome: Outcome::Failed,
                    note: Some(format!("{err:#}")),
                    plan: Some(self.plan.clone()),
                },
            )?;
            return Err(err);
        }
        ctx.record(
            &containers,
            Draft {
                event: Event::CanaryStart,
                release: release.clone(),
                slot: canary,
                weight: 0,
                outcome: Outcome::Started,
                note: None,
                plan: Some(self.plan.clone()),
            },
        )?;
        let state = State {
            ctx,
            edge,
            containers,
            stable,
            canary,
            weight: 0,
            pending: false,
            plan_name: self.plan,
            release,
        };
        let result = advance(sh, &state, !self.manual);
        drop(lock);
        result
    }
}

/// Judges the pending step if any, then moves up the plan, one step or (with `all`) to the end.
fn advance(sh: &Shell, state: &State, all: bool) -> anyhow::Result<()> {
    let plan = state.ctx.config.plan(&state.plan_name)?.clone();
    let mut weight = state.weight;
    let mut pending = state.pending;
    loop {
        if !pending {
            let Some(next) = plan.steps.iter().find(|s| s.weight > weight) else {
                return promote(sh, state);
            };
            state.route(sh, next.weight)?;
            weight = next.weight;
        }
        let pause = plan
            .steps
            .iter()
            .find(|s| s.weight == weight)
            .map_or(Duration::from_secs(60), |s| s.pause);
        let judgment = watch(
            &state.ctx.target,
            &state.edge,
            &state.ctx.config,
            state.canary,
            Some(state.stable),
            pause,
        )?;
        judgment.print();
        match &judgment.verdict {
            Verdict::Pass => {
                state.record(
                    Event::CanaryStep,
                    weight,
                    Outcome::Succeeded,
                    Some(format!("step {weight}% passed")),
                )?;
                pending = false;
                if weight == 100 {
                    return promote(sh, state);
                }
                if !all {
                    println!(
                        "canary: step {weight}% passed; next: `cargo xtask canary step` (or promote/abort)"
                    );
                    return Ok(());
                }
            }
            Verdict::Inconclusive { reason } => {
                state.record(
                    Event::CanaryStep,
                    weight,
                    Outcome::Started,
                    Some(format!("inconclusive: {reason}")),
                )?;
                println!(
                    "canary: PAUSED at {weight}% — {reason}. No data is not a pass: raise probe.requests_per_second or \
                     wait for traffic, then `cargo xtask canary step` (or abort)"
                );
                return Ok(());
            }
            Verdict::Fail { .. } => {
                abort(
                    sh,
                    state,
                    format!("judgment at {weight}%: {}", judgment.verdict.describe()),
                )?;
                bail!(
                    "canary {} ABORTED automatically at {weight}%: {}",
                    state.release.version,
                    judgment.verdict.describe()
                );
            }
        }
    }
}

/// Everyone on the canary, verified like a deploy; a failed verification undoes the promotion as it
/// undoes a deploy (everyone back on the stable slot, the canary drained and stopped).
fn promote(sh: &Shell, state: &State) -> anyhow::Result<()> {
    let actions = plan::promote_plan(state.stable, state.canary, &state.ctx.config.deploy);
    plan::print(
        &format!(
            "canary: promote {} on slot {} (stable slot {}):",
            state.release.version, state.canary, state.stable
        ),
        &actions,
    );
    let failure = match execute(sh, &state.ctx, &state.edge, &actions, &BTreeMap::new()) {
        Ok(Ran::Done) => None,
        Ok(Ran::VerificationFailed(judgment)) => Some((
            Outcome::RolledBack,
            format!("promotion verification: {}", judgment.verdict.describe()),
        )),
        Err(err) => {
            eprintln!("promotion failed: {err:#}");
            Some((Outcome::Failed, format!("promotion: {err:#}")))
        }
    };
    let Some((outcome, note)) = failure else {
        state.record(Event::CanaryPromote, 100, Outcome::Succeeded, None)?;
        println!(
            "canary: {} promoted and verified; slot {} is live",
            state.release.version, state.canary
        );
        return Ok(());
    };
    let switched = state
        .edge
        .model()
        .ok()
        .and_then(|m| slots::routing_of(&m))
        .is_some_and(|r| r.primary == state.canary);
    if switched {
        undo_switch(
            sh,
            &state.ctx,
            &state.edge,
            state.canary,
            Some(state.stable),
        )?;
    } else {
        // Not switched: only the canary's share goes, as an abort would send it.
        abort_routes(sh, state)?;
    }
    state.record(Event::CanaryPromote, 0, outcome, Some(note.clone()))?;
    bail!(
        "promotion of {} rolled back automatically: {note}; everyone is on slot {} again and slot {} is \
         stopped (see `cargo xtask releases`)",
        state.release.version,
        state.stable,
        state.canary
    )
}

fn abort(sh: &Shell, state: &State, why: String) -> anyhow::Result<()> {
    abort_routes(sh, state)?;
    state.record(Event::CanaryAbort, 0, Outcome::Aborted, Some(why.clone()))?;
    println!(
        "canary: {} aborted ({why}); everyone is on slot {}",
        state.release.version, state.stable
    );
    Ok(())
}

/// Everyone back on the stable slot; the canary drained and stopped.
fn abort_routes(sh: &Shell, state: &State) -> anyhow::Result<()> {
    let drain = state.ctx.config.deploy.drain.as_secs();
    let actions = [
        Action::Route {
            routing: Routing::all_to(state.stable),
            keep_idle: None,
        },
        Action::DrainAndStop {
            slot: state.canary,
            wait_seconds: drain,
        },
    ];
    execute(sh, &state.ctx, &state.edge, &actions, &BTreeMap::new()).map(|_| ())
}

#[derive(Serialize)]
struct StatusReport {
    routing: Option<Routing>,
    canary: Option<Entry>,
    window_seconds: u64,
    stats: BTreeMap<String, analysis::SlotStats>,
    verdict: Option<Verdict>,
}

impl StatusCmd {
    fn run(self) -> anyhow::Result<()> {
        let ctx = Ctx::new(&self.target)?;
        let containers = ctx.target.containers()?;
        let edge = ctx.target.edge()?;
        let routing = slots::routing_of(&edge.model()?);
        let canary = ctx.history(&containers)?.canary_in_progress().cloned();
        let now = time::OffsetDateTime::now_utc();
        let since = now - Duration::from_secs(self.window);
        let stats = analysis::stats_by_slot(&analysis::parse_log(
            &ctx.target.access_log(&edge, since)?,
            since,
        ));
        let verdict = routing.and_then(|r| r.canary).map(|(slot, _)| {
            let judged = stats.get(slot.name()).cloned().unwrap_or_default();
            analysis::judge(
                &judged,
                stats.get(slot.other().name()),
                &ctx.config.thresholds,
            )
        });
        let report = StatusReport {
            routing,
            canary,
            window_seconds: self.window,
            stats,
            verdict,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        match (&report.routing, &report.canary) {
            (Some(routing), Some(entry)) => println!(
                "canary {} on slot {} (plan {}): {}; last: {:?} {:?}{}",
                entry.release.version,
                entry.slot,
                entry.plan.as_deref().unwrap_or("default"),
                routing.describe(),
                entry.event,
                entry.outcome,
                entry
                    .note
                    .as_ref()
                    .map(|n| format!(" — {n}"))
                    .unwrap_or_default()
            ),
            (Some(routing), None) => {
                println!("no canary in progress; routing {}", routing.describe())
            }
            _ => println!("no canary in progress; the edge routes to no slot yet"),
        }
        println!("last {}s of the access log:", self.window);
        for (slot, s) in &report.stats {
            println!(
                "  {slot:<6} requests {:>6}  5xx {:>4}  p99 {:>8}  ws handshakes {:>4} failed {:>3}",
                s.requests,
                s.errors_5xx,
                s.p99_ms.map_or("-".to_owned(), |p| format!("{p:.0} ms")),
                s.ws_handshakes,
                s.ws_handshake_failures
            );
        }
        if let Some(verdict) = &report.verdict {
            println!("  judgment now: {}", verdict.describe());
        }
        Ok(())
    }
}
