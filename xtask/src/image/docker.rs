//! The Docker CLI of the image commands, on the engine that builds and holds the images: small questions
//! (shared with the stack commands) and the commands that change its image store, each printed as it runs.
//! The command files (build, push, export, import, base) orchestrate and never run `docker` themselves.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use xshell::{Shell, cmd};

/// What `docker image inspect` tells about one image.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageFacts {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "RepoDigests", default)]
    pub repo_digests: Vec<String>,
    #[serde(rename = "Config")]
    pub config: ImageConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

impl ImageFacts {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// `None` when no image has that reference.
pub fn inspect(sh: &Shell, reference: &str) -> anyhow::Result<Option<ImageFacts>> {
    let output = cmd!(sh, "docker image inspect {reference}")
        .quiet()
        .ignore_status()
        .output()
        .context("running docker image inspect")?;
    if !output.status.success() {
        return Ok(None);
    }
    let mut facts: Vec<ImageFacts> = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing docker image inspect {reference}"))?;
    Ok(facts.pop())
}

/// Fails with a clear message when the Docker engine cannot be reached.
pub fn require_engine(sh: &Shell) -> anyhow::Result<()> {
    let format = "{{.Server.Version}}";
    cmd!(sh, "docker version --format {format}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("the Docker engine is not reachable: start dockerd or set DOCKER_HOST")
}

/// Fails unless `docker compose` is Compose v2 (v1's `docker-compose` lacks `--wait` and profiles'
/// semantics used here).
pub fn require_compose_v2(sh: &Shell) -> anyhow::Result<String> {
    let version = cmd!(sh, "docker compose version --short")
        .quiet()
        .read()
        .context(
            "`docker compose` (Compose v2) is missing: run `bash scripts/ci/install-tools.sh`",
        )?;
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .unwrap_or("");
    if major != "2" {
        anyhow::bail!("`docker compose` is version {version}; Compose v2 is required");
    }
    Ok(version)
}

/// `docker ARGS…` of a `docker build` the caller planned; its output is hidden when `quiet`.
pub fn build(sh: &Shell, args: &[String], quiet: bool) -> xshell::Result<()> {
    let build = cmd!(sh, "docker {args...}");
    if quiet {
        build.ignore_stdout().run()
    } else {
        build.run()
    }
}

/// `docker tag SOURCE TARGET && docker push TARGET`.
pub fn tag_and_push(sh: &Shell, source: &str, target: &str) -> xshell::Result<()> {
    cmd!(sh, "docker tag {source} {target}").run()?;
    cmd!(sh, "docker push {target}").run()
}

/// `docker save --output FILE REF`.
pub fn save(sh: &Shell, file: &Path, reference: &str) -> xshell::Result<()> {
    cmd!(sh, "docker save --output {file} {reference}").run()
}

/// `docker load --input FILE`.
pub fn load(sh: &Shell, file: &Path) -> xshell::Result<()> {
    cmd!(sh, "docker load --input {file}").run()
}

/// `docker import [--change C]… TARBALL IMAGE`.
pub fn import(sh: &Shell, changes: &[String], tarball: &Path, image: &str) -> xshell::Result<()> {
    let change_args: Vec<String> = changes
        .iter()
        .flat_map(|change| ["--change".to_owned(), change.clone()])
        .collect();
    cmd!(sh, "docker import {change_args...} {tarball} {image}").run()
}
