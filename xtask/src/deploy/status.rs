//! `cargo xtask status`: the release in front of users, the slots and their weights, every container's
//! state and health, maintenance, the last deploy's outcome, the lock — and loud warnings for restart
//! loops and unhealthy containers.

use clap::Args;
use serde::Serialize;

use super::context::{Ctx, TargetArgs};
use super::ledger::{Entry, History};
use super::live::{self, LiveRelease, Situation};
use super::lock::{DeployLock, Liveness, Observed};
use super::slots::{self, Routing};
use super::target::ContainerInfo;

/// Restarts at which a container counts as looping.
pub const RESTART_LOOP_THRESHOLD: u64 = 3;

#[derive(Args, Debug)]
pub struct Status {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    json: bool,
    /// Also write what the edge serves to $GITHUB_OUTPUT (`live_version`, `live_slot`; empty when no slot
    /// is live) — a pipeline records it before a deploy, to roll back to exactly that on a failure.
    #[arg(long)]
    github_output: bool,
    /// Fail unless VERSION takes all traffic and every container of its slot runs and is healthy (the check
    /// after a deploy or a canary).
    #[arg(long, value_name = "VERSION")]
    expect_live: Option<String>,
}

#[derive(Serialize)]
struct Report {
    project: String,
    /// What the edge routes to now (the truth); `live` is the ledger's record of it.
    serving: LiveRelease,
    live: Option<Entry>,
    last: Option<Entry>,
    routing: Option<Routing>,
    maintenance: bool,
    containers: Vec<ContainerInfo>,
    /// The deploy lock: holder, lease, fence, and `liveness.state` `running` or `stale`.
    lock: Option<Observed>,
    /// The edge against the ledger: `consistent` or `unverified`, and an unfinished deploy.
    situation: Option<Situation>,
    warnings: Vec<String>,
}

/// What an operator must look at now.
pub fn warnings(
    containers: &[ContainerInfo],
    last: Option<&Entry>,
    lock: Option<&Observed>,
    situation: Option<&Situation>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for c in containers {
        if c.state == "restarting" || c.restart_count >= RESTART_LOOP_THRESHOLD {
            warnings.push(format!(
                "RESTART LOOP: {} ({}) has restarted {} times and is {}; Docker backs off (100 ms doubling to 1 min) — \
                 read `docker logs {}`",
                c.name, c.service, c.restart_count, c.state, c.name
            ));
        }
        if c.running() && c.health == "unhealthy" {
            warnings.push(format!("UNHEALTHY: {} ({}) fails its healthcheck ({} in a row); `cargo xtask heal` replaces it", c.name, c.service, c.failing_streak));
        }
        if c.state == "exited"
            && c.slot.is_none()
            && !slots::UNSLOTTED_SERVICES.contains(&c.service.as_str())
        {
            warnings.push(format!(
                "STOPPED: {} ({}) is not running",
                c.name, c.service
            ));
        }
    }
    let running = matches!(lock.map(|l| &l.liveness), Some(Liveness::Running { .. }));
    match lock {
        Some(
            held @ Observed {
                liveness: Liveness::Stale { why },
                ..
            },
        ) => warnings.push(format!(
            "STALE LOCK: {} — {why}; `cargo xtask unlock` breaks it",
            held.describe()
        )),
        Some(held) if last.is_some_and(|e| e.outcome == super::ledger::Outcome::Started) => {
            warnings.push(format!(
                "IN PROGRESS: {} is running (ledger #{})",
                held.describe(),
                last.map_or(0, |e| e.seq)
            ));
        }
        _ => {}
    }
    // While a command runs, what it has not finished yet is its business, not an incident.
    if !running && let Some(advice) = situation.and_then(Situation::advice) {
        let kind = match situation {
            Some(Situation::Unverified { .. }) => "UNVERIFIED",
            _ => "UNFINISHED",
        };
        warnings.push(format!("{kind}: {advice}"));
    }
    warnings
}

