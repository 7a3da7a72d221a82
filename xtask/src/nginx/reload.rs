//! Apply a model to a running edge: render a new tree, check it, swap it in atomically, reload, verify.
//!
//! A tree that fails `nginx -t` is deleted and the live one is untouched. A tree that passes but cannot be
//! verified after the reload (nginx does not serve its config id, or `/health` fails while not in
//! maintenance) is swapped back out and nginx reloaded onto the previous tree.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use super::model::EdgeModel;
use super::render::{RenderedTree, render};
use super::target::{LIVE, TREES, Target};
use super::verify;

/// How many rendered trees to keep (the live one always survives).
const KEEP_TREES: usize = 5;

#[derive(Debug, Clone)]
pub struct ReloadOptions {
    /// Render and check only: no swap, no signal.
    pub dry_run: bool,
    /// Install the tree without signalling (first start, nginx not running yet); implies no verification.
    pub install_only: bool,
    /// Base URL of the edge's plain-HTTP listener, e.g. `http://127.0.0.1:80`.
    pub verify_url: Option<String>,
    /// How long to wait for nginx to serve the new config id.
    pub verify_timeout: Duration,
    /// Accept a non-200 `/health` after the reload (e.g. while the backends are being replaced).
    pub allow_unhealthy: bool,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            install_only: false,
            verify_url: None,
            verify_timeout: Duration::from_secs(15),
            allow_unhealthy: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub target: String,
    pub config_id: String,
    pub tree: PathBuf,
    pub previous_tree: Option<PathBuf>,
    pub dry_run: bool,
    pub swapped: bool,
    pub signalled: bool,
    /// Status of `/health` through the edge after the reload, when verified.
    pub health_status: Option<u16>,
    pub check_output: String,
}

/// The default verification URL: the model's plain-HTTP port on loopback.
pub fn default_verify_url(model: &EdgeModel) -> String {
    format!("http://127.0.0.1:{}", model.listen.http)
}

/// Render `model` into the target's state directory, check, swap, reload and verify.
pub fn reload(
    sh: &Shell,
    target: &Target,
    model: &EdgeModel,
    options: &ReloadOptions,
) -> anyhow::Result<ReloadReport> {
    let state = target.state_dir();
    std::fs::create_dir_all(state.join(TREES))
        .with_context(|| format!("cannot create {}", state.display()))?;
    let previous_tree = target.live_tree();
    let rendered = render_new_tree(target, model)?;
    eprintln!(
        "nginx: rendered {} (config {})",
        rendered.dir.display(),
        rendered.config_id
    );

    let check_output = match target.check_tree(sh, &rendered.dir) {
        Ok(output) => output,
        Err(err) => {
            remove_tree(&rendered.dir);
            return Err(err.context("the new tree was rejected; the live tree is unchanged"));
        }
    };
    let mut report = ReloadReport {
        target: target.describe(),
        config_id: rendered.config_id.clone(),
        tree: rendered.dir.clone(),
        previous_tree: previous_tree.clone(),
        dry_run: options.dry_run,
        swapped: false,
        signalled: false,
        health_status: None,
        check_output,
    };
    if options.dry_run {
        eprintln!(
            "nginx: dry run — would point {} at {} and reload",
            target.live_link().display(),
            rendered.dir.display()
        );
        remove_tree(&rendered.dir);
        return Ok(report);
    }

    swap_live(state, &rendered.dir)?;
    report.swapped = true;
    eprintln!(
        "nginx: {} -> {}",
        target.live_link().display(),
        rendered.dir.display()
    );
    if options.install_only {
        prune_trees(state, &rendered.dir);
        return Ok(report);
    }

    target.signal_reload(sh)?;
    report.signalled = true;
    let url = options
        .verify_url
        .clone()
        .unwrap_or_else(|| default_verify_url(model));
    match verify_reload(&url, &rendered, model, options) {
        Ok(status) => report.health_status = Some(status),
        Err(err) => {
            if let Some(previous) = &previous_tree {
                eprintln!(
                    "nginx: verification failed; restoring {}",
                    previous.display()
                );
                swap_live(state, previous)?;
                target.signal_reload(sh)?;
            }
            return Err(err.context("the reload was not verified; the previous tree is live again"));
        }
    }
    prune_trees(state, &rendered.dir);
    Ok(report)
}

fn render_new_tree(target: &Target, model: &EdgeModel) -> anyhow::Result<RenderedTree> {
    let config_id = super::render::config_id(model)?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let dir = target
        .state_dir()
        .join(TREES)
        .join(format!("{stamp}-{config_id}"));
    render(model, &dir).inspect_err(|_| remove_tree(&dir))
}

