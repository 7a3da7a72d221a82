//! Where the edge runs — a local nginx or one in a Docker container — and how to run nginx there.
//!
//! Both targets use the same state directory layout, so a swap is one atomic `rename`:
//!
//! ```text
//! STATE/live          -> trees/<stamp>-<config id>   (symlink; nginx runs with -p STATE/live/)
//! STATE/trees/<stamp>-<config id>/nginx.conf …       (rendered trees, the newest few kept)
//! ```
//!
//! nginx resolves `STATE/live` each time it (re)reads its config, so after the rename a reload sees the
//! whole new tree and never a mix of two.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use super::engine::{EngineEdge, StagedTree};
use super::layout::{KEEP_TREES, LIVE, TREES};
use super::model::EdgeModel;
use super::render::{read_tree_model, render};

#[derive(Debug, Clone)]
pub enum Target {
    /// nginx on this machine, started as `nginx -p STATE/live/ -c nginx.conf`.
    Local { state_dir: PathBuf },
    /// nginx in a container, started as `nginx -p <dir>/ -c nginx.conf` where `<dir>` is the mounted
    /// state directory; reached only through the Docker engine (see [`super::engine`]), so the engine
    /// may be remote.
    Container(EngineEdge),
}

impl Target {
    /// The name of the tree the live symlink points at, if any.
    pub fn live_tree_name(&self) -> anyhow::Result<Option<String>> {
        match self {
            Self::Local { state_dir } => Ok(std::fs::read_link(state_dir.join(LIVE))
                .ok()
                .and_then(|target| {
                    target
                        .strip_prefix(TREES)
                        .ok()
                        .map(|name| name.to_string_lossy().into_owned())
                })),
            Self::Container(engine) => engine.live_tree(),
        }
    }

    /// A tree's path as the target's nginx sees it (for reports).
    pub fn tree_path(&self, name: &str) -> PathBuf {
        match self {
            Self::Local { state_dir } => state_dir.join(TREES).join(name),
            Self::Container(engine) => engine.tree_path(name),
        }
    }

    /// The live link's path as the target's nginx sees it (for messages).
    pub fn live_link(&self) -> PathBuf {
        match self {
            Self::Local { state_dir } => state_dir.join(LIVE),
            Self::Container(engine) => engine.container_dir.join(LIVE),
        }
    }

    /// The model of the live tree; `None` when nothing is live yet.
    pub fn live_model(&self) -> anyhow::Result<Option<EdgeModel>> {
        let Some(name) = self.live_tree_name()? else {
            return Ok(None);
        };
        match self {
            Self::Local { state_dir } => {
                read_tree_model(&state_dir.join(TREES).join(name)).map(Some)
            }
            Self::Container(engine) => engine.read_model(&format!("{TREES}/{name}")),
        }
    }

    /// Renders `model` as `trees/NAME` and runs the target's `nginx -t` on it, then removes it (a dry run).
    /// Returns nginx's output.
    pub fn check(&self, model: &EdgeModel, name: &str) -> anyhow::Result<String> {
        match self {
            Self::Local { state_dir } => {
                let dir = render_local(state_dir, model, name)?;
                let checked = check_local(&Shell::new()?, &dir);
                remove_tree(&dir);
                checked
            }
            Self::Container(engine) => engine.check(model, name),
        }
    }

    /// Renders `model` as `trees/NAME` and checks it; the live link is untouched until
    /// [`Staged::make_live`]. A rejected tree is removed, and so is a staged one that is dropped.
    pub fn stage(&self, model: &EdgeModel, name: &str) -> anyhow::Result<Staged> {
        match self {
            Self::Local { state_dir } => {
                let dir = render_local(state_dir, model, name)?;
                let output =
                    check_local(&Shell::new()?, &dir).inspect_err(|_| remove_tree(&dir))?;
                Ok(Staged::Local(LocalStaged {
                    state_dir: state_dir.clone(),
                    dir: Some(dir),
                    output,
                }))
            }
            // One helper run checks now and, when told, adopts, swaps and prunes.
            Self::Container(engine) => engine
                .stage(model, name, KEEP_TREES)
                .map(|staged| Staged::Container(Box::new(staged))),
        }
    }

