//! `cargo xtask autoscale --once | --watch [--dry-run] [--json]`: the live autoscaler (issue 16 §4).
//!
//! Every `sync_period`, per service: current = the live stack's registered `ready` instances; demand =
//! CPU millicores and memory MiB summed from `docker stats` of those containers, connections summed from
//! the registry; the policy engine's [`Scaler`] decides (HPA v2 semantics, the same pure module the
//! simulator replays); a change is applied by the very code of `cargo xtask scale` under the deploy lock
//! and recorded in the release ledger with its reason. `--once` keeps the Scaler state beside the ledger
//! (`autoscale-state.json`) so stabilisation windows and rate limits hold across runs; `--watch` keeps it in
//! memory and runs the membership follower every second between evaluations.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::LiveArgs;
use super::policy::{Decision, Demand, Policy, Scaler, Service};
use super::policy_file;
use crate::deploy::{Ctx, DeployLock};
use crate::scale::{self, LiveStack, ServiceKind};

/// The state file's name beside the ledger.
pub const STATE_FILE: &str = "autoscale-state.json";
/// How often `--watch` runs the membership follower between evaluations.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// What the live run is asked to do.
struct LiveRun {
    policy: Policy,
    watch: bool,
    dry_run: bool,
    json: bool,
}

/// One evaluation as printed (`--json`: one object per line).
#[derive(Debug, Serialize)]
struct Printed<'a> {
    at: String,
    #[serde(flatten)]
    decision: &'a Decision,
    /// Ready instances and the summed demand the decision was made on.
    demand: DemandFigures,
    /// Whether the change was applied (false with --dry-run, or when nothing changes).
    applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    /// What the scale did, when applied (as `cargo xtask scale --json` prints it).
    #[serde(skip_serializing_if = "Option::is_none")]
    scale: Option<scale::ScaleReport>,
}

#[derive(Debug, Serialize)]
struct DemandFigures {
    cpu_millicores: f64,
    memory_mib: f64,
    connections: f64,
}

/// Scaler state of both services, persisted between `--once` runs.
#[derive(Deserialize)]
struct State {
    scalers: BTreeMap<String, Scaler>,
}

#[derive(Serialize)]
struct StateRef<'a> {
    scalers: &'a BTreeMap<String, Scaler>,
}

pub fn run(args: LiveArgs) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(crate::project::root());
    let path = if args.policy.is_absolute() {
        args.policy.clone()
    } else {
        crate::project::root().join(&args.policy)
    };
    let run = LiveRun {
        policy: policy_file::load(&path)?,
        watch: args.watch,
        dry_run: args.dry_run,
        json: args.json,
    };
    let ctx = Ctx::new(&args.target)?;
    let sh = &sh;
    let services = [Service::Api, Service::Websocket];
    let mut scalers: BTreeMap<String, Scaler> = if run.watch {
        BTreeMap::new()
    } else {
        load_state(&ctx)?
    };
    for service in services {
        let policy = run.policy.get(service).clone();
        scalers
            .entry(service.to_string())
            .and_modify(|scaler| scaler.set_policy(policy.clone()))
            .or_insert_with(|| Scaler::new(service, policy));
    }
    let mut next_due: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        for service in services {
            let key = service.to_string();
            let due = next_due.get(&key).copied().unwrap_or_else(Instant::now);
            if Instant::now() < due {
                continue;
            }
            next_due.insert(
                key.clone(),
                Instant::now() + run.policy.get(service).sync_period,
            );
            let Some(scaler) = scalers.get_mut(&key) else {
                continue;
            };
            match evaluate(&ctx, sh, service, scaler, &run) {
                Ok(()) => {}
                Err(err) if run.watch => eprintln!("autoscale: {service}: {err:#}"),
                Err(err) => return Err(err),
            }
        }
        if !run.watch {
            if !run.dry_run {
                save_state(&ctx, &scalers)?;
            }
            return Ok(());
        }
        let wake = next_due
            .values()
            .min()
            .copied()
            .unwrap_or_else(Instant::now);
        while Instant::now() < wake {
            match scale::follow_tick(&ctx, sh, run.dry_run) {
                Ok(report) if report.changed => println!(
                    "autoscale: edge members {}: +[{}] -[{}]",
                    if run.dry_run {
                        "would change"
                    } else {
                        "changed"
                    },
                    report.added.join(", "),
                    report.removed.join(", ")
                ),
                Ok(_) => {}
                Err(err) => eprintln!("autoscale: follow: {err:#}"),
            }
            std::thread::sleep(FOLLOW_EVERY.min(wake.saturating_duration_since(Instant::now())));
        }
    }
}

fn kind(service: Service) -> ServiceKind {
    match service {
        Service::Api => ServiceKind::Api,
        Service::Websocket => ServiceKind::Websocket,
    }
}

