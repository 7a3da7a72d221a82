//! Changing the live slot's replicas of one service — what `cargo xtask scale` and `autoscale` both run,
//! with the deploy lock held by the caller.
//!
//! Out: compose adds containers of the slot's service (`up --no-recreate --scale`, with the slot overlay a
//! deploy uses and the images the slot runs), then the command waits until each is healthy and registered
//! `ready`, and the edge lists them. In: the instances with the fewest live games are chosen, taken out of
//! the edge's members first (no new connections), stopped with their stop signal (SIGTERM: the runtime
//! drains, telling players to reconnect — they resume on the others, game state being in Redis) within
//! the container's stop grace period, removed, and the edge reconciled again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use super::choose::scale_in_victims;
use super::follow::{instances_now, reconcile};
use super::live_stack::{LiveStack, ServiceKind};
use super::membership::Instance;
use crate::deploy::{Ctx, Outcome, ScaleDraft, Snapshot};

/// What a scale did (or would do, with `dry_run`).
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    pub service: ServiceKind,
    /// The compose service scaled (`websocket-blue`, or `websocket` unslotted).
    pub compose_service: String,
    /// The live slot, or `unslotted`.
    pub slot: String,
    pub from: u32,
    pub to: u32,
    pub dry_run: bool,
    /// Why (an operator's scale, or the autoscaler's reason).
    pub reason: String,
    /// Containers started, by name.
    pub added: Vec<String>,
    /// Instances drained and removed, with what they carried when chosen.
    pub removed: Vec<Removed>,
    /// Seconds from the start of the scale until every instance was serving (out) or gone (in).
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub container: String,
    pub live_games: u64,
    pub connections: u64,
    /// Seconds from its stop signal until it had exited.
    pub drain_seconds: f64,
}

/// `--replicas` for either engine: at least 1.
pub fn check_replicas(replicas: u32) -> anyhow::Result<()> {
    if replicas == 0 {
        bail!("--replicas: must be at least 1 (a service with no instance serves nobody), got 0");
    }
    Ok(())
}

/// Scales `kind` on the live stack to `replicas`. The caller holds the deploy lock (`ctx.lock`), so every
/// container start/stop and edge swap here is fenced.
pub fn set_replicas(
    ctx: &Ctx,
    sh: &Shell,
    kind: ServiceKind,
    replicas: u32,
    dry_run: bool,
    reason: &str,
) -> anyhow::Result<ScaleReport> {
    check_replicas(replicas)?;
    let started = Instant::now();
    let snapshot = ctx.target.snapshot()?;
    if let Some(why) = mid_release(ctx, &snapshot)? {
        bail!("scale refused: {why}");
    }
    let edge = ctx.target.edge_in(&snapshot)?;
    let model = edge.model()?;
    let live = LiveStack::of(&model, ctx.target.live(&model, &snapshot.containers))?;
    let service = live.service(kind);
    let running: Vec<Instance> = instances_now(ctx, &snapshot)?
        .into_iter()
        .filter(|i| i.service == service)
        .collect();
    let from = u32::try_from(running.len()).unwrap_or(u32::MAX);
    let mut report = ScaleReport {
        service: kind,
        compose_service: service.clone(),
        slot: live.slot_name(),
        from,
        to: replicas,
        dry_run,
        reason: reason.to_owned(),
        added: Vec::new(),
        removed: Vec::new(),
        seconds: 0.0,
    };
    if replicas == from {
        println!("scale: {service} already runs {from} instance(s); nothing to do");
        return Ok(report);
    }
    let release = live.release(&snapshot.containers)?;
    let outcome = if replicas > from {
        scale_out(
            ctx,
            sh,
            live,
            &service,
            &running,
            replicas,
            dry_run,
            &mut report,
        )
    } else {
        scale_in(
            ctx,
            sh,
            &snapshot,
            &running,
            from - replicas,
            dry_run,
            &mut report,
        )
    };
    report.seconds = started.elapsed().as_secs_f64();
    if dry_run {
        return outcome.map(|()| report);
    }
    let note = format!(
        "{service} {from} → {replicas}: {reason}{}",
        match &outcome {
            Ok(()) => String::new(),
            Err(err) => format!(" — failed: {err:#}"),
        }
    );
    let containers = ctx.target.containers()?;
    ctx.record_scale(
        &containers,
        ScaleDraft {
            release,
            slot: live.slot_name(),
            weight: live.weight,
            outcome: if outcome.is_ok() {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            },
            note,
        },
    )?;
    outcome.map(|()| report)
}

