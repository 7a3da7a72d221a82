//! `cargo xtask nginx …`: the nginx edge, rendered from a small JSON model (see docs/nginx.md).
//!
//! Library API for other xtask modules (deploy, canary):
//! - [`EdgeModel`] — the model; `EdgeModel::load(path)`, `EdgeModel::default()` (the compose stack),
//!   `validate()` reporting every problem by field.
//! - [`render()`] — model → tree in a directory; [`read_tree_model`] reads a tree's model back.
//! - [`check_local`] — `nginx -t` on a tree with the local binary.
//! - [`Target`] + [`reload()`] — render, check, atomic swap, graceful reload, verify; a tree that fails the
//!   check never goes live. [`Target::live_model`] gives the live model, the starting
//!   point for a weight change.

mod audit;
mod edge_errors;
mod engine;
mod layout;
mod model;
mod reload;
mod render;
mod staged;
mod target;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use xshell::Shell;

// The whole API is re-exported for the deploy and canary modules, whether or not a command here uses it.
pub use engine::EngineEdge;
pub use layout::LIVE;
#[allow(unused_imports)]
pub use model::{
    API_BODY_LIMIT_RANGE, Canary, EdgeModel, Listen, Maintenance, ModelError, Paths, Problem,
    RateLimits, Slot, Tls, UpstreamTuning,
};
#[allow(unused_imports)]
pub use reload::{
    PendingReload, ReloadOptions, ReloadReport, default_verify_url, reload, stage_reload,
};
#[allow(unused_imports)]
pub use render::{MODEL_FILE, RenderedTree, config_id, read_tree_model, render};
pub use target::{Target, check_local};

#[derive(Subcommand)]
pub enum Nginx {
    /// Render the edge model into an nginx tree (run it with `nginx -p DIR/ -c nginx.conf`).
    Render(RenderCmd),
    /// Render (or take an existing tree) and run `nginx -t` on it.
    Check(CheckCmd),
    /// Render, check, swap into the live state directory and reload the running nginx, then verify.
    Reload(ReloadCmd),
    /// Static security checks: gixy-ng (0 findings) and testssl.sh against a local TLS listener.
    Audit(audit::AuditCmd),
    /// Print the model in effect (the live tree's with --prefix/--state, else --model or the default).
    Model(ModelCmd),
}

impl Nginx {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Self::Render(cmd) => cmd.run(),
            Self::Check(cmd) => cmd.run(sh),
            Self::Reload(cmd) => cmd.run(sh),
            Self::Model(cmd) => cmd.run(),
            Self::Audit(cmd) => cmd.run(sh),
        }
    }
}

/// `cargo xtask nginx audit` as a CI step: fails on any gixy finding or testssl failure.
pub fn audit_gate(sh: &Shell) -> anyhow::Result<()> {
    audit::AuditCmd {
        json: false,
        url: None,
    }
    .run(sh)
}

/// `--model FILE`, shared by the subcommands.
#[derive(Args, Debug, Clone, Default)]
struct ModelArg {
    /// Edge model (JSON, see docs/nginx.md) [default: the built-in compose model: slot `blue`,
    /// `api:3000` / `websocket:3001`, plain HTTP on port 80].
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
}

impl ModelArg {
    fn load(&self) -> anyhow::Result<EdgeModel> {
        match &self.model {
            Some(path) => EdgeModel::load(path),
            None => Ok(EdgeModel::default()),
        }
    }
}

#[derive(Args, Debug)]
pub struct RenderCmd {
    #[command(flatten)]
    model: ModelArg,
    /// Output directory [default: target/nginx/rendered].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print what was rendered as JSON.
    #[arg(long)]
    json: bool,
}

