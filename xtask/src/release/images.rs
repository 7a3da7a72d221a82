//! The image steps, through the images module's own CLI (`cargo xtask image build|push|export --json`).
//!
//! They run as a fresh `cargo xtask` on purpose: the version step has just changed the workspace version,
//! and the image tags come from the xtask binary's compiled-in version, so the running binary (built before
//! the bump) would tag the images with the previous release.

use std::path::Path;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// `cargo xtask image build --json`, checked to describe a clean build of `version`.
pub fn build(sh: &Shell, version: &semver::Version) -> anyhow::Result<serde_json::Value> {
    // Local names only: `image push` retags them for the registry.
    let command = cmd!(sh, "cargo xtask image build --json").env_remove("AVALON_IMAGE_REGISTRY");
    let report = read_json(command).context("image build failed")?;
    let built = report["version"].as_str().unwrap_or_default();
    if built != version.to_string() {
        bail!(
            "image build reported version {built:?}, expected {version}; the images do not belong to this release"
        );
    }
    if report["dirty"].as_bool() != Some(false) {
        bail!("image build saw a dirty tree; a release image must come from its tagged commit");
    }
    if report["images"].as_array().is_none_or(Vec::is_empty) {
        bail!("image build reported no images");
    }
    Ok(report)
}

/// `cargo xtask image push --registry R --json`: every tag the build gave, with the registry digests.
pub fn push(sh: &Shell, registry: &str) -> anyhow::Result<serde_json::Value> {
    read_json(cmd!(
        sh,
        "cargo xtask image push --registry {registry} --json"
    ))
    .context("image push failed")
}

/// `cargo xtask image export --out DIR --json`: `docker save` tarballs with sha256 files, for hosts
/// without a registry.
pub fn export(sh: &Shell, out: &Path) -> anyhow::Result<serde_json::Value> {
    read_json(cmd!(sh, "cargo xtask image export --out {out} --json"))
        .context("image export failed")
}

fn read_json(command: xshell::Cmd<'_>) -> anyhow::Result<serde_json::Value> {
    eprintln!("$ {command}");
    let stdout = command.read()?;
    serde_json::from_str(&stdout).with_context(|| format!("expected a JSON report, got:\n{stdout}"))
}
