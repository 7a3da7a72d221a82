//! The shape of a lab, computed from its name and node count alone (pure): interface and namespace names,
//! addresses, the directories and socket of every node's engine. `up`, `down` and the fault verbs all
//! derive names from here, so they agree without asking the system.

use std::path::PathBuf;

use anyhow::{bail, ensure};

/// Where every lab keeps its engines' directories and its lab.json.
pub const LAB_ROOT: &str = "/var/lib/avalon-lab";
/// The bridge's (the host's) address; nodes are .11, .12, …
pub const HOST_ADDRESS: &str = "10.231.0.1";
pub const PREFIX_LEN: u8 = 24;
/// Linux caps interface names at 15 bytes; `avlab-` + name must fit, and so must the veth `av-<name>-<i>`.
const MAX_NAME_LEN: usize = 9;
pub const MAX_NODES: usize = 20;

/// A lab: its name and its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    pub name: String,
    pub nodes: usize,
}

/// One node of a lab (1-based index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub lab: String,
    pub index: usize,
}

impl LabSpec {
    pub fn new(name: &str, nodes: usize) -> anyhow::Result<Self> {
        check_name(name)?;
        ensure!(
            (1..=MAX_NODES).contains(&nodes),
            "--nodes must be between 1 and {MAX_NODES} (got {nodes})"
        );
        Ok(Self {
            name: name.to_owned(),
            nodes,
        })
    }

    pub fn bridge(&self) -> String {
        bridge_name(&self.name)
    }

    pub fn dir(&self) -> PathBuf {
        lab_dir(&self.name)
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir().join("lab.json")
    }

    pub fn node(&self, index: usize) -> NodeSpec {
        NodeSpec {
            lab: self.name.clone(),
            index,
        }
    }

    pub fn all_nodes(&self) -> Vec<NodeSpec> {
        (1..=self.nodes).map(|index| self.node(index)).collect()
    }
}

pub fn bridge_name(lab: &str) -> String {
    format!("avlab-{lab}")
}

pub fn lab_dir(lab: &str) -> PathBuf {
    PathBuf::from(LAB_ROOT).join(lab)
}

/// Lower-case letters and digits only: the name is part of interface, namespace and directory names.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        bail!(
            "lab name {name:?}: use 1 to {MAX_NAME_LEN} lower-case letters or digits \
             (it becomes part of interface names, which Linux caps at 15 bytes)"
        );
    }
    Ok(())
}

impl NodeSpec {
    pub fn netns(&self) -> String {
        format!("avlab-{}-{}", self.lab, self.index)
    }

    #[cfg(test)]
    /// The namespace as a path: `nsenter --net=` takes it (`ip netns exec` would remount /sys, which
    /// dockerd then sees without its own interfaces).
    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns())
    }

    /// The host end of the node's veth (on the bridge); `lab cut` takes it down.
    pub fn host_veth(&self) -> String {
        format!("av-{}-{}", self.lab, self.index)
    }

    pub fn address(&self) -> String {
        format!("10.231.0.{}", 10 + self.index)
    }

    #[cfg(test)]
    pub fn cidr(&self) -> String {
        format!("{}/{PREFIX_LEN}", self.address())
    }

    pub fn dir(&self) -> PathBuf {
        lab_dir(&self.lab).join(format!("node{}", self.index))
    }

    pub fn socket(&self) -> PathBuf {
        self.dir().join("docker.sock")
    }

    /// `unix:///var/lib/avalon-lab/<lab>/node<i>/docker.sock`: DOCKER_HOST for this node's engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_and_addresses_follow_the_index() {
        let lab = LabSpec::new("avalon", 3).unwrap();
        assert_eq!(lab.bridge(), "avlab-avalon");
        let node = lab.node(2);
        assert_eq!(node.netns(), "avlab-avalon-2");
        assert_eq!(node.netns_path(), "/var/run/netns/avlab-avalon-2");
        assert_eq!(node.host_veth(), "av-avalon-2");
        assert_eq!(node.cidr(), "10.231.0.12/24");
        assert_eq!(
            node.docker_host(),
            "unix:///var/lib/avalon-lab/avalon/node2/docker.sock"
        );
        assert_eq!(lab.all_nodes().len(), 3);
    }

    #[test]
    fn every_interface_name_fits_linux_limit() {
        let lab = LabSpec::new("abcdefghi", MAX_NODES).unwrap();
        assert!(lab.bridge().len() <= 15);
        for node in lab.all_nodes() {
            assert!(node.host_veth().len() <= 15, "{}", node.host_veth());
        }
    }

    #[test]
    fn bad_names_and_counts_are_refused() {
        for name in ["", "abcdefghij", "Avalon", "a-b", "a/b"] {
            assert!(LabSpec::new(name, 3).is_err(), "{name:?}");
        }
        assert!(LabSpec::new("avalon", 0).is_err());
        assert!(LabSpec::new("avalon", MAX_NODES + 1).is_err());
    }
}