/// One evaluation of one service, applied unless `--dry-run`.
fn evaluate(
    ctx: &Ctx,
    sh: &Shell,
    service: Service,
    scaler: &mut Scaler,
    run: &LiveRun,
) -> anyhow::Result<()> {
    if let Some(held) = DeployLock::observe(&ctx.target.docker, &ctx.target.project)? {
        println!(
            "autoscale: {service}: skipped, the deploy lock is held by {}",
            held.describe()
        );
        return Ok(());
    }
    let snapshot = ctx.target.snapshot()?;
    if let Some(why) = scale::mid_release(ctx, &snapshot)? {
        println!("autoscale: {service}: skipped, {why}");
        return Ok(());
    }
    let model = ctx.target.edge_in(&snapshot)?.model()?;
    let live = LiveStack::of(&model, ctx.target.live(&model, &snapshot.containers))?;
    let compose_service = live.service(kind(service));
    let running: Vec<scale::Instance> = scale::instances_now(ctx, &snapshot)?
        .into_iter()
        .filter(|i| i.service == compose_service)
        .collect();
    let ready: Vec<scale::Instance> = running.iter().filter(|i| i.ready).cloned().collect();
    if ready.is_empty() {
        println!(
            "autoscale: {service}: no registered ready instance of {compose_service}; nothing to decide on"
        );
        return Ok(());
    }
    let ids: Vec<String> = ready.iter().map(|i| i.container_id.clone()).collect();
    let usage = scale::usage(ctx, &ids)?;
    let demand = Demand {
        cpu_millicores: usage.iter().map(|u| u.cpu_millicores).sum(),
        memory_mib: usage.iter().map(|u| u.memory_mib).sum(),
        connections: ready.iter().map(|i| i.connections as f64).sum(),
    };
    let current = u32::try_from(ready.len()).unwrap_or(u32::MAX);
    let now_s = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
    let decision = scaler.evaluate(now_s, current, &demand);
    let changes = decision.to != decision.from;
    let mut applied = false;
    let mut skipped = None;
    let mut report = None;
    if changes && run.dry_run {
        // Nothing happened: the rate limits must not count it.
        scaler.not_applied(&decision);
    } else if changes {
        match ctx.lock(&snapshot.containers, "autoscale") {
            Ok(lock) => {
                let reason = format!("autoscale: {}", decision.reason);
                // The policy decided on ready instances; the scale counts every container of the
                // service (one starting, draining or unregistered too), so the decision is applied as
                // a change, never as an absolute count that would remove more than the policy allows.
                let total = i64::try_from(running.len()).unwrap_or(i64::MAX);
                let target = total + i64::from(decision.to) - i64::from(decision.from);
                let target = u32::try_from(target.max(1)).unwrap_or(u32::MAX);
                let result = scale::set_replicas(ctx, sh, kind(service), target, false, &reason);
                lock.release()?;
                match result {
                    Ok(done) => {
                        report = Some(done);
                        applied = true;
                    }
                    Err(err) => {
                        scaler.not_applied(&decision);
                        return Err(err).with_context(|| {
                            format!("{service} {} → {}", decision.from, decision.to)
                        });
                    }
                }
            }
            Err(err) => {
                scaler.not_applied(&decision);
                skipped = Some(format!("{err:#}"));
            }
        }
    }
    let printed = Printed {
        at: crate::deploy::now_rfc3339(),
        decision: &decision,
        demand: DemandFigures {
            cpu_millicores: demand.cpu_millicores,
            memory_mib: demand.memory_mib,
            connections: demand.connections,
        },
        applied,
        skipped,
        scale: report,
    };
    if run.json {
        println!("{}", serde_json::to_string(&printed)?);
    } else if changes || !run.watch {
        println!(
            "autoscale: {service} {} → {}{}: {} (cpu {:.0}m, memory {:.0}MiB, connections {:.0})",
            decision.from,
            decision.to,
            match (&printed.skipped, applied, run.dry_run) {
                (Some(_), _, _) => " skipped: the deploy lock is held",
                (None, true, _) => " applied",
                (None, false, true) if changes => " (dry run)",
                _ => "",
            },
            decision.reason,
            demand.cpu_millicores,
            demand.memory_mib,
            demand.connections
        );
    }
    Ok(())
}

fn load_state(ctx: &Ctx) -> anyhow::Result<BTreeMap<String, Scaler>> {
    let containers = ctx.target.containers()?;
    let Some(text) = ctx.read_beside_ledger(&containers, STATE_FILE)? else {
        return Ok(BTreeMap::new());
    };
    match serde_json::from_str::<State>(&text) {
        Ok(state) => Ok(state.scalers),
        Err(err) => {
            eprintln!(
                "WARNING: {STATE_FILE} beside the ledger is unreadable ({err}); starting with fresh \
                 stabilisation windows"
            );
            Ok(BTreeMap::new())
        }
    }
}

fn save_state(ctx: &Ctx, scalers: &BTreeMap<String, Scaler>) -> anyhow::Result<()> {
    let containers = ctx.target.containers()?;
    let text = serde_json::to_string(&StateRef { scalers })?;
    ctx.write_beside_ledger(&containers, STATE_FILE, &text)
}
