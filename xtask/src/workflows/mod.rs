//! The checks `cargo xtask ci` runs on `.github/workflows/`: the xtask-only policy (here, in Rust), the
//! github-workflows JSON schema (check-jsonschema's vendored copy, offline) and actionlint when installed.

pub mod policy;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

pub const DIR: &str = ".github/workflows";

pub fn files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join(DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no workflow", dir.display());
    }
    Ok(files)
}

/// Runs the three checks; the first two are required, actionlint is used when it is on PATH.
pub fn check(sh: &Shell) -> anyhow::Result<()> {
    let root = crate::project::root();
    let files = files(&root)?;
    let files = files.as_slice();

    let mut violations = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        violations.extend(policy::check(&name, &text));
    }
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        bail!(
            "workflow policy violated (steps must be `cargo xtask …` or pinned setup actions):\n  {}",
            list.join("\n  ")
        );
    }
    println!(
        "workflow policy: {} file(s), every step is `cargo xtask …` or pinned setup",
        files.len()
    );

    if which("check-jsonschema").is_none() {
        bail!("check-jsonschema is not installed; run scripts/ci/install-tools.sh");
    }
    cmd!(
        sh,
        "check-jsonschema --builtin-schema vendor.github-workflows {files...}"
    )
    .run()
    .context("a workflow does not match the github-workflows schema")?;

    if which("actionlint").is_some() {
        cmd!(sh, "actionlint {files...}")
            .run()
            .context("actionlint found problems")?;
    } else {
        avalon_testkit::try_skip(
            &avalon_testkit::tool_skip_id("actionlint"),
            "actionlint is not installed (its PyPI package downloads the binary from GitHub at install time, \
             which these machines cannot reach); schema and policy checks still ran",
        )?;
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
