//! `cargo xtask edge follow [--once | --watch] [--interval 1s] [--dry-run] [--json]`: the edge follows
//! the instance registry. Each tick lists the registered `ready` instances of the services the edge
//! routes to (see [`super::membership`]) and, when that differs from the members the edge lists, renders,
//! `nginx -t`s, swaps and reloads gracefully (old workers keep their WebSockets), then verifies — fenced
//! under the deploy lock like every edge change. A tick while a deploy, canary or scale holds the lock is
//! skipped: the lock is read, never broken.
//!
//! A command group of its own (`edge`) rather than under `nginx`: the `nginx` module renders and reloads
//! trees and is what deploy builds on; the follower needs the deploy target, its lock and the registry,
//! and putting it there would make `nginx` import `deploy` back (an import loop, docs/architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use xshell::Shell;

use super::membership::{self, Instance};
use crate::deploy::{Ctx, DeployLock, Snapshot, TargetArgs};

#[derive(Args, Debug)]
pub struct Follow {
    #[command(flatten)]
    target: TargetArgs,
    /// One reconcile, then exit (the default).
    #[arg(long, conflicts_with = "watch")]
    once: bool,
    /// Reconcile every --interval until stopped (the systemd unit's mode).
    #[arg(long)]
    watch: bool,
    /// Time between reconciles with --watch (humantime: `1s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Print the membership change a reconcile would make; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per reconcile that changed (or would change) something, or was skipped.
    #[arg(long)]
    json: bool,
}

/// What one reconcile did.
#[derive(Debug, Clone, Serialize)]
pub struct FollowReport {
    /// RFC 3339.
    pub at: String,
    /// Why nothing was looked at (the deploy lock is held), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Whether the edge's members changed (or would, with --dry-run).
    pub changed: bool,
    pub dry_run: bool,
    /// Members by service after this reconcile (a service without members is on its DNS name).
    pub members: BTreeMap<String, Vec<String>>,
    /// `service ip:port` entries added and removed.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The config id the edge serves after the reload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_id: Option<String>,
}

impl FollowReport {
    fn new(dry_run: bool) -> Self {
        Self {
            at: crate::deploy::now_rfc3339(),
            skipped: None,
            changed: false,
            dry_run,
            members: BTreeMap::new(),
            added: Vec::new(),
            removed: Vec::new(),
            config_id: None,
        }
    }

    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        if let Some(why) = &self.skipped {
            println!("follow: skipped: {why}");
        } else if self.changed {
            let verb = if self.dry_run {
                "would change"
            } else {
                "changed"
            };
            println!(
                "follow: edge members {verb}: +[{}] -[{}]{}",
                self.added.join(", "),
                self.removed.join(", "),
                self.config_id
                    .as_deref()
                    .map_or(String::new(), |id| format!(" (config {id})"))
            );
        } else {
            println!(
                "follow: edge members up to date ({})",
                describe(&self.members)
            );
        }
        Ok(())
    }
}

impl Follow {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let ctx = Ctx::new(&self.target)?;
        loop {
            match follow_tick(&ctx, sh, self.dry_run) {
                Ok(report) => {
                    if report.changed || report.skipped.is_some() || !self.watch {
                        report.print(self.json)?;
                    }
                }
                // A watcher outlives an engine hiccup; a single run reports it.
                Err(err) if self.watch => eprintln!("follow: {err:#}"),
                Err(err) => return Err(err),
            }
            if !self.watch {
                return Ok(());
            }
            std::thread::sleep(self.interval);
        }
    }
}

/// One reconcile on its own: skipped while anyone holds the deploy lock; the lock is taken only to
/// apply a change (so the swap is fenced), and the membership is computed again under it.
pub fn follow_tick(ctx: &Ctx, sh: &Shell, dry_run: bool) -> anyhow::Result<FollowReport> {
    if let Some(held) = DeployLock::observe(&ctx.target.docker, &ctx.target.project)? {
        let mut report = FollowReport::new(dry_run);
        report.skipped = Some(format!("the deploy lock is held by {}", held.describe()));
        return Ok(report);
    }
    let snapshot = ctx.target.snapshot()?;
    let mut preview = reconcile(ctx, sh, &snapshot, &BTreeSet::new(), true)?;
    preview.dry_run = dry_run;
    if !preview.changed || dry_run {
        return Ok(preview);
    }
    let lock = match ctx.lock(&snapshot.containers, "edge follow") {
        Ok(lock) => lock,
        Err(err) => {
            let mut report = FollowReport::new(dry_run);
            report.skipped = Some(format!("{err:#}"));
            return Ok(report);
        }
    };
    let snapshot = ctx.target.snapshot()?;
    let applied = reconcile(ctx, sh, &snapshot, &BTreeSet::new(), false);
    lock.release()?;
    applied
}

/// Brings the edge's members in line with the registry, leaving out `excluded` container ids. The
/// caller holds the deploy lock (or `preview` is set: nothing changes).
pub fn reconcile(
    ctx: &Ctx,
    sh: &Shell,
    snapshot: &Snapshot,
    excluded: &BTreeSet<String>,
    preview: bool,
) -> anyhow::Result<FollowReport> {
    let edge = ctx.target.edge_in(snapshot)?;
    let model = edge.model()?;
    let found = instances_now(ctx, snapshot)?;
    let desired = membership::desired_members(&model, &found, excluded);
    let mut report = FollowReport::new(preview);
    let (added, removed) = membership::difference(&model.members, &desired);
    report.members = desired.clone();
    let Some(next) = membership::with_members(&model, desired) else {
        report.members = model.members.clone();
        return Ok(report);
    };
    report.changed = true;
    report.added = added;
    report.removed = removed;
    if !preview {
        let reloaded = edge
            .apply(sh, &next)
            .context("the edge's new membership did not go live")?;
        report.config_id = Some(reloaded.config_id);
    }
    Ok(report)
}

/// `websocket-blue: 2 members, …`, or that every service is on its DNS name.
fn describe(members: &BTreeMap<String, Vec<String>>) -> String {
    if members.is_empty() {
        return "no members: every service on its DNS name".to_owned();
    }
    members
        .iter()
        .map(|(service, addresses)| format!("{service}: {}", addresses.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The running api/websocket instances and their registrations, now.
pub fn instances_now(ctx: &Ctx, snapshot: &Snapshot) -> anyhow::Result<Vec<Instance>> {
    let records = crate::instances::registry_read::read(&ctx.target)
        .context("cannot read the instance registry")?;
    let edge_networks = snapshot
        .containers
        .iter()
        .find(|c| c.service == "nginx" && c.running())
        .map(|c| c.networks.clone())
        .unwrap_or_default();
    Ok(membership::instances(
        &snapshot.containers,
        &records,
        &edge_networks,
    ))
}