impl RenderCmd {
    fn run(self) -> anyhow::Result<()> {
        let model = self.model.load()?;
        let out = self
            .out
            .unwrap_or_else(|| crate::project::target_dir().join("nginx/rendered"));
        let tree = render(&model, &out)?;
        if self.json {
            print_json(&tree)?;
        } else {
            println!(
                "rendered {} files into {} (config {})",
                tree.files.len(),
                tree.dir.display(),
                tree.config_id
            );
            println!(
                "check with: nginx -t -p {}/ -c nginx.conf",
                tree.dir.display()
            );
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct CheckCmd {
    #[command(flatten)]
    model: ModelArg,
    /// Check this already rendered tree instead of rendering the model.
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct CheckReport {
    ok: bool,
    tree: PathBuf,
    config_id: Option<String>,
    nginx_output: String,
}

impl CheckCmd {
    fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let scratch;
        let (tree, config_id) = match &self.dir {
            Some(dir) => (dir.clone(), None),
            None => {
                scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
                let (model, substituted) = resolvable_here(self.model.load()?);
                for host in &substituted {
                    eprintln!(
                        "nginx check: {host} does not resolve on this machine; checked as 127.0.0.1"
                    );
                }
                let rendered = render(&model, scratch.path())?;
                (rendered.dir, Some(rendered.config_id))
            }
        };
        let result = check_local(sh, &tree);
        if self.json {
            let (ok, nginx_output) = match &result {
                Ok(output) => (true, output.clone()),
                Err(err) => (false, format!("{err:#}")),
            };
            print_json(&CheckReport {
                ok,
                tree: tree.clone(),
                config_id,
                nginx_output,
            })?;
        } else if let Ok(output) = &result {
            print!("{output}");
            println!("nginx -t: ok ({})", tree.display());
        }
        result.map(|_| ())
    }
}

#[derive(Args, Debug)]
pub struct ReloadCmd {
    #[command(flatten)]
    model: ModelArg,
    /// State directory of a local nginx running with `-p DIR/live/ -c nginx.conf`.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "container",
        required_unless_present = "container"
    )]
    prefix: Option<PathBuf>,
    /// Docker container running the edge, through the Docker engine (`DOCKER_HOST` / `--context` are
    /// honoured): trees are written by a helper container, nginx is signalled with `docker kill`.
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
    /// With --container: where the container mounts its state directory (nginx runs with `-p DIR/`).
    #[arg(long, value_name = "DIR", default_value = "/etc/nginx")]
    container_dir: PathBuf,
    /// Base URL of the edge's plain-HTTP listener for verification [default: http://127.0.0.1:<listen.http>].
    #[arg(long, value_name = "URL")]
    verify_url: Option<String>,
    /// Seconds to wait for nginx to serve the new config.
    #[arg(long, default_value_t = 15)]
    verify_timeout: u64,
    /// Accept a non-200 /health after the reload.
    #[arg(long)]
    allow_unhealthy: bool,
    /// Install the tree as the live one without signalling nginx (before its first start).
    #[arg(long)]
    install_only: bool,
    /// Render and check only; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl ReloadCmd {
    fn target(&self) -> anyhow::Result<Target> {
        match (&self.prefix, &self.container) {
            (Some(prefix), _) => Ok(Target::Local {
                state_dir: absolute(prefix)?,
            }),
            (None, Some(name)) => Ok(Target::Container(EngineEdge::discover(
                crate::container_exec::DockerCli::default(),
                name,
                &self.container_dir,
            )?)),
            _ => anyhow::bail!("pass --prefix DIR (local nginx) or --container NAME"),
        }
    }

    fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let target = self.target()?;
        let model = self.model.load()?;
        let options = ReloadOptions {
            dry_run: self.dry_run,
            install_only: self.install_only,
            verify_url: self.verify_url.clone(),
            verify_timeout: Duration::from_secs(self.verify_timeout),
            allow_unhealthy: self.allow_unhealthy,
        };
        let report = reload(sh, &target, &model, &options)?;
        if self.json {
            print_json(&report)?;
        } else if report.dry_run {
            println!(
                "dry run: config {} passes nginx -t; nothing changed",
                report.config_id
            );
        } else {
            println!(
                "config {} is live on {}{}",
                report.config_id,
                report.target,
                report
                    .health_status
                    .map(|s| format!(" (/health {s})"))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ModelCmd {
    #[command(flatten)]
    model: ModelArg,
    /// Read the live tree's model from this state directory.
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    state: Option<PathBuf>,
}

impl ModelCmd {
    fn run(self) -> anyhow::Result<()> {
        let model = match &self.state {
            Some(state) => {
                let target = Target::Local {
                    state_dir: state.clone(),
                };
                target
                    .live_model()?
                    .with_context(|| format!("{} has no live tree", state.display()))?
            }
            None => self.model.load()?,
        };
        print_json(&model)
    }
}

/// nginx resolves upstream names when it loads a config, so compose service names (`api:3000`) fail
/// `nginx -t` outside the compose network. For a local check, such hosts are replaced by 127.0.0.1 (same
/// port); everything else about the tree is checked as rendered. A host with members is rendered as its
/// members' addresses, so it stays. Returns the hosts replaced.
fn resolvable_here(mut model: EdgeModel) -> (EdgeModel, Vec<String>) {
    use std::net::ToSocketAddrs;
    let mut substituted = Vec::new();
    let with_members = |host: &str| model.members.get(host).is_some_and(|m| !m.is_empty());
    let kept: std::collections::BTreeSet<String> = model
        .server_hosts()
        .into_iter()
        .filter(|host| with_members(host))
        .map(str::to_owned)
        .collect();
    for slot in &mut model.slots {
        for server in slot.api.iter_mut().chain(slot.websocket.iter_mut()) {
            if server.to_socket_addrs().is_err()
                && let Some((host, port)) = server.rsplit_once(':')
                && !kept.contains(host)
            {
                substituted.push(host.to_owned());
                *server = format!("127.0.0.1:{port}");
            }
        }
    }
    substituted.sort();
    substituted.dedup();
    (model, substituted)
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("cannot serialise the report")?
    );
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// The path of `tool` on PATH.
pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_example_model_in_the_repository_is_valid() {
        let path = crate::project::root().join("nginx/model.example.json");
        let model = EdgeModel::load(&path).unwrap();
        assert_eq!(model.slots.len(), 2);
    }
}