/// A release in flight between commands: a canary between its steps (it holds the lock only while a step
/// runs) or a deploy left unfinished. Scaling then would judge and drain one slot of a split route, inside
/// the canary's verification window; issue 16 asks that scale never runs while a deploy or canary is on.
pub fn mid_release(ctx: &Ctx, snapshot: &Snapshot) -> anyhow::Result<Option<String>> {
    let history = ctx.history(&snapshot.containers)?;
    if let Some(canary) = history.canary_in_progress() {
        return Ok(Some(format!(
            "canary {} is in progress (promote or abort it first: `cargo xtask canary promote|abort`)",
            canary.release.version
        )));
    }
    if let Some(deploy) = history.unfinished_deploy() {
        return Ok(Some(format!(
            "deploy of {} did not finish (`cargo xtask deploy --resume` or `cargo xtask rollback` first)",
            deploy.release.version
        )));
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn scale_out(
    ctx: &Ctx,
    sh: &Shell,
    live: LiveStack,
    service: &str,
    running: &[Instance],
    replicas: u32,
    dry_run: bool,
    report: &mut ScaleReport,
) -> anyhow::Result<()> {
    let snapshot = ctx.target.snapshot()?;
    let release = live.release(&snapshot.containers)?;
    let timeout = ctx.config.deploy.ready_timeout;
    let before: BTreeSet<String> = running.iter().map(|i| i.container_id.clone()).collect();
    if dry_run {
        println!(
            "scale: would start {} more {service} container(s) (compose up --no-recreate --scale \
             {service}={replicas}), wait until healthy and registered ready, then add them to the edge",
            replicas as usize - running.len()
        );
        return Ok(());
    }
    // Ready instances wanted: those ready now plus the ones added (a container already running but not
    // registered is not counted twice, and does not hold the wait hostage).
    let added = replicas as usize - running.len();
    let want_ready = running.iter().filter(|i| i.ready).count() + added;
    let started = ctx
        .target
        .scale_out(sh, live.slot, &release, service, replicas, timeout)
        .with_context(|| format!("{service} did not scale out to {replicas}"))
        .and_then(|()| wait_ready(ctx, service, want_ready, timeout));
    let serving = match started {
        Ok(serving) => serving,
        Err(err) => {
            // What this scale started and never served is stopped again: nothing half-applied is left
            // for the follower to put on the edge later.
            let snapshot = ctx.target.snapshot()?;
            let strays: Vec<String> = snapshot
                .containers
                .iter()
                .filter(|c| c.service == service && !before.contains(&c.id))
                .map(|c| c.id.clone())
                .collect();
            if !strays.is_empty() {
                eprintln!(
                    "scale: stopping the {} container(s) this scale started",
                    strays.len()
                );
                ctx.target
                    .stop_and_remove(&strays)
                    .context("cannot stop the containers a failed scale-out started")?;
            }
            return Err(err);
        }
    };
    report.added = serving
        .iter()
        .filter(|i| !before.contains(&i.container_id))
        .map(|i| i.container_name.clone())
        .collect();
    let snapshot = ctx.target.snapshot()?;
    reconcile(ctx, sh, &snapshot, &BTreeSet::new(), false)?;
    println!(
        "scale: {service} runs {replicas} ready instance(s); added {}",
        report.added.join(", ")
    );
    Ok(())
}

fn scale_in(
    ctx: &Ctx,
    sh: &Shell,
    snapshot: &Snapshot,
    running: &[Instance],
    count: u32,
    dry_run: bool,
    report: &mut ScaleReport,
) -> anyhow::Result<()> {
    let victims = scale_in_victims(running, count as usize);
    let excluded: BTreeSet<String> = victims.iter().map(|v| v.container_id.clone()).collect();
    // Ready and reachable by the edge: with none of those left, the edge would fall back to the service's
    // DNS name, which still lists the instances being drained.
    let remaining_ready = running
        .iter()
        .filter(|i| i.ready && i.address.is_some() && !excluded.contains(&i.container_id))
        .count();
    if remaining_ready == 0 {
        bail!(
            "cannot scale {} in: no registered ready instance would remain to serve (is the registry \
             reachable? `cargo xtask instances`)",
            report.compose_service
        );
    }
    for victim in &victims {
        println!(
            "scale: {} {} ({} live game(s), {} connection(s))",
            if dry_run { "would drain" } else { "draining" },
            victim.container_name,
            victim.live_games,
            victim.connections
        );
    }
    if dry_run {
        return Ok(());
    }
    // Out of the edge first: no new connection reaches an instance about to drain.
    reconcile(ctx, sh, snapshot, &excluded, false)
        .context("cannot take the chosen instances out of the edge")?;
    let ids: Vec<String> = victims.iter().map(|v| v.container_id.clone()).collect();
    let stop_started = Instant::now();
    ctx.target
        .stop_and_remove(&ids)
        .context("the drained instances did not stop")?;
    let drain_seconds = stop_started.elapsed().as_secs_f64();
    report.removed = victims
        .iter()
        .map(|v| Removed {
            container: v.container_name.clone(),
            live_games: v.live_games,
            connections: v.connections,
            drain_seconds,
        })
        .collect();
    let snapshot = ctx.target.snapshot()?;
    reconcile(ctx, sh, &snapshot, &BTreeSet::new(), false)?;
    Ok(())
}

/// Waits until `replicas` containers of `service` run healthy and registered `ready`.
fn wait_ready(
    ctx: &Ctx,
    service: &str,
    replicas: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Instance>> {
    let deadline = Instant::now() + timeout;
    loop {
        let snapshot = ctx.target.snapshot()?;
        let healthy: BTreeMap<&str, bool> = snapshot
            .containers
            .iter()
            .filter(|c| c.service == service)
            .map(|c| (c.id.as_str(), c.healthy()))
            .collect();
        let ready: Vec<Instance> = instances_now(ctx, &snapshot)?
            .into_iter()
            .filter(|i| {
                i.service == service
                    && i.ready
                    && healthy.get(i.container_id.as_str()) == Some(&true)
            })
            .collect();
        if ready.len() >= replicas {
            return Ok(ready);
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {replicas} {service} instance(s) healthy and registered ready after {}s (see \
                 `cargo xtask instances`)",
                ready.len(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
