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

/// The symlink nginx runs from.
pub const LIVE: &str = "live";
/// Where rendered trees are kept.
pub const TREES: &str = "trees";

#[derive(Debug, Clone)]
pub enum Target {
    /// nginx on this machine, started as `nginx -p STATE/live/ -c nginx.conf`.
    Local { state_dir: PathBuf },
    /// nginx in a container whose STATE directory (on this host) is mounted at `container_dir`, started as
    /// `nginx -p <container_dir>/live/ -c nginx.conf`.
    Container {
        name: String,
        state_dir: PathBuf,
        container_dir: PathBuf,
    },
}

impl Target {
    /// The state directory as this machine sees it.
    pub fn state_dir(&self) -> &Path {
        match self {
            Self::Local { state_dir } | Self::Container { state_dir, .. } => state_dir,
        }
    }

    pub fn live_link(&self) -> PathBuf {
        self.state_dir().join(LIVE)
    }

    /// The tree the live symlink points at, if any.
    pub fn live_tree(&self) -> Option<PathBuf> {
        let link = self.live_link();
        let target = std::fs::read_link(&link).ok()?;
        Some(self.state_dir().join(target))
    }

    /// `nginx -t` on a tree under the state directory, as the target's nginx sees it.
    pub fn check_tree(&self, sh: &Shell, tree: &Path) -> anyhow::Result<String> {
        match self {
            Self::Local { .. } => check_local(sh, tree),
            Self::Container {
                name,
                state_dir,
                container_dir,
            } => {
                let relative = tree.strip_prefix(state_dir).with_context(|| {
                    format!("{} is not under {}", tree.display(), state_dir.display())
                })?;
                let prefix = format!("{}/", container_dir.join(relative).display());
                let output = cmd!(sh, "docker exec {name} nginx -t -p {prefix} -c nginx.conf")
                    .ignore_status()
                    .output()
                    .context("cannot run docker exec")?;
                check_output(output)
            }
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
            Self::Container { name, .. } => cmd!(sh, "docker kill --signal HUP {name}")
                .run()
                .with_context(|| format!("cannot signal container {name}")),
        }
    }

    /// Human-readable description for reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Local { state_dir } => format!("local nginx, state {}", state_dir.display()),
            Self::Container {
                name, state_dir, ..
            } => format!("container {name}, state {}", state_dir.display()),
        }
    }
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