impl Status {
    pub fn run(self) -> anyhow::Result<()> {
        if self.target.engine.is_swarm() {
            let project = crate::swarm::stack_name(self.target.env, &self.target.project);
            return crate::swarm::status::status(&project, self.json);
        }
        let ctx = Ctx::new(&self.target)?;
        let containers = ctx.target.containers()?;
        let edge = ctx.target.edge().ok();
        let model = edge.as_ref().and_then(|e| e.model().ok());
        let history = ctx.history(&containers).ok();
        let last = history.as_ref().and_then(|h| h.last().cloned());
        let routing = model.as_ref().and_then(slots::routing_of);
        let serving = LiveRelease::of(routing, &containers);
        let situation = history
            .as_ref()
            .map(|h: &History| live::situation(h, &serving));
        let lock = DeployLock::observe(&ctx.target.docker, &ctx.target.project)?;
        if self.github_output {
            let slot = serving.slot.map(|s| s.name()).unwrap_or_default();
            let version = serving.version.as_deref().unwrap_or_default();
            crate::github_output::append(&[("live_version", version), ("live_slot", slot)])?;
        }
        let expectation = self.expect_live.as_ref().map(|expected| {
            (
                expected,
                live::problems_with(&serving, &containers, expected),
            )
        });
        let report = Report {
            project: ctx.target.project.clone(),
            serving,
            live: history.as_ref().and_then(|h| h.live().cloned()),
            warnings: warnings(
                &containers,
                last.as_ref(),
                lock.as_ref(),
                situation.as_ref(),
            ),
            last,
            routing,
            maintenance: model.as_ref().is_some_and(|m| m.maintenance.enabled),
            lock,
            situation,
            containers,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        match expectation {
            Some((expected, problems)) if !problems.is_empty() => anyhow::bail!(
                "{expected} is not live and healthy:\n  - {}",
                problems.join("\n  - ")
            ),
            Some((expected, _)) => {
                eprintln!(
                    "status: {expected} takes all traffic and every container of its slot is healthy"
                );
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn print_report(report: &Report) {
    println!("project     {}", report.project);
    println!("serving     {}", report.serving.describe());
    match &report.live {
        Some(live) => println!(
            "live        {} on slot {} (since {} UTC)",
            live.release.version,
            live.slot,
            super::table_time(live.at)
        ),
        None => println!("live        no release recorded in the ledger"),
    }
    println!(
        "routing     {}",
        report
            .routing
            .map_or("unslotted (api/websocket) or unknown".to_owned(), |r| r
                .describe())
    );
    println!(
        "maintenance {}",
        if report.maintenance { "ON" } else { "off" }
    );
    if let Some(last) = &report.last {
        println!(
            "last        #{} {:?} {} → {:?}{}",
            last.seq,
            last.event,
            last.release.version,
            last.outcome,
            last.note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    if let Some(lock) = &report.lock {
        let fence = lock
            .fence()
            .map_or(String::new(), |f| format!(", fence {f}"));
        let state = match &lock.liveness {
            Liveness::Running { lease_age_seconds } => {
                format!("RUNNING (lease renewed {lease_age_seconds}s ago)")
            }
            Liveness::Stale { why } => format!("STALE ({why})"),
        };
        println!("lock        {state}: {}{fence}", lock.describe());
    }
    println!(
        "\n{:<32} {:<16} {:<6} {:<10} {:<10} {:>8}  RELEASE",
        "CONTAINER", "SERVICE", "SLOT", "STATE", "HEALTH", "RESTARTS"
    );
    for c in &report.containers {
        println!(
            "{:<32} {:<16} {:<6} {:<10} {:<10} {:>8}  {}",
            c.name,
            c.service,
            c.slot.map_or("-".to_owned(), |s| s.to_string()),
            c.state,
            // Docker keeps a stopped container's last health; it says nothing about a stopped one.
            if c.running() { c.health.as_str() } else { "-" },
            c.restart_count,
            c.release.as_deref().unwrap_or("-")
        );
    }
    for warning in &report.warnings {
        eprintln!("\n!!! {warning}");
    }
}