    /// Points the live link at `trees/NAME` with one rename.
    pub fn swap(&self, name: &str, protect: Option<&str>) -> anyhow::Result<()> {
        match self {
            Self::Local { state_dir } => swap_live(state_dir, &state_dir.join(TREES).join(name)),
            // The helper prunes in the same run: one container start per swap.
            Self::Container(engine) => engine.swap(name, protect, KEEP_TREES),
        }
    }

    /// Keeps the newest [`KEEP_TREES`] trees and the live one.
    pub fn prune(&self, live: &str) {
        if let Self::Local { state_dir } = self {
            prune_trees(state_dir, &state_dir.join(TREES).join(live));
        }
    }

    /// Tells the running nginx to re-read its config (a graceful reload: old workers finish their
    /// requests and keep open WebSockets until they close).
    pub fn signal_reload(&self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Self::Local { state_dir } => {
                let prefix = format!("{}/", state_dir.join(LIVE).display());
                cmd!(sh, "nginx -p {prefix} -c nginx.conf -s reload")
                    .run()
                    .context("nginx -s reload failed (is nginx running from this state directory?)")
            }
            Self::Container(engine) => engine.signal_reload(),
        }
    }

    /// Human-readable description for reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Local { state_dir } => format!("local nginx, state {}", state_dir.display()),
            Self::Container(engine) => engine.describe(),
        }
    }
}

/// A rendered tree that passed `nginx -t` and is not live yet.
pub enum Staged {
    Local(LocalStaged),
    Container(Box<StagedTree>),
}

pub struct LocalStaged {
    state_dir: PathBuf,
    /// `None` once live (nothing to remove on drop).
    dir: Option<PathBuf>,
    output: String,
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            remove_tree(&dir);
        }
    }
}

/// A staged tree once live: nginx's output, the tree that was live before, and (in a container) the
/// helper still finishing its housekeeping — wait for it by dropping this after the reload.
pub struct Swapped {
    pub output: String,
    pub previous: Option<String>,
    pub helper: Option<Box<StagedTree>>,
}

impl Staged {
    /// Points the live link at the tree (in a container, a flat tree `cargo xtask up` rendered is
    /// adopted first).
    pub fn make_live(self) -> anyhow::Result<Swapped> {
        match self {
            Self::Local(mut staged) => {
                let target = Target::Local {
                    state_dir: staged.state_dir.clone(),
                };
                let previous = target.live_tree_name()?;
                if let Some(dir) = &staged.dir {
                    swap_live(&staged.state_dir, dir)?;
                }
                staged.dir = None;
                Ok(Swapped {
                    output: std::mem::take(&mut staged.output),
                    previous,
                    helper: None,
                })
            }
            Self::Container(staged) => {
                let (output, previous, helper) = staged.make_live()?;
                Ok(Swapped {
                    output,
                    previous,
                    helper: Some(helper),
                })
            }
        }
    }
}

fn render_local(state_dir: &Path, model: &EdgeModel, name: &str) -> anyhow::Result<PathBuf> {
    let trees = state_dir.join(TREES);
    std::fs::create_dir_all(&trees)
        .with_context(|| format!("cannot create {}", trees.display()))?;
    let dir = trees.join(name);
    render(model, &dir).inspect_err(|_| remove_tree(&dir))?;
    Ok(dir)
}

/// `nginx -t -p TREE/ -c nginx.conf` with the local binary; the output (warnings included) on success.
pub fn check_local(sh: &Shell, tree: &Path) -> anyhow::Result<String> {
    if crate::nginx::which("nginx").is_none() {
        bail!(
            "nginx is not installed on this machine (`bash scripts/ci/install-tools.sh` installs it)"
        );
    }
    let prefix = format!("{}/", tree.display());
    let output = cmd!(sh, "nginx -t -p {prefix} -c nginx.conf")
        .ignore_status()
        .output()
        .context("cannot run nginx -t")?;
    check_output(output)
}

fn check_output(output: std::process::Output) -> anyhow::Result<String> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        bail!("nginx -t rejected the tree:\n{}", text.trim_end())
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