/// Consecutive fresh connections that must all be answered by the new config: right after a reload the
/// old workers may still accept a connection or two before they act on the master's shutdown signal.
const CONSECUTIVE_MATCHES: u32 = 10;

/// Waits until nginx answers with the new config id on fresh connections, then checks `/health`.
fn verify_reload(
    url: &str,
    rendered: &RenderedTree,
    model: &EdgeModel,
    options: &ReloadOptions,
) -> anyhow::Result<u16> {
    let deadline = Instant::now() + options.verify_timeout;
    let mut matches = 0;
    while matches < CONSECUTIVE_MATCHES {
        match verify::get(url, "/.avalon/config") {
            Ok((200, body)) if body.contains(&rendered.config_id) => {
                matches += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                matches = 0;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok((status, body)) => bail!(
                "{url}/.avalon/config answered {status} {body:?}, not config {}",
                rendered.config_id
            ),
            Err(err) => return Err(err.context(format!("{url}/.avalon/config did not answer"))),
        }
    }
    eprintln!("nginx: {url} serves config {}", rendered.config_id);
    // A new worker's first upstream connections can fail once (a replica restarting, a connection the
    // backend just closed): one bad answer is not a verdict on the tree, a bad answer until the
    // deadline is.
    loop {
        let (status, _) =
            verify::get(url, "/health").context("GET /health through the edge failed")?;
        eprintln!("nginx: GET {url}/health -> {status}");
        if status == 200 || options.allow_unhealthy || model.maintenance.enabled {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            bail!(
                "GET {url}/health answered {status} after the reload (pass --allow-unhealthy to accept)"
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Points `STATE/live` at `tree` with one rename, so nginx never sees a half-written link.
fn swap_live(state: &Path, tree: &Path) -> anyhow::Result<()> {
    let relative = tree
        .strip_prefix(state)
        .with_context(|| format!("{} is not under {}", tree.display(), state.display()))?;
    let link = state.join(LIVE);
    if link.exists()
        && std::fs::symlink_metadata(&link).is_ok_and(|meta| !meta.file_type().is_symlink())
    {
        bail!(
            "{} exists and is not a symlink; move it away first",
            link.display()
        );
    }
    let staging = state.join(format!(".{LIVE}.new"));
    let _ = std::fs::remove_file(&staging);
    std::os::unix::fs::symlink(relative, &staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    std::fs::rename(&staging, &link).with_context(|| format!("cannot replace {}", link.display()))
}

fn remove_tree(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir) {
        eprintln!("nginx: cannot remove {}: {err}", dir.display());
    }
}

/// Keeps the newest [`KEEP_TREES`] trees and the live one; names start with a timestamp, so they sort.
fn prune_trees(state: &Path, live: &Path) {
    let Ok(entries) = std::fs::read_dir(state.join(TREES)) else {
        return;
    };
    let mut trees: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    trees.sort();
    let excess = trees.len().saturating_sub(KEEP_TREES);
    for old in trees.into_iter().take(excess).filter(|tree| tree != live) {
        remove_tree(&old);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn swap_replaces_the_link_and_refuses_a_real_directory() {
        let state = tempfile::tempdir().unwrap();
        let a = state.path().join("trees/1-a");
        let b = state.path().join("trees/2-b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        swap_live(state.path(), &a).unwrap();
        swap_live(state.path(), &b).unwrap();
        assert_eq!(
            std::fs::read_link(state.path().join(LIVE)).unwrap(),
            Path::new("trees/2-b")
        );

        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join(LIVE)).unwrap();
        std::fs::create_dir_all(other.path().join("trees/1-a")).unwrap();
        let err = swap_live(other.path(), &other.path().join("trees/1-a")).unwrap_err();
        assert!(err.to_string().contains("not a symlink"), "{err}");
    }

    #[test]
    fn pruning_keeps_the_newest_trees_and_the_live_one() {
        let state = tempfile::tempdir().unwrap();
        for n in 1..=8 {
            std::fs::create_dir_all(state.path().join(format!("trees/{n}-x"))).unwrap();
        }
        let live = state.path().join("trees/1-x");
        prune_trees(state.path(), &live);
        let mut left: Vec<String> = std::fs::read_dir(state.path().join(TREES))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["1-x", "4-x", "5-x", "6-x", "7-x", "8-x"]);
    }
}
