//! `cargo xtask k8s check`: the Kubernetes manifests of k8s/ checked offline — every overlay built with
//! kustomize (`kubectl kustomize`, no cluster needed), every resource validated against the pinned
//! Kubernetes schemas with kubernetes-validate (`--strict`: unknown fields are errors), every avalon
//! container's environment judged by the services' own validator (`k8s_startup`), and the edge, network and
//! shutdown rules checked (`k8s_rules`). Run by `cargo xtask ci`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use xshell::{Shell, cmd};

use crate::project;

/// The oldest Kubernetes the manifests must be valid for: the preStop `sleep` action needs 1.30.
pub const MIN_KUBERNETES: &str = "1.30";

#[derive(Subcommand)]
pub enum K8s {
    /// Build every overlay and validate the result against the Kubernetes schemas.
    Check(CheckCmd),
}

#[derive(Args)]
pub struct CheckCmd {
    /// Kubernetes versions to validate against.
    #[arg(long = "kubernetes-version", default_values = [MIN_KUBERNETES, "1.37"])]
    versions: Vec<String>,
}

impl K8s {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            K8s::Check(cmd) => cmd.run(sh),
        }
    }
}

pub fn overlays() -> anyhow::Result<Vec<PathBuf>> {
    let dir = project::root().join("k8s/overlays");
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("kustomization.yaml").is_file())
        .collect();
    overlays.sort();
    if overlays.is_empty() {
        bail!("no overlays under {}", dir.display());
    }
    Ok(overlays)
}

impl CheckCmd {
    /// The check `cargo xtask ci` runs.
    pub fn default_versions() -> Self {
        Self {
            versions: vec![MIN_KUBERNETES.to_owned(), "1.37".to_owned()],
        }
    }

    pub fn run(&self, sh: &Shell) -> anyhow::Result<()> {
        for tool in ["kubectl", "kubernetes-validate"] {
            if crate::nginx::which(tool).is_none() {
                bail!("{tool} is not installed (`bash scripts/ci/install-tools.sh` installs it)");
            }
        }
        let out = tempfile::tempdir().context("cannot create a scratch directory")?;
        for overlay in overlays()? {
            let name = overlay
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let built = build(sh, &overlay)?;
            let file = out.path().join(format!("{name}.yaml"));
            std::fs::write(&file, &built)?;
            let kinds = built
                .lines()
                .filter(|line| line.starts_with("kind:"))
                .count();
            for version in &self.versions {
                cmd!(
                    sh,
                    "kubernetes-validate --strict --quiet --kubernetes-version {version} {file}"
                )
                .run()
                .with_context(|| {
                    format!("k8s/overlays/{name} is not valid for Kubernetes {version}")
                })?;
            }
            println!(
                "k8s/overlays/{name}: {kinds} resources valid for Kubernetes {}",
                self.versions.join(", ")
            );
            would_start(&name, &built)?;
        }
        Ok(())
    }
}

/// Every avalon container would pass its own start-up validation, and the overlay keeps the house rules.
fn would_start(name: &str, built: &str) -> anyhow::Result<()> {
    let mut problems = crate::k8s_rules::check_rendered(built)?;
    let verdicts = crate::k8s_startup::check_rendered(built)?;
    for verdict in &verdicts {
        problems.extend(verdict.problems.iter().map(|problem| {
            format!(
                "{} container {:?} ({}): {problem}",
                verdict.workload,
                verdict.container,
                verdict.service.name()
            )
        }));
    }
    if !problems.is_empty() {
        bail!(
            "k8s/overlays/{name} would not start as the services require:\n  - {}",
            problems.join("\n  - ")
        );
    }
    println!(
        "k8s/overlays/{name}: {} containers pass the services' start-up validation; ingress, network policies and grace periods keep the rules",
        verdicts.len()
    );
    Ok(())
}

fn build(sh: &Shell, overlay: &Path) -> anyhow::Result<String> {
    cmd!(sh, "kubectl kustomize {overlay}")
        .read()
        .with_context(|| format!("kustomize cannot build {}", overlay.display()))
}
