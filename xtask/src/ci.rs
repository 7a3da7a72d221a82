//! `cargo xtask ci`: everything CI runs, in the order that fails fastest.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use avalon_testkit::skips::AllowedSkip;
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

    /// Runs every step, then prints the skips CI allows and the skips this run saw, pass or fail.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let log = tempfile::NamedTempFile::new().context("cannot create the skip log")?;
        avalon_testkit::skips::log_skips_to(log.path());
        let _tests_log_too = sh.push_env(avalon_testkit::skips::SKIP_LOG_VAR, log.path());
        let figures = tempfile::NamedTempFile::new().context("cannot create the figures log")?;
        let _figures_too = sh.push_env(avalon_testkit::figures::FIGURES_LOG_VAR, figures.path());
        let result = self.steps(sh);
        let measured = std::fs::read_to_string(figures.path()).unwrap_or_default();
        if !measured.is_empty() {
            println!("\n==> ci: figures the tests measured (guards, stacks)\n{measured}");
        }
        let seen = std::fs::read_to_string(log.path()).unwrap_or_default();
        match avalon_testkit::skips::allowed_skips() {
            Ok(allowed) => print!(
                "{}",
                skip_summary(&allowed, &avalon_testkit::skips::read_skip_log(&seen))
            ),
            Err(error) => eprintln!("ci: {error}"),
        }
        result
    }

    fn steps(self, sh: &Shell) -> anyhow::Result<()> {
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
        _ => avalon_testkit::try_skip(
            "mongodb-backup-drill",
            &format!(
                "set {LIVE_MONGODB_CONTAINER} to the MongoDB server's container to run the backup drill"
            ),
        )?,
    }
    Ok(())
}

/// The end of a CI log: what may skip here and why, then what did skip in this run (each id once, with
/// how often), so a skip is never only an "ok 0.00s" in the test output.
fn skip_summary(allowed: &[AllowedSkip], seen: &[(String, String)]) -> String {
    let mut out = format!(
        "\n==> ci: skips\nallowed to skip under CI ({}):\n",
        avalon_testkit::skips::LIST_PATH
    );
    for entry in allowed {
        out.push_str(&format!(
            "  {}  ({})\n      {}\n",
            entry.id, entry.location, entry.reason
        ));
    }
    if seen.is_empty() {
        out.push_str("skipped in this run: nothing\n");
        return out;
    }
    out.push_str("skipped in this run:\n");
    let mut counted: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (id, reason) in seen {
        counted.entry(id).or_insert((0, reason)).0 += 1;
    }
    for (id, (count, reason)) in counted {
        let times = if count > 1 {
            format!(" (×{count})")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  {}{times}\n",
            avalon_testkit::skips::skip_line(id, reason)
        ));
    }
    out
}

fn step(name: &str) {
    println!("\n==> ci: {name}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_what_may_skip_and_what_did() {
        let allowed = vec![AllowedSkip {
            id: "mongodb-store-contract".to_owned(),
            reason: "no MongoDB here".to_owned(),
            location: "services/api/tests/store_contract.rs".to_owned(),
        }];
        let seen = vec![
            (
                "mongodb-store-contract".to_owned(),
                "MONGODB_URI is not set".to_owned(),
            ),
            ("tool-actionlint".to_owned(), "not installed".to_owned()),
            (
                "mongodb-store-contract".to_owned(),
                "MONGODB_URI is not set".to_owned(),
            ),
        ];
        let summary = skip_summary(&allowed, &seen);
        assert!(summary.contains("  mongodb-store-contract  (services/api/tests/store_contract.rs)\n      no MongoDB here\n"));
        assert!(summary.contains(
            "  !!!!!!!! SKIPPED: mongodb-store-contract: MONGODB_URI is not set !!!!!!!! (×2)\n"
        ));
        assert!(summary.contains("  !!!!!!!! SKIPPED: tool-actionlint: not installed !!!!!!!!\n"));
        assert!(skip_summary(&allowed, &[]).ends_with("skipped in this run: nothing\n"));
    }
}
