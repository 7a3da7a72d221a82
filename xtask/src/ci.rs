//! `cargo xtask ci`: everything CI runs, in the order that fails fastest.

use anyhow::Context;
use clap::Args;
use xshell::{Shell, cmd};

#[derive(Args)]
pub struct Ci {
    /// Skip the test suite (formatting, lints and generated files only).
    #[arg(long)]
    no_tests: bool,
}

impl Ci {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
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

        if self.no_tests {
            return Ok(());
        }
        step("tests");
        cmd!(sh, "cargo test --workspace --locked")
            .run()
            .context("tests failed")?;
        println!("\nci: all checks passed");
        Ok(())
    }
}

fn step(name: &str) {
    println!("\n==> ci: {name}");
}
