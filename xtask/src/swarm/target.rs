//! The stack on a Swarm as the manager reports it: services, their tasks, nodes, and waiting (with a
//! deadline) until a service converged.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::command::DockerCli;
use crate::command::swarm as argv;

pub struct SwarmTarget {
    pub docker: DockerCli,
    /// The stack name (= the compose project, `avalon-<env>` by default).
    pub stack: String,
}

/// One line of `docker service ls`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ServiceRow {
    #[serde(rename(deserialize = "Name"))]
    pub name: String,
    #[serde(rename(deserialize = "Mode"))]
    pub mode: String,
    /// `running/desired`, e.g. `2/2`.
    #[serde(rename(deserialize = "Replicas"))]
    pub replicas: String,
    #[serde(rename(deserialize = "Image"))]
    pub image: String,
    #[serde(rename(deserialize = "Ports"), default)]
    pub ports: String,
}

impl ServiceRow {
    /// (running, desired) from `2/3` (`2/3 (max 1 per node)` too).
    pub fn counts(&self) -> Option<(u32, u32)> {
        let head = self.replicas.split_whitespace().next()?;
        let (running, desired) = head.split_once('/')?;
        Some((running.parse().ok()?, desired.parse().ok()?))
    }

    pub fn converged(&self) -> bool {
        self.counts()
            .is_some_and(|(running, desired)| running == desired)
    }
}

/// One line of `docker node ls`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct NodeRow {
    #[serde(rename(deserialize = "Hostname"))]
    pub hostname: String,
    #[serde(rename(deserialize = "Status"))]
    pub status: String,
    #[serde(rename(deserialize = "Availability"))]
    pub availability: String,
    #[serde(rename(deserialize = "ManagerStatus"), default)]
    pub manager_status: String,
}

/// One line of `docker service ps`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct TaskRow {
    #[serde(rename(deserialize = "Name"))]
    pub name: String,
    #[serde(rename(deserialize = "Node"))]
    pub node: String,
    #[serde(rename(deserialize = "DesiredState"))]
    pub desired_state: String,
    #[serde(rename(deserialize = "CurrentState"))]
    pub current_state: String,
    #[serde(rename(deserialize = "Image"))]
    pub image: String,
    #[serde(rename(deserialize = "Error"), default)]
    pub error: String,
}

/// `docker service inspect`'s update status, when an update ran.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UpdateStatus {
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "Message", default)]
    pub message: String,
}

/// Parses JSON lines (`--format {{json .}}`).
pub fn json_lines<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<Vec<T>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("unexpected docker output: {line}"))
        })
        .collect()
}

/// What an update's state means for a waiter.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateVerdict {
    Done,
    Running,
    /// Swarm rolled it back or paused it: the reason.
    Failed(String),
}

/// `completed` is done; `updating`/`rollback_started` still run; a rollback or a pause is a failure.
pub fn update_verdict(status: Option<&UpdateStatus>) -> UpdateVerdict {
    let Some(status) = status else {
        return UpdateVerdict::Done;
    };
    match status.state.as_str() {
        "completed" | "" => UpdateVerdict::Done,
        "updating" => UpdateVerdict::Running,
        state => UpdateVerdict::Failed(format!("update {state}: {}", status.message)),
    }
}

impl SwarmTarget {
    pub fn new(project: String) -> Self {
        Self {
            docker: DockerCli::default(),
            stack: project,
        }
    }

    pub fn service(&self, service: &str) -> String {
        super::service_name(&self.stack, service)
    }

    /// Fails unless DOCKER_HOST reaches a swarm manager.
    pub fn require_manager(&self) -> anyhow::Result<()> {
        let state = argv::swarm_state(&self.docker)
            .capture(None)
            .context("cannot reach the engine (DOCKER_HOST)")?;
        let mut words = state.split_whitespace();
        match (words.next(), words.next()) {
            (Some("active"), Some("true")) => Ok(()),
            (Some("active"), _) => bail!(
                "the engine DOCKER_HOST reaches is a swarm worker; point DOCKER_HOST at a manager \
                 (`cargo xtask lab env`)"
            ),
            _ => bail!(
                "the engine DOCKER_HOST reaches is not in a swarm (state {:?}); for the lab: \
                 `cargo xtask lab up --nodes 3` then `eval $(cargo xtask lab env)`",
                state.trim()
            ),
        }
    }

    pub fn services(&self) -> anyhow::Result<Vec<ServiceRow>> {
        json_lines(&argv::service_ls(&self.docker, &self.stack).capture(None)?)
    }

    pub fn nodes(&self) -> anyhow::Result<Vec<NodeRow>> {
        json_lines(&argv::node_ls(&self.docker).capture(None)?)
    }

