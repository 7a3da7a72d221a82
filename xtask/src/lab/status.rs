//! `lab status`: each node's address, whether its link is up and its engine answers, and how the manager
//! sees it in the swarm (role, state, availability).

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::engine;
use super::state::{LabState, NodeState};
use crate::command::lab as cmd;

/// One line of `docker node ls --format '{{json .}}'`.
#[derive(Debug, Clone, Deserialize)]
pub struct SwarmNode {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "Availability")]
    pub availability: String,
    #[serde(rename = "ManagerStatus", default)]
    pub manager_status: String,
}

/// The manager's node list by node ID.
pub fn swarm_nodes(state: &LabState) -> anyhow::Result<BTreeMap<String, SwarmNode>> {
    let text = cmd::node_list(state.manager()?).capture(None)?;
    parse_node_list(&text)
}

fn parse_node_list(text: &str) -> anyhow::Result<BTreeMap<String, SwarmNode>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<SwarmNode>(line)
                .with_context(|| format!("a line of docker node ls: {line}"))
                .map(|node| (node.id.clone(), node))
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub index: usize,
    pub address: String,
    pub docker_host: String,
    pub link_up: bool,
    pub engine_up: bool,
    pub role: String,
    /// As the manager sees it: Ready, Down, Unknown; `unreachable` when the manager does not answer.
    pub state: String,
    pub availability: String,
    pub node_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LabReport {
    pub name: String,
    pub complete: bool,
    pub manager: String,
    pub nodes: Vec<NodeReport>,
}

/// The host end's operstate: `down` after `lab cut`.
fn link_up(node: &NodeState) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{}/operstate", node.host_veth))
        .is_ok_and(|state| state.trim() == "up")
}

pub fn report(state: &LabState) -> anyhow::Result<LabReport> {
    let seen = swarm_nodes(state).ok();
    let nodes = state
        .nodes
        .iter()
        .map(|node| {
            let found = seen
                .as_ref()
                .and_then(|nodes| node.node_id.as_ref().and_then(|id| nodes.get(id)));
            NodeReport {
                index: node.index,
                address: node.address.clone(),
                docker_host: node.docker_host.clone(),
                link_up: link_up(node),
                engine_up: engine::running(node),
                role: match found {
                    Some(found) if !found.manager_status.is_empty() => {
                        format!("manager ({})", found.manager_status)
                    }
                    _ => format!("{:?}", node.role).to_lowercase(),
                },
                state: match (&seen, found) {
                    (None, _) => "unreachable".to_owned(),
                    (Some(_), Some(found)) => found.status.clone(),
                    (Some(_), None) => "not in swarm".to_owned(),
                },
                availability: found.map(|f| f.availability.clone()).unwrap_or_default(),
                node_id: node.node_id.clone(),
            }
        })
        .collect();
    Ok(LabReport {
        name: state.name.clone(),
        complete: state.complete,
        manager: state.manager()?.docker_host.clone(),
        nodes,
    })
}

pub fn print(report: &LabReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "lab {} ({}), manager {}",
        report.name,
        if report.complete {
            "complete"
        } else {
            "half-made"
        },
        report.manager
    );
    println!(
        "{:<5} {:<12} {:<5} {:<7} {:<18} {:<13} AVAILABILITY",
        "NODE", "ADDRESS", "LINK", "ENGINE", "ROLE", "STATE"
    );
    for node in &report.nodes {
        println!(
            "{:<5} {:<12} {:<5} {:<7} {:<18} {:<13} {}",
            node.index,
            node.address,
            if node.link_up { "up" } else { "down" },
            if node.engine_up { "up" } else { "down" },
            node.role,
            node.state,
            node.availability
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn node_ls_lines_parse() {
        let text = r#"{"Availability":"Active","EngineVersion":"20.10.24","Hostname":"vm","ID":"abc","ManagerStatus":"Leader","Self":true,"Status":"Ready","TLSStatus":"Ready"}
{"Availability":"Active","EngineVersion":"20.10.24","Hostname":"vm","ID":"def","ManagerStatus":"","Self":false,"Status":"Down","TLSStatus":"Ready"}
"#;
        let nodes = parse_node_list(text).unwrap();
        assert_eq!(nodes["abc"].manager_status, "Leader");
        assert_eq!(nodes["def"].status, "Down");
    }
}
