//! lab.json: what a lab is made of and everything `up` created, written before each thing is created, so
//! `down` removes exactly that — also of a lab whose `up` was interrupted half-way.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::spec::{LabSpec, NodeSpec};
use crate::command::lab::LabNode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    pub bridge: String,
    pub host_address: String,
    pub nodes: Vec<NodeState>,
    /// In the order made; `down` undoes them by kind (engines first, the directory last).
    pub created: Vec<Created>,
    /// Set once every node is Ready in the swarm.
    #[serde(default)]
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub index: usize,
    pub address: String,
    pub netns: String,
    pub host_veth: String,
    pub dir: PathBuf,
    pub docker_host: String,
    /// The running dockerd (the pid `nsenter` became); `None` before it starts.
    pub pid: Option<u32>,
    /// The node's own containerd (the pid `nsenter` became); `None` before it starts.
    #[serde(default)]
    pub containerd_pid: Option<u32>,
    /// Its swarm node ID, once it is in the swarm.
    pub node_id: Option<String>,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Created {
    Dir { path: PathBuf },
    Bridge { name: String },
    ForwardRule { rule: Vec<String> },
    Netns { name: String },
    Veth { name: String },
    Engine { node: usize },
}

impl LabState {
    /// A fresh state for `spec`: node 1 is the manager.
    pub fn planned(spec: &LabSpec) -> Self {
        Self {
            name: spec.name.clone(),
            bridge: spec.bridge(),
            host_address: super::spec::HOST_ADDRESS.to_owned(),
            nodes: spec.all_nodes().iter().map(NodeState::planned).collect(),
            created: Vec::new(),
            complete: false,
        }
    }

    pub fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written through a temporary file and a rename, so a crash never leaves half a state.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, text)
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
    }

    pub fn node(&self, index: usize) -> anyhow::Result<&NodeState> {
        self.nodes
            .iter()
            .find(|node| node.index == index)
            .with_context(|| format!("lab {} has no node {index}", self.name))
    }

    pub fn node_mut(&mut self, index: usize) -> anyhow::Result<&mut NodeState> {
        let name = self.name.clone();
        self.nodes
            .iter_mut()
            .find(|node| node.index == index)
            .with_context(|| format!("lab {name} has no node {index}"))
    }

    pub fn manager(&self) -> anyhow::Result<&NodeState> {
        self.nodes
            .iter()
            .find(|node| node.role == Role::Manager)
            .context("the lab has no manager node")
    }

    pub fn has_created(&self, thing: &Created) -> bool {
        self.created.contains(thing)
    }
}

impl NodeState {
    fn planned(node: &NodeSpec) -> Self {
        Self {
            index: node.index,
            address: node.address(),
            netns: node.netns(),
            host_veth: node.host_veth(),
            dir: node.dir(),
            docker_host: node.docker_host(),
            pid: None,
            containerd_pid: None,
            node_id: None,
            role: if node.index == 1 {
                Role::Manager
            } else {
                Role::Worker
            },
        }
    }
}

impl LabNode for NodeState {
    fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }

    fn docker_host(&self) -> String {
        self.docker_host.clone()
    }

    fn dir(&self) -> PathBuf {
        self.dir.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_state_round_trips_through_json() {
        let spec = LabSpec::new("t", 2).unwrap();
        let mut state = LabState::planned(&spec);
        state.created.push(Created::Bridge {
            name: "avlab-t".to_owned(),
        });
        state.created.push(Created::Engine { node: 2 });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.json");
        state.save(&path).unwrap();
        assert_eq!(LabState::load(&path).unwrap(), Some(state.clone()));
        assert_eq!(state.manager().unwrap().index, 1);
        assert_eq!(state.node(2).unwrap().role, Role::Worker);
        assert!(
            LabState::load(&dir.path().join("none.json"))
                .unwrap()
                .is_none()
        );
    }
}
