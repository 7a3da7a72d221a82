//! Which instances the edge lists (pure): the registered `ready` instances of the services the edge
//! routes to that have a running container, by their address on a network the edge shares with them.
//!
//! The registry says who is ready and draining; the engine says what runs and where. An instance needs
//! both: a container up but not (yet) registered is not listed, nor a registration without a container.
//! When no instance of a service qualifies its members are left out, and the edge falls back to the
//! service's DNS name (what it did before membership existed).

use std::collections::{BTreeMap, BTreeSet};

use avalon_runtime::registry::{InstanceRecord, InstanceState};
use serde::Serialize;

use crate::deploy::ContainerInfo;
use crate::nginx::EdgeModel;

/// One running api or websocket container and what the registry says of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// 12-character container id (the instance's hostname, as the registry records it).
    pub container_id: String,
    pub container_name: String,
    /// Compose service: `websocket-blue`, or `websocket` on the stack `cargo xtask up` started.
    pub service: String,
    /// `ip:port` on a network the edge shares; `None` when they share none.
    pub address: Option<String>,
    /// Registered and `ready` (not draining).
    pub ready: bool,
    pub registered: bool,
    pub connections: u64,
    pub live_games: u64,
}

/// The api/websocket containers that run, joined with their registrations. `edge_networks`: the edge
/// container's networks (name → address), to pick an address nginx can reach.
pub fn instances(
    containers: &[ContainerInfo],
    records: &[InstanceRecord],
    edge_networks: &BTreeMap<String, String>,
) -> Vec<Instance> {
    containers
        .iter()
        .filter(|c| c.running() && !c.one_off && base_service(&c.service).is_some())
        .map(|container| {
            let record = records.iter().find(|r| {
                (!container.hostname.is_empty() && r.host == container.hostname)
                    || same_host(&r.host, &container.id)
            });
            let port =
                record.map_or_else(|| default_port(&container.service), |record| record.port);
            let address = container
                .networks
                .iter()
                .find(|(network, _)| edge_networks.contains_key(*network))
                .map(|(_, ip)| format!("{ip}:{port}"));
            Instance {
                container_id: container.id.clone(),
                container_name: container.name.clone(),
                service: container.service.clone(),
                address,
                ready: record.is_some_and(|r| r.state == InstanceState::Ready),
                registered: record.is_some(),
                connections: record.map_or(0, |r| r.connections),
                live_games: record.map_or(0, |r| r.live_games),
            }
        })
        .collect()
}

/// The members the edge should list, per service its slots name, leaving out `excluded` container ids
/// (instances a scale-in is about to drain). A service with no qualifying instance gets no entry.
pub fn desired_members(
    model: &EdgeModel,
    instances: &[Instance],
    excluded: &BTreeSet<String>,
) -> BTreeMap<String, Vec<String>> {
    let mut members = BTreeMap::new();
    for service in model.server_hosts() {
        let mut addresses: Vec<String> = instances
            .iter()
            .filter(|i| i.service == service && i.ready && !excluded.contains(&i.container_id))
            .filter_map(|i| i.address.clone())
            .collect();
        addresses.sort();
        addresses.dedup();
        if !addresses.is_empty() {
            members.insert(service.to_owned(), addresses);
        }
    }
    members
}

/// `model` with `members`, or `None` when it already lists exactly those.
pub fn with_members(
    model: &EdgeModel,
    members: BTreeMap<String, Vec<String>>,
) -> Option<EdgeModel> {
    let current: BTreeMap<&String, &Vec<String>> = model
        .members
        .iter()
        .filter(|(_, m)| !m.is_empty())
        .collect();
    let wanted: BTreeMap<&String, &Vec<String>> = members.iter().collect();
    if current == wanted {
        return None;
    }
    let mut next = model.clone();
    next.members = members;
    Some(next)
}

/// Addresses in `after` and not in `before` (added), and the reverse (removed).
pub fn difference(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> (Vec<String>, Vec<String>) {
    let flat = |m: &BTreeMap<String, Vec<String>>| -> BTreeSet<String> {
        m.iter()
            .flat_map(|(service, addresses)| {
                addresses.iter().map(move |a| format!("{service} {a}"))
            })
            .collect()
    };
    let (before, after) = (flat(before), flat(after));
    (
        after.difference(&before).cloned().collect(),
        before.difference(&after).cloned().collect(),
    )
}

/// `api` or `websocket` for the services this stack runs them as.
pub fn base_service(service: &str) -> Option<&'static str> {
    ["api", "websocket"].into_iter().find(|base| {
        service == *base
            || service
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|slot| crate::deploy::Slot::parse(slot).is_some())
    })
}

fn default_port(service: &str) -> u16 {
    match base_service(service) {
        Some("api") => crate::deploy::API_PORT,
        _ => crate::deploy::WS_PORT,
    }
}

