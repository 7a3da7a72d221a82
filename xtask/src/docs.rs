//! `cargo xtask docs config`: writes `docs/configuration.md`, `.env.example` and the per-environment
//! templates from the one variable list in `avalon-runtime`; `--check` fails when a committed file differs.

mod configuration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use xshell::Shell;

use crate::project;

#[derive(Subcommand)]
pub enum Docs {
    /// Generate the configuration reference and the env templates.
    Config(DocsConfig),
}

#[derive(Args)]
pub struct DocsConfig {
    /// Compare instead of writing; exit non-zero when a file is out of date.
    #[arg(long)]
    check: bool,
}

impl Docs {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        match self {
            Docs::Config(cmd) => cmd.run(),
        }
    }

    /// What `cargo xtask ci` runs: the `--check` form of every generator.
    pub fn check_config() -> anyhow::Result<()> {
        DocsConfig { check: true }.run()
    }
}

impl DocsConfig {
    fn run(self) -> anyhow::Result<()> {
        let root = project::root();
        let mut stale = Vec::new();
        for (path, content) in configuration::generated_files() {
            let target = root.join(path);
            let current = std::fs::read_to_string(&target).unwrap_or_default();
            if current == content {
                continue;
            }
            if self.check {
                stale.push(path);
            } else {
                if let Some(dir) = target.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                std::fs::write(&target, content)
                    .with_context(|| format!("writing {}", target.display()))?;
                println!("wrote {path}");
            }
        }
        if !stale.is_empty() {
            bail!(
                "generated files are out of date: {}; run `cargo xtask docs config`",
                stale.join(", ")
            );
        }
        if self.check {
            println!("generated configuration docs are up to date");
        }
        Ok(())
    }
}
