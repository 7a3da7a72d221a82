//! Running programs inside the stack's containers through the Docker CLI (so the same command works
//! against the local engine, `DOCKER_HOST=ssh://…` or a `--context`), with secrets kept off every command
//! line. The argv and the runner are the command layer's ([`crate::command`]); this module finds the
//! container and reads secrets.
//!
//! Secrets travel as environment variables: `docker exec -e NAME` without `=value` makes the Docker
//! CLI copy NAME from its own environment, so the value never appears in any argv — not xtask's,
//! not the CLI's, not the process's inside the container.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, bail};

pub use crate::command::{Captured, DockerCli, Invocation, SecretValue};

/// Which container a command runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerRef {
    /// A container name or id, used as given.
    Named(String),
    /// The running container of a Compose service, found by Compose's labels (so neither the
    /// Compose plugin nor its container naming scheme is needed).
    ComposeService { project: String, service: String },
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(name) => write!(f, "container {name}"),
            Self::ComposeService { project, service } => {
                write!(f, "service {service} of Compose project {project}")
            }
        }
    }
}

impl DockerCli {
    /// The engine endpoint the CLI talks to (`unix:///var/run/docker.sock`, `ssh://ops@host`, …):
    /// `DOCKER_HOST` unless a context is named, else the context's; empty when it cannot be told.
    pub fn endpoint(&self) -> String {
        if self.context.is_none()
            && let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())
        {
            return host;
        }
        self.context_endpoint()
            .output(None)
            .ok()
            .filter(Captured::success)
            .map(|captured| captured.stdout_text().trim().to_owned())
            .unwrap_or_default()
    }

    /// The container id or name to `docker exec` into.
    pub fn resolve(&self, container: &ContainerRef) -> anyhow::Result<String> {
        match container {
            ContainerRef::Named(name) => Ok(name.clone()),
            ContainerRef::ComposeService { project, service } => {
                let output = self.find_service(project, service).capture(None)?;
                let ids: Vec<&str> = output.split_whitespace().collect();
                match ids.as_slice() {
                    [id] => Ok((*id).to_owned()),
                    [] => bail!(
                        "no running container for {container}; is the stack up (`docker ps`), and is the project name right (--project)?"
                    ),
                    [first, ..] => {
                        eprintln!(
                            "note: {} running containers for {container}; using {first}",
                            ids.len()
                        );
                        Ok((*first).to_owned())
                    }
                }
            }
        }
    }
}

/// Reads a secret from `NAME` or, Docker-secrets style, from the file named by `NAME_FILE`.
pub fn secret_from_env(name: &str) -> anyhow::Result<Option<SecretValue>> {
    if let Some(value) = std::env::var_os(name) {
        return Ok(Some(SecretValue::new(os_string_to_string(name, value)?)));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var_os(&file_var) {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("reading {file_var} ({})", PathBuf::from(&path).display())
            })?;
            Ok(Some(SecretValue::new(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )))
        }
    }
}

fn os_string_to_string(name: &str, value: OsString) -> anyhow::Result<String> {
    value
        .into_string()
        .map_err(|_| anyhow::anyhow!("{name} is not valid UTF-8"))
}
