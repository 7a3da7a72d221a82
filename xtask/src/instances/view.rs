//! The registry beside the engine: one row per instance, whether only the engine knows it (a container
//! that has not registered), only the registry does (a record whose container is gone), or both. A
//! record names its container by `host`, the container's hostname (Docker's default: the first 12
//! characters of its id). The join is a pure function of the two listings, tested without Docker.

use avalon_runtime::registry::{InstanceRecord, InstanceState};
use serde::Serialize;

use crate::deploy::{ContainerInfo, Target};

/// The Compose services (before any slot suffix) whose containers register.
const REGISTERING_SERVICES: [&str; 2] = ["api", "websocket"];

#[derive(Debug, Clone, Serialize)]
pub struct InstancesView {
    pub project: String,
    pub instances: Vec<Instance>,
    pub disagreements: Vec<Disagreement>,
}

/// One instance as the engine and the registry see it; a side that does not know it leaves its fields
/// empty (`null` in JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Instance {
    /// The registry id (`<service>-<host>-<port>`); `None`: not registered.
    pub id: Option<String>,
    /// The container's name; `None`: no container of the stack has the record's host.
    pub container: Option<String>,
    /// `api` or `websocket`.
    pub service: String,
    /// `blue`/`green`: the record's slot, else the container's; `None` for the unslotted services.
    pub slot: Option<String>,
    /// The record's version, else the container's release label.
    pub version: Option<String>,
    /// The registry's state (`ready` | `draining`); `None`: not registered.
    pub state: Option<InstanceState>,
    /// The engine's container state (`running`, `exited`, …) and health.
    pub container_state: Option<String>,
    pub health: Option<String>,
    /// The container's address on the stack's backend network (where the edge reaches it).
    pub backend_ip: Option<String>,
    /// What the instance registered as its own `ip:port`.
    pub address: Option<String>,
    pub connections: Option<u64>,
    pub rooms: Option<u64>,
    pub live_games: Option<u64>,
    pub max_connections: Option<u64>,
    pub heartbeat_at: Option<String>,
}

/// Where the engine and the registry disagree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Disagreement {
    /// `unregistered`: a container is up (and past its start period) but has no record.
    /// `no_container`: a record whose host is no container of the stack.
    /// `container_not_running`: a record whose container is stopped (it vanishes within REGISTRY_TTL).
    /// `service_mismatch`: the record's service or slot differs from its container's.
    pub kind: &'static str,
    pub container: Option<String>,
    pub id: Option<String>,
    pub detail: String,
}

/// Reads both sides and joins them.
pub fn view(target: &Target) -> anyhow::Result<InstancesView> {
    let containers = target.containers()?;
    let records = super::registry_read::read(target)?;
    Ok(join(&target.project, &records, &containers))
}

/// `api-blue` → `api`; a service that does not register → `None`.
fn registering_base(service: &str) -> Option<&'static str> {
    let base = service
        .strip_suffix("-blue")
        .or_else(|| service.strip_suffix("-green"))
        .unwrap_or(service);
    REGISTERING_SERVICES
        .into_iter()
        .find(|registering| *registering == base)
}

/// The container's address on `<project>_backend` (any `…backend` network when the name differs).
fn backend_ip(project: &str, container: &ContainerInfo) -> Option<String> {
    let exact = format!("{project}_backend");
    container
        .networks
        .get(&exact)
        .or_else(|| {
            container
                .networks
                .iter()
                .find(|(name, _)| name.ends_with("backend"))
                .map(|(_, ip)| ip)
        })
        .cloned()
}

/// Whether a record names this container: its hostname, or its short id when the hostname is unknown.
fn hosts(container: &ContainerInfo, record: &InstanceRecord) -> bool {
    if container.hostname.is_empty() {
        container.id == record.host
    } else {
        container.hostname == record.host
    }
}