/// A record's host is the container's hostname, by default its id (12 characters; either side may be
/// longer): the match when the listing carries no hostname.
fn same_host(host: &str, container_id: &str) -> bool {
    !host.is_empty()
        && !container_id.is_empty()
        && (host.starts_with(container_id) || container_id.starts_with(host))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub(crate) fn container(id: &str, service: &str, ip: &str) -> ContainerInfo {
        let json = format!(
            r#"[{{"Id":"{id}","Name":"/p-{service}-{id}","Image":"sha256:img","RestartCount":0,
                "State":{{"Status":"running"}},
                "Config":{{"Image":"x","Labels":{{"com.docker.compose.service":"{service}"}}}},
                "NetworkSettings":{{"Networks":{{"p_backend":{{"IPAddress":"{ip}"}},"p_data":{{"IPAddress":"10.9.0.1"}}}}}}}}]"#
        );
        crate::deploy::parse_inspect(&json).unwrap().remove(0)
    }

    pub(crate) fn record(
        host: &str,
        service: &str,
        state: &str,
        live_games: u64,
    ) -> InstanceRecord {
        let port = if service == "api" { 3000 } else { 3001 };
        serde_json::from_value(serde_json::json!({
            "id": format!("{service}-{host}-{port}"), "service": service, "version": "1.0.0",
            "revision": "abc", "slot": "blue", "host": host, "address": format!("10.9.0.1:{port}"),
            "port": port, "started_at": "2026-12-05T00:00:00Z", "heartbeat_at": "2026-12-05T00:00:01Z",
            "state": state, "connections": live_games * 5, "rooms": live_games, "live_games": live_games,
            "max_connections": 1000
        }))
        .unwrap()
    }

    fn edge_networks() -> BTreeMap<String, String> {
        BTreeMap::from([("p_backend".to_owned(), "172.20.0.2".to_owned())])
    }

    fn blue() -> EdgeModel {
        EdgeModel {
            slots: vec![crate::deploy::Slot::Blue.edge_slot(100)],
            ..EdgeModel::default()
        }
    }

    #[test]
    fn ready_registered_running_instances_become_members_by_their_edge_network_address() {
        let containers = [
            container("aaaaaaaaaaaa0000", "websocket-blue", "172.20.0.5"),
            container("bbbbbbbbbbbb0000", "websocket-blue", "172.20.0.6"),
            // Up but not registered yet: not listed.
            container("cccccccccccc0000", "websocket-blue", "172.20.0.7"),
            // Draining: not listed.
            container("dddddddddddd0000", "websocket-blue", "172.20.0.8"),
            container("eeeeeeeeeeee0000", "api-blue", "172.20.0.9"),
        ];
        let records = [
            record("aaaaaaaaaaaa", "websocket", "ready", 2),
            record("bbbbbbbbbbbb", "websocket", "ready", 0),
            record("dddddddddddd", "websocket", "draining", 1),
            record("eeeeeeeeeeee", "api", "ready", 0),
            // Registered without a container: not listed.
            record("ffffffffffff", "websocket", "ready", 0),
        ];
        let found = instances(&containers, &records, &edge_networks());
        assert_eq!(found.len(), 5);
        assert!(!found[2].registered && !found[2].ready);
        let members = desired_members(&blue(), &found, &BTreeSet::new());
        assert_eq!(
            members,
            BTreeMap::from([
                ("api-blue".to_owned(), vec!["172.20.0.9:3000".to_owned()]),
                (
                    "websocket-blue".to_owned(),
                    vec!["172.20.0.5:3001".to_owned(), "172.20.0.6:3001".to_owned()]
                ),
            ])
        );
        let excluded = BTreeSet::from(["aaaaaaaaaaaa".to_owned()]);
        let fewer = desired_members(&blue(), &found, &excluded);
        assert_eq!(fewer["websocket-blue"], ["172.20.0.6:3001"]);

        let model = with_members(&blue(), members.clone()).unwrap();
        model.validate().unwrap();
        assert_eq!(with_members(&model, members.clone()), None, "unchanged");
        let (added, removed) = difference(&members, &fewer);
        assert!(added.is_empty());
        assert_eq!(removed, ["websocket-blue 172.20.0.5:3001"]);
    }

    #[test]
    fn no_qualifying_instance_leaves_the_service_on_its_dns_name() {
        let containers = [container(
            "aaaaaaaaaaaa0000",
            "websocket-blue",
            "172.20.0.5",
        )];
        let found = instances(&containers, &[], &edge_networks());
        assert!(desired_members(&blue(), &found, &BTreeSet::new()).is_empty());
        // Instances of a slot the edge does not route to are nobody's members.
        let records = [record("aaaaaaaaaaaa", "websocket", "ready", 0)];
        let found = instances(&containers, &records, &edge_networks());
        assert!(desired_members(&EdgeModel::default(), &found, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn base_services_are_the_unslotted_and_slotted_names() {
        assert_eq!(base_service("api"), Some("api"));
        assert_eq!(base_service("websocket-green"), Some("websocket"));
        assert_eq!(base_service("redis"), None);
        assert_eq!(base_service("api-purple"), None);
    }
}
