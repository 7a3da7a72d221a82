//! Maintenance mode, in one home: `cargo xtask maintenance on|off|status` switches it at the edge (nginx
//! answers 503 + Retry-After outside the admin allow-list, /health stays 200, open WebSockets are not cut)
//! and in the apps ([`flag`]: the Redis flag shared with `backup restore`; the API answers 503, the game
//! server starts no new games and tells players). The edge's part is a section of the edge model
//! (`nginx::Maintenance`, rendered by `nginx/`); `status` reports both.

pub mod flag;

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use xshell::Shell;

use crate::container_exec::ContainerRef;
use crate::deploy::{Ctx, TargetArgs};
pub use flag::{FLAG_KEY, MaintenanceFlag, MaintenanceState};

#[derive(Subcommand, Debug)]
pub enum Maintenance {
    /// Turn maintenance on at the edge and in the apps.
    On(OnCmd),
    /// Turn it off in both places.
    Off(OffCmd),
    /// Show both switches.
    Status(StatusCmd),
}

#[derive(Args, Debug)]
pub struct OnCmd {
    #[command(flatten)]
    target: TargetArgs,
    /// Shown to users (HTML page, JSON body, game server notice).
    #[arg(
        long,
        default_value = "Avalon is being upgraded. Games in progress are kept."
    )]
    message: String,
    /// Seconds for the Retry-After header.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    retry_after: u32,
    /// Print what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
pub struct OffCmd {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
pub struct StatusCmd {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    edge: crate::nginx::Maintenance,
    apps: Option<MaintenanceState>,
}

impl Maintenance {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let target = match &self {
            Maintenance::On(cmd) => &cmd.target,
            Maintenance::Off(cmd) => &cmd.target,
            Maintenance::Status(cmd) => &cmd.target,
        };
        if target.engine.is_swarm() {
            let project = crate::swarm::stack_name(target.env, &target.project);
            return match self {
                Maintenance::On(cmd) => crate::swarm::maintenance::set(
                    &project,
                    Some((cmd.message, cmd.retry_after)),
                    cmd.dry_run,
                ),
                Maintenance::Off(cmd) => {
                    crate::swarm::maintenance::set(&project, None, cmd.dry_run)
                }
                Maintenance::Status(cmd) => crate::swarm::maintenance::status(&project, cmd.json),
            };
        }
        match self {
            Maintenance::On(cmd) => set(
                sh,
                &cmd.target,
                Some((cmd.message, cmd.retry_after)),
                cmd.dry_run,
            ),
            Maintenance::Off(cmd) => set(sh, &cmd.target, None, cmd.dry_run),
            Maintenance::Status(cmd) => status(&cmd.target, cmd.json),
        }
    }
}

/// The Redis flag of the stack (redis-cli in its redis container; the password is REDIS_PASSWORD when
/// set, else the container's own Compose secret, never on a command line).
fn flag(ctx: &Ctx) -> anyhow::Result<MaintenanceFlag> {
    MaintenanceFlag::new(
        ctx.target.docker.clone(),
        ContainerRef::ComposeService {
            project: ctx.target.project.clone(),
            service: "redis".to_owned(),
        },
    )
}

fn set(
    sh: &Shell,
    args: &TargetArgs,
    on: Option<(String, u32)>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let ctx = Ctx::new(args)?;
    let edge = ctx.target.edge()?;
    let mut model = edge.model()?;
    let state = match &on {
        Some((message, retry_after)) => {
            model.maintenance.enabled = true;
            model.maintenance.message = message.clone();
            model.maintenance.retry_after = *retry_after;
            MaintenanceState::on(message.clone(), *retry_after)
        }
        None => {
            model.maintenance.enabled = false;
            MaintenanceState::off()
        }
    };
    let word = if on.is_some() { "ON" } else { "OFF" };
    let apps_step = format!(
        "apps: SET avalon:maintenance {} + PUBLISH",
        serde_json::to_string(&state)?
    );
    let edge_step = "edge: render, nginx -t, graceful reload";
    // The edge closes before the apps enter maintenance and opens only after they leave it. In
    // maintenance the API answers 503, and nginx counts an upstream's 503 as a failure (`proxy_next_upstream
    // http_503`, which lets a draining replica pass requests to the others): API traffic reaching apps in
    // maintenance would take every replica out for `fail_timeout` and the edge would answer 502, /health
    // included (seen in the chaos suite with the opposite order).
    let (first, second) = if on.is_some() {
        (edge_step.to_owned(), apps_step)
    } else {
        (apps_step, edge_step.to_owned())
    };
    println!("maintenance {word}: 1. {first}; 2. {second}");
    if dry_run {
        println!("dry run: nothing was changed");
        return Ok(());
    }
    let flag = flag(&ctx)?;
    if on.is_some() {
        edge.apply(sh, &model)?;
        flag.set(&state)?;
    } else {
        flag.set(&state)?;
        // The apps read the flag on a period; opening the edge before they all have would hand users
        // their maintenance 503s for up to that long after this command said OFF.
        let settle = avalon_runtime::maintenance_flag::POLL_EVERY + Duration::from_millis(500);
        println!(
            "maintenance OFF: waiting {:.1}s for every app instance to read the flag",
            settle.as_secs_f64()
        );
        std::thread::sleep(settle);
        edge.apply(sh, &model)?;
    }
    println!("maintenance is {word} at the edge and in the apps");
    Ok(())
}

fn status(args: &TargetArgs, json: bool) -> anyhow::Result<()> {
    let ctx = Ctx::new(args)?;
    let edge = ctx.target.edge()?;
    let apps = match flag(&ctx) {
        Ok(flag) => flag.get()?,
        Err(err) => {
            eprintln!("apps: cannot read the Redis flag: {err:#}");
            None
        }
    };
    let report = Report {
        edge: edge.model()?.maintenance,
        apps,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let on_off = |b: bool| if b { "ON" } else { "off" };
        println!(
            "edge: {} (retry-after {}s, message {:?})",
            on_off(report.edge.enabled),
            report.edge.retry_after,
            report.edge.message
        );
        match &report.apps {
            Some(state) => println!(
                "apps: {}{}",
                on_off(state.enabled),
                state
                    .message
                    .as_ref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default()
            ),
            None => println!("apps: unknown (flag not set or not readable)"),
        }
    }
    Ok(())
}