pub fn join(
    project: &str,
    records: &[InstanceRecord],
    containers: &[ContainerInfo],
) -> InstancesView {
    let mut instances = Vec::new();
    let mut disagreements = Vec::new();
    let mut matched = vec![false; records.len()];
    for container in containers.iter().filter(|c| !c.one_off) {
        let Some(base) = registering_base(&container.service) else {
            continue;
        };
        let found = records
            .iter()
            .enumerate()
            .find(|(_, record)| hosts(container, record));
        let record = found.map(|(index, record)| {
            matched[index] = true;
            record
        });
        if !container.running() && record.is_none() {
            // A stopped slot kept for rollback: neither side expects a record.
            continue;
        }
        instances.push(row(project, base, Some(container), record));
        match record {
            None if container.health != "starting" => disagreements.push(Disagreement {
                kind: "unregistered",
                container: Some(container.name.clone()),
                id: None,
                detail: format!(
                    "{} is {} ({}) but has no record in the registry",
                    container.name, container.state, container.health
                ),
            }),
            None => {}
            Some(record) => disagreements.extend(compare(base, container, record)),
        }
    }
    for (record, _) in records
        .iter()
        .zip(&matched)
        .filter(|(_, matched)| !**matched)
    {
        instances.push(row(project, &record.service, None, Some(record)));
        disagreements.push(Disagreement {
            kind: "no_container",
            container: None,
            id: Some(record.id.clone()),
            detail: format!(
                "{} is registered ({}, last heartbeat {}) but no container of project {project} has host {}",
                record.id, record.state, record.heartbeat_at, record.host
            ),
        });
    }
    instances.sort_by(|a, b| {
        (&a.service, &a.slot, &a.container, &a.id).cmp(&(&b.service, &b.slot, &b.container, &b.id))
    });
    InstancesView {
        project: project.to_owned(),
        instances,
        disagreements,
    }
}

/// A record and its container that disagree about what the container is.
fn compare(base: &str, container: &ContainerInfo, record: &InstanceRecord) -> Vec<Disagreement> {
    let mut found = Vec::new();
    let disagreement = |kind, detail| Disagreement {
        kind,
        container: Some(container.name.clone()),
        id: Some(record.id.clone()),
        detail,
    };
    if !container.running() {
        found.push(disagreement(
            "container_not_running",
            format!(
                "{} is registered ({}) but its container {} is {}; the record expires within REGISTRY_TTL",
                record.id, record.state, container.name, container.state
            ),
        ));
    }
    let container_slot = container.slot.map(|slot| slot.name().to_owned());
    if record.service != base || record.slot != container_slot {
        found.push(disagreement(
            "service_mismatch",
            format!(
                "{} registered as {} slot {} but runs in {} (slot {})",
                record.id,
                record.service,
                record.slot.as_deref().unwrap_or("none"),
                container.service,
                container_slot.as_deref().unwrap_or("none"),
            ),
        ));
    }
    found
}

