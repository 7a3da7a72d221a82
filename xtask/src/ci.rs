//! `cargo xtask ci`: everything CI runs, in the order that fails fastest.

use anyhow::{Context, bail};
use clap::Args;
use xshell::{Shell, cmd};

#[derive(Args)]
pub struct Ci {
    /// Skip the test suite (formatting, lints and generated files only).
    #[arg(long)]
    no_tests: bool,
    /// Run scripts/ci/install-tools.sh first (what GitHub Actions does on its fresh runners).
    #[arg(long)]
    install_tools: bool,
    /// Run only the store contract tests against the MongoDB at MONGODB_URI (the GitHub Actions job with a
    /// `mongo:7` service container).
    #[arg(long, conflicts_with = "no_tests")]
    mongodb_contract: bool,
}

impl Ci {
    /// The full run, as `cargo xtask release` starts it.
    pub fn full(install_tools: bool) -> Self {
        Self {
            no_tests: false,
            install_tools,
            mongodb_contract: false,
        }
    }

    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.install_tools {
            step("install tools");
            cmd!(sh, "bash scripts/ci/install-tools.sh")
                .run()
                .context("scripts/ci/install-tools.sh failed")?;
        }
        if self.mongodb_contract {
            return mongodb_contract(sh);
        }

        step("formatting");
        cmd!(sh, "cargo fmt --all -- --check")
            .run()
            .context("code is not formatted; run `cargo fmt --all`")?;

        step("clippy (warnings denied)");
        cmd!(
            sh,
            "cargo clippy --workspace --all-targets --locked -- -D warnings"
        )
        .run()
        .context("clippy failed")?;

        step("generated configuration docs");
        crate::docs::Docs::check_config().context("generated files are stale")?;

        step("GitHub Actions workflows");
        crate::workflows::check(sh).context("workflow checks failed")?;

        step("nginx edge audit (gixy-ng, testssl.sh)");
        crate::nginx::audit_gate(sh).context("the nginx edge audit failed")?;

        step("Kubernetes manifests (kustomize build, kubernetes-validate)");
        crate::k8s::CheckCmd::default_versions()
            .run(sh)
            .context("the Kubernetes manifests are invalid")?;

        if self.no_tests {
            return Ok(());
        }
        step("tests");
        cmd!(sh, "cargo test --workspace --locked --no-fail-fast")
            .run()
            .context("tests failed")?;
        println!("\nci: all checks passed");
        Ok(())
    }
}

/// Names the container of the MongoDB server behind MONGODB_URI, for the backup drill.
const LIVE_MONGODB_CONTAINER: &str = "AVALON_LIVE_MONGODB_CONTAINER";

/// The store contract suite and the backup drill against a real MongoDB; refuses to run (rather than pass
/// vacuously) without one.
fn mongodb_contract(sh: &Shell) -> anyhow::Result<()> {
    step("store contract tests against MongoDB");
    match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.trim().is_empty() => {}
        _ => bail!(
            "MONGODB_URI must be set to a MongoDB server for --mongodb-contract (e.g. mongodb://127.0.0.1:27017/avalon_contract)"
        ),
    }
    cmd!(
        sh,
        "cargo test --locked -p avalon-api --test store_contract"
    )
    .run()
    .context("store contract tests failed against MongoDB")?;
    println!("\nci: store contract passed against MongoDB");

    step("backup drill against MongoDB (create, verify --restore-test, status, restore)");
    // mongodump and mongorestore run inside the server's container, as on a production host.
    match std::env::var(LIVE_MONGODB_CONTAINER) {
        Ok(name) if !name.trim().is_empty() => {
            cmd!(
                sh,
                "cargo test --locked -p xtask --test backup_live -- --nocapture"
            )
            .run()
            .context("the backup drill failed against MongoDB")?;
            println!("\nci: backup drill passed against MongoDB");
        }
        _ if std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true") => bail!(
            "{LIVE_MONGODB_CONTAINER} must name the MongoDB service container in GitHub Actions (`${{{{ job.services.mongodb.id }}}}`)"
        ),
        _ => println!(
            "\n!!!!!!!! SKIPPED backup drill: set {LIVE_MONGODB_CONTAINER} to the MongoDB server's container !!!!!!!!"
        ),
    }
    Ok(())
}

fn step(name: &str) {
    println!("\n==> ci: {name}");
}
