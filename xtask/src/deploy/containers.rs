//! The stack's containers as `docker container inspect` describes them: slot, release, health, restarts,
//! how the process last ended, its healthcheck and its bind mounts. Pure parsing; the listing itself is
//! [`super::target::Target`]'s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::slots::Slot;

/// One container of the stack, from `docker inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub service: String,
    pub slot: Option<Slot>,
    /// The image reference it was created from, and the image id it runs.
    pub image: String,
    pub image_id: String,
    /// The release label set when a slot was started.
    pub release: Option<String>,
    /// The config digest of the overlay the slot was started with (its label; `None` on containers
    /// started before xtask wrote one, or not by a slot start).
    pub config_digest: Option<String>,
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a healthcheck.
    pub health: String,
    pub restart_count: u64,
    /// Consecutive failed healthchecks right now.
    pub failing_streak: u64,
    /// How the process last ended (0 before it ever did), and whether the kernel's OOM killer ended it.
    pub exit_code: i64,
    pub oom_killed: bool,
    /// When the process last ended (`None` while it never has).
    #[serde(skip)]
    pub finished_at: Option<time::OffsetDateTime>,
    /// A `docker compose run` container, not a service replica.
    #[serde(skip)]
    pub one_off: bool,
    /// The image's or compose's healthcheck command, as an argv to `docker exec` (`None` without one).
    #[serde(skip)]
    pub healthcheck: Option<Vec<String>>,
    /// Bind mounts, path in the container → path on the engine's host.
    #[serde(skip)]
    pub binds: BTreeMap<String, String>,
    /// The container's hostname (Docker's default: the first 12 characters of its id); what an instance
    /// writes as `host` in the instance registry.
    #[serde(skip)]
    pub hostname: String,
    /// IPv4 address on each network it is attached to, by network name (`avalon-offline_backend`).
    #[serde(skip)]
    pub networks: BTreeMap<String, String>,
}

/// What starting a kept container again needs, known when the plan is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    #[serde(skip)]
    pub healthcheck: Option<Vec<String>>,
}

impl ContainerInfo {
    pub fn kept(&self) -> KeptContainer {
        KeptContainer {
            id: self.id.clone(),
            name: self.name.clone(),
            service: self.service.clone(),
            healthcheck: self.healthcheck.clone(),
        }
    }

    pub fn running(&self) -> bool {
        self.state == "running"
    }

