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
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct UpdateStatus {
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "Message", default)]
    pub message: String,
    /// RFC 3339; compared as a string with the value read before an update, to tell a stale status (the
    /// previous update's) from the new one without trusting clocks.
    #[serde(rename = "StartedAt", default)]
    pub started_at: String,
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

/// What `docker service inspect` says of one service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceSpec {
    /// The image reference exactly as the spec names it (Swarm may have appended `@sha256:…` to a tag).
    pub image: String,
    /// Replicated mode's count; `None` for a global service.
    pub replicas: Option<u32>,
    pub update: Option<UpdateStatus>,
}

/// One element of `docker service inspect`'s array.
pub fn parse_spec(value: &serde_json::Value) -> anyhow::Result<ServiceSpec> {
    let spec = &value["Spec"];
    let image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .context("`docker service inspect`: no Spec.TaskTemplate.ContainerSpec.Image")?
        .to_owned();
    let replicas = match spec["Mode"]["Replicated"]["Replicas"].as_u64() {
        Some(n) => Some(u32::try_from(n).context("replica count out of range")?),
        None => None,
    };
    let update = match value.get("UpdateStatus") {
        Some(status) if !status.is_null() => {
            Some(serde_json::from_value(status.clone()).context("unexpected UpdateStatus")?)
        }
        _ => None,
    };
    Ok(ServiceSpec {
        image,
        replicas,
        update,
    })
}

/// Whether `actual` (a spec's or a task's image) is the `requested` reference. A digest reference must
/// match in full; a tag matches `tag@sha256:…` too, the digest Swarm appends when it resolved the tag.
pub fn image_matches(requested: &str, actual: &str) -> bool {
    if requested.contains('@') {
        actual == requested
    } else {
        actual.split_once('@').map_or(actual, |(tag, _)| tag) == requested
    }
}

/// Why a service has not converged (`None`: it has), judged from its desired-running tasks
/// (`docker service ps --filter desired-state=running`) and the nodes: every task on a live node must be
/// Running on `image`, and there must be exactly `replicas` of them (at least one for a global service).
/// Tasks on a node that is not Ready are left out: they show Running until Swarm hears from the node again,
/// and Swarm already started their replacements elsewhere.
pub fn tasks_pending(
    tasks: &[TaskRow],
    nodes: &[NodeRow],
    replicas: Option<u32>,
    image: &str,
) -> Option<String> {
    let ready = |node: &str| {
        nodes
            .iter()
            .any(|n| n.hostname == node && n.status.eq_ignore_ascii_case("ready"))
    };
    let mut running = 0u32;
    let mut problems = Vec::new();
    for task in tasks {
        if !task.node.is_empty() && !ready(&task.node) {
            continue;
        }
        if !task.current_state.starts_with("Running") {
            problems.push(format!("{} {}", task.name, task.current_state));
        } else if !image_matches(image, &task.image) {
            problems.push(format!("{} runs {}", task.name, task.image));
        } else {
            running += 1;
        }
    }
    let count_ok = match replicas {
        Some(n) => running == n,
        None => running >= 1,
    };
    if problems.is_empty() && count_ok {
        return None;
    }
    let wanted = replicas.map_or("all".to_owned(), |n| n.to_string());
    let mut why = format!("{running}/{wanted} running on {image}");
    if !problems.is_empty() {
        why.push_str(&format!(" ({})", problems.join(", ")));
    }
    Some(why)
}

/// What an update's state means for a waiter.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateVerdict {
    Done,
    /// No status, or the one from before the command: done only if the tasks already match.
    Unknown,
    Running,
    /// Swarm rolled it back or paused it: the reason.
    Failed(String),
}

