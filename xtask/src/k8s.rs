//! `cargo xtask k8s check`: the Kubernetes manifests of k8s/ checked offline — every overlay built with
//! kustomize (`kubectl kustomize`, no cluster needed), every resource validated against the pinned
//! Kubernetes schemas with kubernetes-validate (`--strict`: unknown fields are errors), every avalon
//! container's environment judged by the services' own validator (`k8s_startup`), and the edge, network and
//! shutdown rules checked (`k8s_rules`) — after checking that k8s/base/hpa.yaml is what
//! `deploy/scaling.toml` generates. Run by `cargo xtask ci`.
//! `cargo xtask k8s hpa [--write]` prints (or writes) the generated HorizontalPodAutoscalers.
//! `cargo xtask k8s kind-smoke` runs an overlay on a throwaway kind cluster (`k8s_kind`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use xshell::{Shell, cmd};

use crate::autoscale::policy::Service;
use crate::autoscale::{hpa_manifest, policy_file};
use crate::project;

/// The oldest Kubernetes the manifests must be valid for: the preStop `sleep` action needs 1.30.
pub const MIN_KUBERNETES: &str = "1.30";

#[derive(Subcommand)]
pub enum K8s {
    /// Check k8s/base/hpa.yaml against deploy/scaling.toml, build every overlay and validate the result
    /// against the Kubernetes schemas.
    Check(CheckCmd),
    /// Print the HorizontalPodAutoscalers generated from deploy/scaling.toml (k8s/base/hpa.yaml).
    Hpa(HpaCmd),
    /// Run an overlay on a throwaway kind cluster: build and load the images, install ingress-nginx,
    /// create the Secrets, apply, wait for the rollouts, check /health, a Socket.IO handshake and that
    /// /metrics is private through the Ingress; the cluster is always deleted. Needs kind and kubectl.
    KindSmoke(KindSmokeCmd),
}

#[derive(Args)]
pub struct KindSmokeCmd {
    /// The overlay to apply as committed (relative to the project root).
    #[arg(long, value_name = "DIR", default_value = crate::k8s_kind::DEFAULT_OVERLAY)]
    overlay: PathBuf,
    /// The kind cluster's name (refused when a cluster of that name exists).
    #[arg(long, default_value = crate::k8s_kind::DEFAULT_CLUSTER)]
    name: String,
    /// Print every step without running any (needs only kubectl, to read the overlay).
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
pub struct HpaCmd {
    /// The scaling policy.
    #[arg(long, value_name = "FILE", default_value = policy_file::DEFAULT_POLICY)]
    policy: PathBuf,
    /// Write k8s/base/hpa.yaml instead of printing it.
    #[arg(long)]
    write: bool,
}

impl HpaCmd {
    pub fn run(&self) -> anyhow::Result<()> {
        let generated =
            hpa_manifest::render(&policy_file::load(&policy_file::resolve(&self.policy))?);
        if !self.write {
            print!("{generated}");
            return Ok(());
        }
        let path = project::root().join(hpa_manifest::PATH);
        std::fs::write(&path, generated)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "wrote {} from {}",
            hpa_manifest::PATH,
            self.policy.display()
        );
        Ok(())
    }
}

/// Fails when the committed HPA manifests are not what the committed policy generates.
pub fn check_hpa_drift() -> anyhow::Result<()> {
    let root = project::root();
    let policy = policy_file::load(&root.join(policy_file::DEFAULT_POLICY))?;
    let path = root.join(hpa_manifest::PATH);
    let committed = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut mismatches = Vec::new();
    for service in Service::ALL {
        let file = root.join(hpa_manifest::deployment_manifest(service));
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        mismatches.extend(hpa_manifest::limit_mismatches(
            service,
            policy.get(service),
            &text,
        ));
    }
    if !mismatches.is_empty() {
        bail!(
            "the k8s Deployments and {} disagree on the container limits the targets are shares of:\n  - {}",
            policy_file::DEFAULT_POLICY,
            mismatches.join("\n  - ")
        );
    }
    if committed != hpa_manifest::render(&policy) {
        bail!(
            "{} differs from what {} generates: run `cargo xtask k8s hpa --write` (and review the diff)",
            hpa_manifest::PATH,
            policy_file::DEFAULT_POLICY
        );
    }
    println!(
        "{}: generated from {} (up to date)",
        hpa_manifest::PATH,
        policy_file::DEFAULT_POLICY
    );
    Ok(())
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
            K8s::Hpa(cmd) => cmd.run(),
            K8s::KindSmoke(cmd) => crate::k8s_kind::run(
                sh,
                &crate::k8s_kind::Options {
                    overlay: cmd.overlay,
                    cluster: cmd.name,
                    dry_run: cmd.dry_run,
                },
            ),
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
        // First, and without any tool: drift is a failure even where kubectl is missing.
        check_hpa_drift()?;
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
        // The smoke's Redis and MongoDB stand-ins are applied to a real cluster by `k8s kind-smoke`.
        let datastores = project::root().join(crate::k8s_kind::DATASTORES_MANIFEST);
        for version in &self.versions {
            cmd!(
                sh,
                "kubernetes-validate --strict --quiet --kubernetes-version {version} {datastores}"
            )
            .run()
            .with_context(|| {
                format!(
                    "{} is not valid for Kubernetes {version}",
                    crate::k8s_kind::DATASTORES_MANIFEST
                )
            })?;
        }
        println!(
            "{}: valid for Kubernetes {}",
            crate::k8s_kind::DATASTORES_MANIFEST,
            self.versions.join(", ")
        );
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
