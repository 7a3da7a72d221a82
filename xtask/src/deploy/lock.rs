//! One deploy at a time per stack, enforced on the target: the lock is a created (never started)
//! container named `<project>-deploy-lock`. Container names are unique per Docker engine, so
//! `docker container create` is an atomic test-and-set that works the same through `DOCKER_HOST` or a
//! context, for every operator and CI job that reaches the engine. Labels say who holds it and since when.
//! The lock container may mount volumes (the ledger's): while it is held, reads and writes of those go
//! through it with `docker cp` instead of through helper containers of their own.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::container_exec::DockerCli;

pub struct DeployLock {
    docker: DockerCli,
    name: String,
    released: bool,
    holding: Holding,
}

/// The lock container's name while this process holds the lock; shared with whoever reaches what it
/// mounts, and emptied when the lock goes.
#[derive(Clone, Debug, Default)]
pub struct Holding(Arc<Mutex<Option<String>>>);

impl Holding {
    pub fn container(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, container: Option<String>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = container;
    }
}

/// What a lock is taken with.
pub struct LockRequest<'a> {
    /// Any image on the target (never run).
    pub image: &'a str,
    pub command: &'a str,
    pub who: &'a str,
    /// `--volume` specs for the lock container.
    pub volumes: &'a [String],
    pub holding: Holding,
}

#[derive(Debug, Deserialize, PartialEq)]
pub struct Holder {
    #[serde(rename = "avalon.lock.holder", default)]
    pub holder: String,
    #[serde(rename = "avalon.lock.command", default)]
    pub command: String,
    #[serde(rename = "avalon.lock.since", default)]
    pub since: String,
}

pub fn lock_name(project: &str) -> String {
    format!("{project}-deploy-lock")
}

impl DeployLock {
    /// Takes the lock or fails naming its holder.
    pub fn acquire(
        docker: &DockerCli,
        project: &str,
        request: LockRequest<'_>,
    ) -> anyhow::Result<Self> {
        let name = lock_name(project);
        let since = crate::deploy::now_rfc3339();
        let mut create = docker
            .invocation()
            .args(["container", "create", "--name", &name])
            .args(["--label", &format!("avalon.lock.holder={}", request.who)])
            .args([
                "--label",
                &format!("avalon.lock.command={}", request.command),
            ])
            .args(["--label", &format!("avalon.lock.since={since}")]);
        for volume in request.volumes {
            create = create.args(["--volume", volume.as_str()]);
        }
        let created = create.arg(request.image.to_owned()).capture(None);
        if let Err(err) = created {
            let holder = Self::holder(docker, project).ok().flatten();
            return match holder {
                Some(holder) => bail!(
                    "another {} by {} holds the deploy lock since {}; if it is gone, remove the lock with \
                     `docker container rm {name}`",
                    holder.command,
                    holder.holder,
                    holder.since
                ),
                None => Err(err.context(format!("cannot take the deploy lock {name}"))),
            };
        }
        request.holding.set(Some(name.clone()));
        Ok(Self {
            docker: docker.clone(),
            name,
            released: false,
            holding: request.holding,
        })
    }

    /// Who holds the lock, if anyone.
    pub fn holder(docker: &DockerCli, project: &str) -> anyhow::Result<Option<Holder>> {
        let name = lock_name(project);
        let output = docker
            .invocation()
            .args([
                "container",
                "ls",
                "--all",
                "--filter",
                &format!("name=^{name}$"),
                "--format",
                "{{json .Labels}}",
            ])
            .capture(None)?;
        let Some(line) = output.lines().next() else {
            return Ok(None);
        };
        parse_labels(line).map(Some)
    }

    pub fn release(mut self) -> anyhow::Result<()> {
        self.released = true;
        self.remove()
    }

    fn remove(&self) -> anyhow::Result<()> {
        self.holding.set(None);
        self.docker
            .invocation()
            .args(["container", "rm", "--force", &self.name])
            .capture(None)
            .map(|_| ())
            .with_context(|| format!("cannot release the deploy lock {}", self.name))
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        if !self.released
            && let Err(err) = self.remove()
        {
            eprintln!(
                "ERROR: {err:#}; remove it by hand: docker container rm {}",
                self.name
            );
        }
    }
}

/// `docker ps --format '{{json .Labels}}'` prints `"a=b,c=d"`.
fn parse_labels(line: &str) -> anyhow::Result<Holder> {
    let text: String =
        serde_json::from_str(line.trim()).context("unexpected docker label output")?;
    let mut map = serde_json::Map::new();
    for pair in text.split(',') {
        if let Some((key, value)) = pair.split_once('=') {
            map.insert(key.to_owned(), serde_json::Value::String(value.to_owned()));
        }
    }
    serde_json::from_value(serde_json::Value::Object(map)).context("unexpected lock labels")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn holder_labels_are_read_back() {
        let holder = parse_labels(
            r#""avalon.lock.command=deploy,avalon.lock.holder=ops@host,avalon.lock.since=2026-11-26T01:00:00Z""#,
        )
        .unwrap();
        assert_eq!(
            holder,
            Holder {
                holder: "ops@host".to_owned(),
                command: "deploy".to_owned(),
                since: "2026-11-26T01:00:00Z".to_owned()
            }
        );
        assert_eq!(lock_name("avalon-prod"), "avalon-prod-deploy-lock");
    }
}