/// `completed` is done; `updating` still runs; a rollback (started or finished) or a pause is a failure.
/// `before` is the status' StartedAt read before the update was issued: a status that started then is the
/// previous update's and says nothing about this one.
pub fn update_verdict(status: Option<&UpdateStatus>, before: Option<&str>) -> UpdateVerdict {
    let Some(status) = status else {
        return UpdateVerdict::Unknown;
    };
    if !status.started_at.is_empty() && before == Some(status.started_at.as_str()) {
        return UpdateVerdict::Unknown;
    }
    match status.state.as_str() {
        "completed" => UpdateVerdict::Done,
        "" => UpdateVerdict::Unknown,
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

    /// The service's spec (image, replicas) and its update status.
    pub fn spec(&self, service: &str) -> anyhow::Result<ServiceSpec> {
        let name = self.service(service);
        let text =
            argv::service_inspect(&self.docker, std::slice::from_ref(&name)).capture(None)?;
        let inspected: Vec<serde_json::Value> =
            serde_json::from_str(&text).context("unexpected `docker service inspect` output")?;
        parse_spec(
            inspected
                .first()
                .with_context(|| format!("no service {name}"))?,
        )
    }

    /// The tasks Swarm wants running now.
    pub fn running_tasks(&self, service: &str) -> anyhow::Result<Vec<TaskRow>> {
        json_lines(&argv::service_ps_running(&self.docker, &self.service(service)).capture(None)?)
    }

    /// Why `service` has not converged on its spec (`None`: it has).
    fn pending(
        &self,
        service: &str,
        spec: &ServiceSpec,
        nodes: &[NodeRow],
    ) -> anyhow::Result<Option<String>> {
        let tasks = self.running_tasks(service)?;
        Ok(tasks_pending(&tasks, nodes, spec.replicas, &spec.image))
    }

    /// Waits until every service of the stack runs all its replicas on its spec's image on live nodes (a
    /// task with a healthcheck counts as running once healthy), at least `expected` services exist, within
    /// `timeout`.
    pub fn wait_converged(
        &self,
        expected: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ServiceRow>> {
        let deadline = Instant::now() + timeout;
        let prefix = format!("{}_", self.stack);
        loop {
            let services = self.services()?;
            let nodes = self.nodes()?;
            let mut pending = Vec::new();
            for row in &services {
                let service = row.name.strip_prefix(&prefix).unwrap_or(&row.name);
                let spec = self.spec(service)?;
                // Only states that are still in progress count here: a finished rollback may be a stale
                // status of an earlier update (the tasks say whether the spec is met).
                let state = spec.update.as_ref().map_or("", |u| u.state.as_str());
                if matches!(state, "paused" | "rollback_paused") {
                    bail!("{}: update {state}", row.name);
                }
                if matches!(state, "updating" | "rollback_started") {
                    pending.push(format!("{}: update {state}", row.name));
                } else if let Some(why) = self.pending(service, &spec, &nodes)? {
                    pending.push(format!("{}: {why}", row.name));
                }
            }
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

    /// Waits until `service` runs `replicas` tasks (as its spec says) on its spec's image on live nodes.
    pub fn wait_service(
        &self,
        service: &str,
        replicas: u32,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            let spec = self.spec(service)?;
            let nodes = self.nodes()?;
            let why = if spec.replicas != Some(replicas) {
                format!("spec has {:?} replicas, not {replicas}", spec.replicas)
            } else {
                match self.pending(service, &spec, &nodes)? {
                    None => return Ok(()),
                    Some(why) => why,
                }
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} did not converge in time: {why} (`docker service ps {}`)",
                    self.service(service),
                    self.service(service)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Waits until a rolling update of `service` to `image` completed and every replica runs it; fails when
    /// Swarm rolled it back or paused it, or at the deadline. `before` is the update status' StartedAt read
    /// before the update was issued (see `update_verdict`).
    pub fn wait_updated(
        &self,
        service: &str,
        image: &str,
        before: Option<&str>,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        loop {
            let spec = self.spec(service)?;
            let why = match update_verdict(spec.update.as_ref(), before) {
                UpdateVerdict::Failed(why) => bail!("{}: {why}", self.service(service)),
                UpdateVerdict::Running => "update running".to_owned(),
                UpdateVerdict::Done | UpdateVerdict::Unknown
                    if !image_matches(image, &spec.image) =>
                {
                    bail!(
                        "{} runs {}, not {image} (rolled back?)",
                        self.service(service),
                        spec.image
                    )
                }
                UpdateVerdict::Done | UpdateVerdict::Unknown => {
                    // Unknown (no status yet, or the previous one) passes only on the tasks: right after
                    // `--detach` they are still the old ones.
                    let nodes = self.nodes()?;
                    match self.pending(service, &spec, &nodes)? {
                        None => return Ok(()),
                        Some(why) => why,
                    }
                }
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} did not finish its update to {image} in time: {why} (`docker service ps {}`)",
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
    fn an_update_is_done_running_failed_or_unknown() {
        let status = |state: &str, started: &str| UpdateStatus {
            state: state.to_owned(),
            message: "m".to_owned(),
            started_at: started.to_owned(),
        };
        // Right after `--detach` there may be no status yet: not done, ask the tasks.
        assert_eq!(update_verdict(None, None), UpdateVerdict::Unknown);
        assert_eq!(
            update_verdict(Some(&status("completed", "t2")), Some("t1")),
            UpdateVerdict::Done
        );
        assert_eq!(
            update_verdict(Some(&status("completed", "t2")), None),
            UpdateVerdict::Done
        );
        // The previous update's status (same StartedAt as before the command) says nothing.
        assert_eq!(
            update_verdict(Some(&status("completed", "t1")), Some("t1")),
            UpdateVerdict::Unknown
        );
        assert_eq!(
            update_verdict(Some(&status("rollback_completed", "t1")), Some("t1")),
            UpdateVerdict::Unknown
        );
        assert_eq!(
            update_verdict(Some(&status("updating", "t2")), Some("t1")),
            UpdateVerdict::Running
        );
        for state in [
            "rollback_completed",
            "paused",
            "rollback_started",
            "rollback_paused",
        ] {
            assert!(matches!(
                update_verdict(Some(&status(state, "t2")), Some("t1")),
                UpdateVerdict::Failed(_)
            ));
        }
    }

    #[test]
    fn a_digest_reference_is_compared_in_full_a_tag_without_the_appended_digest() {
        assert!(image_matches("avalon-api:v2", "avalon-api:v2"));
        assert!(image_matches("avalon-api:v2", "avalon-api:v2@sha256:abc"));
        assert!(!image_matches("avalon-api:v2", "avalon-api:v1@sha256:abc"));
        assert!(image_matches(
            "avalon-api:v2@sha256:abc",
            "avalon-api:v2@sha256:abc"
        ));
        assert!(!image_matches(
            "avalon-api:v2@sha256:abc",
            "avalon-api:v2@sha256:def"
        ));
        assert!(!image_matches("avalon-api@sha256:abc", "avalon-api:v2"));
    }

    #[test]
    fn a_spec_is_read_from_service_inspect() {
        let value: serde_json::Value = serde_json::from_str(
            r#"{"Spec":{"Mode":{"Replicated":{"Replicas":2}},
                "TaskTemplate":{"ContainerSpec":{"Image":"avalon-api:v2@sha256:abc"}}},
                "UpdateStatus":{"State":"updating","StartedAt":"2026-12-05T07:00:00Z","Message":"m"}}"#,
        )
        .unwrap();
        let spec = parse_spec(&value).unwrap();
        assert_eq!(spec.image, "avalon-api:v2@sha256:abc");
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.update.unwrap().started_at, "2026-12-05T07:00:00Z");
        let global: serde_json::Value = serde_json::from_str(
            r#"{"Spec":{"Mode":{"Global":{}},"TaskTemplate":{"ContainerSpec":{"Image":"n:1"}}},
                "UpdateStatus":null}"#,
        )
        .unwrap();
        let spec = parse_spec(&global).unwrap();
        assert_eq!((spec.replicas, spec.update), (None, None));
    }

    fn task(name: &str, node: &str, state: &str, image: &str) -> TaskRow {
        TaskRow {
            name: name.to_owned(),
            node: node.to_owned(),
            desired_state: "Running".to_owned(),
            current_state: state.to_owned(),
            image: image.to_owned(),
            error: String::new(),
        }
    }

    fn nodes(down: &[&str]) -> Vec<NodeRow> {
        ["n1", "n2", "n3"]
            .into_iter()
            .map(|name| NodeRow {
                hostname: name.to_owned(),
                status: if down.contains(&name) {
                    "Down"
                } else {
                    "Ready"
                }
                .to_owned(),
                availability: "Active".to_owned(),
                manager_status: String::new(),
            })
            .collect()
    }

    #[test]
    fn convergence_needs_exactly_the_replicas_running_on_the_image() {
        let v2 = "avalon-api:v2";
        let done = [
            task("api.1", "n1", "Running 5 seconds ago", v2),
            task(
                "api.2",
                "n2",
                "Running 3 seconds ago",
                "avalon-api:v2@sha256:x",
            ),
        ];
        assert_eq!(tasks_pending(&done, &nodes(&[]), Some(2), v2), None);
        // Right after the update: the old tasks still run (2/2 in `service ls`), not converged.
        let old = [
            task("api.1", "n1", "Running 1 minute ago", "avalon-api:v1"),
            task("api.2", "n2", "Running 1 minute ago", "avalon-api:v1"),
        ];
        assert!(tasks_pending(&old, &nodes(&[]), Some(2), v2).is_some());
        // start-first: the new task starting next to the old one.
        let mid = [
            task("api.1", "n1", "Starting 1 second ago", v2),
            task("api.1", "n1", "Running 1 minute ago", "avalon-api:v1"),
            task("api.2", "n2", "Running 1 minute ago", "avalon-api:v1"),
        ];
        assert!(tasks_pending(&mid, &nodes(&[]), Some(2), v2).is_some());
        // Scaled 2 -> 4, two still preparing.
        let scaling = [
            done[0].clone(),
            done[1].clone(),
            task("api.3", "n3", "Preparing 1 second ago", v2),
            task("api.4", "", "Pending 1 second ago", v2),
        ];
        assert!(tasks_pending(&scaling, &nodes(&[]), Some(4), v2).is_some());
        assert!(tasks_pending(&done, &nodes(&[]), Some(4), v2).is_some());
        // Scaled 4 -> 2: too many running is not converged either.
        let three = [
            done[0].clone(),
            done[1].clone(),
            task("api.3", "n3", "Running", v2),
        ];
        assert!(tasks_pending(&three, &nodes(&[]), Some(2), v2).is_some());
    }

    #[test]
    fn tasks_on_a_down_node_do_not_count_and_do_not_block() {
        let v2 = "avalon-api:v2";
        // n3 lost: its task still shows Running (5 running for 4 desired in `service ls`).
        let tasks = [
            task("ws.1", "n1", "Running", v2),
            task("ws.2", "n2", "Running", v2),
            task("ws.3", "n3", "Running", v2),
            task("ws.4", "n1", "Running", v2),
            task("ws.3", "n2", "Running", v2),
        ];
        assert_eq!(tasks_pending(&tasks, &nodes(&["n3"]), Some(4), v2), None);
        // Before the replacement runs, the Down node's task does not make up the count.
        assert!(tasks_pending(&tasks[..4], &nodes(&["n3"]), Some(4), v2).is_some());
    }

    #[test]
    fn a_global_service_needs_a_running_task_on_every_live_node() {
        let img = "n:1";
        let tasks = [
            task("g.a", "n1", "Running", img),
            task("g.b", "n2", "Running", img),
        ];
        assert_eq!(tasks_pending(&tasks, &nodes(&[]), None, img), None);
        assert!(tasks_pending(&[], &nodes(&[]), None, img).is_some());
        let starting = [tasks[0].clone(), task("g.b", "n2", "Starting", img)];
        assert!(tasks_pending(&starting, &nodes(&[]), None, img).is_some());
    }
}