    pub fn healthy(&self) -> bool {
        self.running() && (self.health == "healthy" || self.health == "none")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Inspect {
    id: String,
    pub(super) name: String,
    image: String,
    restart_count: u64,
    state: InspectState,
    config: InspectConfig,
    #[serde(default)]
    mounts: Vec<InspectMount>,
    #[serde(default)]
    pub(super) network_settings: Option<InspectNetwork>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct InspectNetwork {
    /// `"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]`; null for a port that is not published.
    #[serde(default)]
    pub(super) ports: Option<BTreeMap<String, Option<Vec<InspectPortBinding>>>>,
    #[serde(default)]
    networks: Option<BTreeMap<String, InspectEndpoint>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectEndpoint {
    /// Empty while the container is not running.
    #[serde(default, rename = "IPAddress")]
    ip_address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct InspectPortBinding {
    #[serde(default)]
    pub(super) host_ip: String,
    pub(super) host_port: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    status: String,
    #[serde(default)]
    health: Option<InspectHealth>,
    #[serde(default)]
    exit_code: i64,
    #[serde(default, rename = "OOMKilled")]
    oom_killed: bool,
    /// RFC 3339; `0001-01-01T00:00:00Z` for a container that never stopped.
    #[serde(default)]
    finished_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealth {
    status: String,
    #[serde(default)]
    failing_streak: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    image: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    healthcheck: Option<InspectHealthcheck>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealthcheck {
    #[serde(default)]
    test: Vec<String>,
}

/// A healthcheck's `Test` as an argv for `docker exec`: `CMD` runs as given, `CMD-SHELL` through `sh -c`;
/// `NONE` or an empty test has nothing to run.
fn healthcheck_argv(test: &[String]) -> Option<Vec<String>> {
    match test.split_first()? {
        (kind, rest) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        (kind, [command]) if kind == "CMD-SHELL" => {
            Some(vec!["sh".to_owned(), "-c".to_owned(), command.clone()])
        }
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectMount {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    destination: String,
}

pub use super::labels::{CONFIG_LABEL, RELEASE_LABEL, SLOT_LABEL};

/// Parses `docker inspect` output into container facts.
#[cfg(test)]
pub(crate) fn parse_inspect(json: &str) -> anyhow::Result<Vec<ContainerInfo>> {
    use anyhow::Context as _;
    let raw: Vec<Inspect> =
        serde_json::from_str(json).context("unexpected `docker inspect` output")?;
    Ok(raw.into_iter().map(container_info).collect())
}

/// Docker's `FinishedAt`; its zero time (year 1) means the process never ended.
fn finished_at(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .filter(|at| at.year() > 1)
}

pub(super) fn container_info(raw: Inspect) -> ContainerInfo {
    let labels = raw.config.labels.unwrap_or_default();
    let networks = raw
        .network_settings
        .and_then(|settings| settings.networks)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, endpoint)| !endpoint.ip_address.is_empty())
        .map(|(name, endpoint)| (name, endpoint.ip_address))
        .collect();
    let service = labels
        .get("com.docker.compose.service")
        .cloned()
        .unwrap_or_default();
    ContainerInfo {
        id: raw.id.chars().take(12).collect(),
        name: raw.name.trim_start_matches('/').to_owned(),
        slot: labels
            .get(SLOT_LABEL)
            .and_then(|s| Slot::parse(s))
            .or_else(|| Slot::of_service(&service)),
        service,
        image: raw.config.image,
        image_id: raw.image,
        release: labels.get(RELEASE_LABEL).cloned(),
        config_digest: labels.get(CONFIG_LABEL).cloned(),
        state: raw.state.status,
        health: raw
            .state
            .health
            .as_ref()
            .map_or_else(|| "none".to_owned(), |h| h.status.clone()),
        failing_streak: raw.state.health.map_or(0, |h| h.failing_streak),
        exit_code: raw.state.exit_code,
        oom_killed: raw.state.oom_killed,
        finished_at: finished_at(&raw.state.finished_at),
        one_off: labels
            .get("com.docker.compose.oneoff")
            .is_some_and(|value| value.eq_ignore_ascii_case("true")),
        restart_count: raw.restart_count,
        healthcheck: raw
            .config
            .healthcheck
            .and_then(|check| healthcheck_argv(&check.test)),
        binds: raw
            .mounts
            .into_iter()
            .filter(|m| m.kind == "bind")
            .map(|m| (m.destination, m.source))
            .collect(),
        hostname: raw.config.hostname,
        networks,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The stack knows the slots by the names it defines (stack::SLOT_NAMES): the same as deploy's.
    #[test]
    fn the_stack_names_the_slots_deploy_has() {
        assert_eq!(
            crate::deploy::slots::ALL.map(Slot::name),
            crate::stack::SLOT_NAMES
        );
    }

    #[test]
    fn healthcheck_tests_become_exec_argvs() {
        let argv = |test: &[&str]| {
            healthcheck_argv(&test.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(
            argv(&["CMD", "/usr/local/bin/avalon-api", "healthcheck"]),
            Some(vec![
                "/usr/local/bin/avalon-api".to_owned(),
                "healthcheck".to_owned()
            ])
        );
        assert_eq!(
            argv(&["CMD-SHELL", "redis-cli ping"]),
            Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "redis-cli ping".to_owned()
            ])
        );
        assert_eq!(argv(&["NONE"]), None);
        assert_eq!(argv(&["CMD"]), None);
        assert_eq!(argv(&[]), None);
    }

    #[test]
    fn inspect_output_gives_slot_health_and_restarts() {
        let json = r#"[{"Id":"0123456789abcdef","Name":"/avalon-offline-api-green-1","Image":"sha256:img","RestartCount":3,
            "State":{"Status":"running","Health":{"Status":"unhealthy","FailingStreak":4}},
            "Config":{"Image":"avalon-api:1.2.0","Hostname":"0123456789ab","Labels":{"com.docker.compose.service":"api-green","avalon.release":"1.2.0"}},
            "Mounts":[],
            "NetworkSettings":{"Ports":{},"Networks":{"avalon-offline_backend":{"IPAddress":"172.20.0.4"},"avalon-offline_data":{"IPAddress":""}}}}]"#;
        let containers = parse_inspect(json).unwrap();
        let c = &containers[0];
        assert_eq!(
            (c.id.as_str(), c.name.as_str(), c.slot),
            (
                "0123456789ab",
                "avalon-offline-api-green-1",
                Some(Slot::Green)
            )
        );
        assert_eq!(
            (c.health.as_str(), c.restart_count, c.failing_streak),
            ("unhealthy", 3, 4)
        );
        assert!(!c.healthy());
        assert_eq!(c.release.as_deref(), Some("1.2.0"));
        assert_eq!(c.hostname, "0123456789ab");
        assert_eq!(
            c.networks,
            BTreeMap::from([("avalon-offline_backend".to_owned(), "172.20.0.4".to_owned())]),
            "a network without an address (container stopped) is left out"
        );
    }
}