fn row(
    project: &str,
    base: &str,
    container: Option<&ContainerInfo>,
    record: Option<&InstanceRecord>,
) -> Instance {
    Instance {
        id: record.map(|r| r.id.clone()),
        container: container.map(|c| c.name.clone()),
        service: base.to_owned(),
        slot: record.and_then(|r| r.slot.clone()).or_else(|| {
            container
                .and_then(|c| c.slot)
                .map(|slot| slot.name().to_owned())
        }),
        version: record
            .map(|r| r.version.clone())
            .or_else(|| container.and_then(|c| c.release.clone())),
        state: record.map(|r| r.state),
        container_state: container.map(|c| c.state.clone()),
        health: container.map(|c| c.health.clone()),
        backend_ip: container.and_then(|c| backend_ip(project, c)),
        address: record.map(|r| r.address.clone()),
        connections: record.map(|r| r.connections),
        rooms: record.map(|r| r.rooms),
        live_games: record.map(|r| r.live_games),
        max_connections: record.map(|r| r.max_connections),
        heartbeat_at: record.map(|r| r.heartbeat_at.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn container(service: &str, hostname: &str, state: &str, health: &str) -> ContainerInfo {
        let slot = service
            .rsplit_once('-')
            .map(|(_, slot)| format!(r#","avalon.slot":"{slot}""#))
            .unwrap_or_default();
        let json = format!(
            r#"[{{"Id":"{hostname}ffff","Name":"/p-{service}-{hostname}","Image":"sha256:img","RestartCount":0,
                "State":{{"Status":"{state}","Health":{{"Status":"{health}"}}}},
                "Config":{{"Image":"x","Hostname":"{hostname}","Labels":{{"com.docker.compose.service":"{service}"{slot}}}}},
                "NetworkSettings":{{"Networks":{{"p_backend":{{"IPAddress":"10.1.0.{}"}},"p_data":{{"IPAddress":"10.2.0.9"}}}}}}}}]"#,
            hostname.len()
        );
        crate::deploy::parse_inspect(&json).unwrap().remove(0)
    }

    fn record(
        service: &str,
        host: &str,
        slot: Option<&str>,
        state: InstanceState,
    ) -> InstanceRecord {
        let port = if service == "api" { 3000 } else { 3001 };
        InstanceRecord {
            id: format!("{service}-{host}-{port}"),
            service: service.to_owned(),
            version: "0.3.0".to_owned(),
            revision: "abc".to_owned(),
            slot: slot.map(str::to_owned),
            host: host.to_owned(),
            address: format!("10.2.0.9:{port}"),
            port,
            started_at: "2026-12-05T02:40:00Z".to_owned(),
            heartbeat_at: "2026-12-05T02:41:00Z".to_owned(),
            state,
            connections: 5,
            rooms: 2,
            live_games: 1,
            max_connections: 10000,
        }
    }

    #[test]
    fn agreeing_sides_join_by_hostname_without_disagreement() {
        let containers = [
            container("api-blue", "aaaaaaaaaaaa", "running", "healthy"),
            container("websocket-blue", "bbbbbbbbbbbb", "running", "healthy"),
            container("nginx", "cccccccccccc", "running", "healthy"),
            container("redis", "dddddddddddd", "running", "healthy"),
        ];
        let records = [
            record("api", "aaaaaaaaaaaa", Some("blue"), InstanceState::Ready),
            record(
                "websocket",
                "bbbbbbbbbbbb",
                Some("blue"),
                InstanceState::Draining,
            ),
        ];
        let view = join("p", &records, &containers);
        assert!(view.disagreements.is_empty(), "{:#?}", view.disagreements);
        assert_eq!(view.instances.len(), 2, "nginx and redis do not register");
        let ws = &view.instances[1];
        assert_eq!(
            ws.container.as_deref(),
            Some("p-websocket-blue-bbbbbbbbbbbb")
        );
        assert_eq!(ws.state, Some(InstanceState::Draining));
        assert_eq!(ws.backend_ip.as_deref(), Some("10.1.0.12"));
        assert_eq!(
            (ws.connections, ws.rooms, ws.live_games),
            (Some(5), Some(2), Some(1))
        );
        assert_eq!(ws.slot.as_deref(), Some("blue"));
    }

    #[test]
    fn a_container_up_without_a_record_and_a_record_without_a_container_are_flagged() {
        let containers = [
            container("api", "aaaaaaaaaaaa", "running", "healthy"),
            // Still in its start period: not registered yet is expected, so not a disagreement.
            container("api", "eeeeeeeeeeee", "running", "starting"),
            // A kept slot, stopped and unregistered: nothing to say.
            container("websocket-green", "ffffffffffff", "exited", "unhealthy"),
        ];
        let records = [record(
            "websocket",
            "999999999999",
            None,
            InstanceState::Ready,
        )];
        let view = join("p", &records, &containers);
        let kinds: Vec<_> = view
            .disagreements
            .iter()
            .map(|d| (d.kind, d.container.as_deref(), d.id.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("unregistered", Some("p-api-aaaaaaaaaaaa"), None),
                ("no_container", None, Some("websocket-999999999999-3001")),
            ]
        );
        assert_eq!(view.instances.len(), 3, "{:#?}", view.instances);
        let orphan = view
            .instances
            .iter()
            .find(|i| i.container.is_none())
            .unwrap();
        assert_eq!(orphan.service, "websocket");
        assert_eq!(orphan.backend_ip, None);
    }

    #[test]
    fn a_stopped_container_still_registered_and_a_wrong_slot_are_flagged() {
        let containers = [
            container("websocket-green", "aaaaaaaaaaaa", "exited", "unhealthy"),
            container("api-blue", "bbbbbbbbbbbb", "running", "healthy"),
        ];
        let records = [
            record(
                "websocket",
                "aaaaaaaaaaaa",
                Some("green"),
                InstanceState::Ready,
            ),
            record("api", "bbbbbbbbbbbb", None, InstanceState::Ready),
        ];
        let view = join("p", &records, &containers);
        let kinds: Vec<_> = view.disagreements.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            ["container_not_running", "service_mismatch"],
            "{:#?}",
            view.disagreements
        );
        assert!(
            view.disagreements[1]
                .detail
                .contains("slot none but runs in api-blue (slot blue)")
        );
    }

    #[test]
    fn without_a_hostname_the_short_id_names_the_container() {
        let mut bare = container("api", "aaaaaaaaaaaa", "running", "healthy");
        bare.hostname.clear();
        let id = bare.id.clone();
        let view = join(
            "p",
            &[record("api", &id, None, InstanceState::Ready)],
            &[bare],
        );
        assert!(view.disagreements.is_empty(), "{:#?}", view.disagreements);
    }
}
