//! `cargo xtask version --resolve [X.Y.Z]`: which released version a deploy should use — the one asked for
//! (its `v` tag must exist) or, when none is asked for, the newest release tag. Read-only.

use std::io::Write as _;

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use super::git;

#[derive(Debug, Serialize)]
pub struct Resolved {
    pub version: String,
    pub tag: String,
}

pub fn resolve(sh: &Shell, requested: &str) -> anyhow::Result<Resolved> {
    git::ensure_repository(sh)?;
    let requested = requested.trim();
    if requested.is_empty() {
        let Some(tag) = git::last_release_tag(sh)? else {
            bail!("--resolve: no release yet (no v<semver> tag reachable from HEAD)");
        };
        return Ok(Resolved {
            version: tag.version.to_string(),
            tag: tag.name,
        });
    }
    let version = semver::Version::parse(requested.trim_start_matches('v')).with_context(|| {
        format!("--resolve: {requested:?} is not a version (expected X.Y.Z, e.g. 0.2.0)")
    })?;
    let tag = format!("v{version}");
    if !git::tag_exists(sh, &tag)? {
        bail!("--resolve: {version} was never released (no tag {tag})");
    }
    Ok(Resolved {
        version: version.to_string(),
        tag,
    })
}

/// In GitHub Actions, later jobs read the answer as `steps.<id>.outputs.version` / `.tag`.
pub fn write_github_output(resolved: &Resolved) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .context("opening $GITHUB_OUTPUT")?;
    writeln!(file, "version={}\ntag={}", resolved.version, resolved.tag)
        .context("writing $GITHUB_OUTPUT")
}