    pub fn tasks(&self, service: &str) -> anyhow::Result<Vec<TaskRow>> {
        json_lines(&argv::service_ps(&self.docker, &self.service(service)).capture(None)?)
    }

    /// The image a service's spec names now, and its update status.
    pub fn spec(&self, service: &str) -> anyhow::Result<(String, Option<UpdateStatus>)> {
        let text = argv::service_inspect(&self.docker, &[self.service(service)]).capture(None)?;
        let inspected: Vec<serde_json::Value> =
            serde_json::from_str(&text).context("unexpected `docker service inspect` output")?;
        let first = inspected
            .first()
            .with_context(|| format!("no service {}", self.service(service)))?;
        let image = first["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            .as_str()
            .unwrap_or_default();
        // Without a registry the spec keeps the tag; with one Swarm appends `@sha256:…`.
        let image = image.split('@').next().unwrap_or_default().to_owned();
        let status = match first.get("UpdateStatus") {
            Some(value) if !value.is_null() => Some(serde_json::from_value(value.clone())?),
            _ => None,
        };
        Ok((image, status))
    }

    /// Waits until every service of the stack runs all its replicas (a task with a healthcheck counts as
    /// running once healthy), at least `expected` services exist, within `timeout`.
    pub fn wait_converged(
        &self,
        expected: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ServiceRow>> {
        let deadline = Instant::now() + timeout;
        loop {
            let services = self.services()?;
            let pending: Vec<String> = services
                .iter()
                .filter(|service| !service.converged())
                .map(|service| format!("{} {}", service.name, service.replicas))
                .collect();
            if services.len() >= expected && pending.is_empty() {
                return Ok(services);
            }
            if Instant::now() >= deadline {
                bail!(
                    "the stack {} did not converge within {}s: {}",
                    self.stack,
                    timeout.as_secs(),
                    if pending.is_empty() {
                        format!("{} of {expected} services", services.len())
                    } else {
                        pending.join(", ")
                    }
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Waits until a rolling update of `service` to `image` completed and every replica runs it; fails when
    /// Swarm rolled it back or paused it, or at the deadline.
    pub fn wait_updated(
        &self,
        service: &str,
        image: &str,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            let (spec_image, status) = self.spec(service)?;
            match update_verdict(status.as_ref()) {
                UpdateVerdict::Failed(why) => bail!("{}: {why}", self.service(service)),
                UpdateVerdict::Done if spec_image == image => {
                    let row = self
                        .services()?
                        .into_iter()
                        .find(|row| row.name == self.service(service));
                    if row.is_some_and(|row| row.converged()) {
                        return Ok(());
                    }
                }
                UpdateVerdict::Done => bail!(
                    "{} runs {spec_image}, not {image} (rolled back?)",
                    self.service(service)
                ),
                UpdateVerdict::Running => {}
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not finish its update to {image} in time (`docker service ps {}`)",
                    self.service(service),
                    self.service(service)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The id of a running container of `service`'s tasks on the engine DOCKER_HOST reaches (the
    /// manager): redis is pinned there so `docker exec` works.
    pub fn local_task_container(&self, service: &str) -> anyhow::Result<String> {
        let ids = argv::task_containers(&self.docker, &self.service(service)).capture(None)?;
        ids.split_whitespace().next().map(str::to_owned).with_context(|| {
            format!(
                "no running {} task on the engine DOCKER_HOST reaches (it is pinned to the node labelled \
                 avalon.data=true, which must be that manager)",
                self.service(service)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn service_listing_lines_parse_and_count() {
        let rows: Vec<ServiceRow> = json_lines(
            r#"{"ID":"x","Image":"avalon-api:v1","Mode":"replicated","Name":"s_api","Ports":"","Replicas":"1/2"}
{"ID":"y","Image":"n:1","Mode":"replicated","Name":"s_nginx","Ports":"","Replicas":"1/1 (max 1 per node)"}"#,
        )
        .unwrap();
        assert_eq!(rows[0].counts(), Some((1, 2)));
        assert!(!rows[0].converged());
        assert!(rows[1].converged());
    }

    #[test]
    fn an_update_is_done_running_or_failed() {
        let status = |state: &str| UpdateStatus {
            state: state.to_owned(),
            message: "m".to_owned(),
        };
        assert_eq!(update_verdict(None), UpdateVerdict::Done);
        assert_eq!(
            update_verdict(Some(&status("completed"))),
            UpdateVerdict::Done
        );
        assert_eq!(
            update_verdict(Some(&status("updating"))),
            UpdateVerdict::Running
        );
        for state in [
            "rollback_completed",
            "paused",
            "rollback_started",
            "rollback_paused",
        ] {
            assert!(matches!(
                update_verdict(Some(&status(state))),
                UpdateVerdict::Failed(_)
            ));
        }
    }
}
