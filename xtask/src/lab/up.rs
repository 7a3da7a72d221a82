//! `lab up`: bridge, one namespace + veth + engine per node, the swarm (node 1 the manager, the others
//! workers), labels, and a wait until every node is Ready. Each thing is recorded in lab.json before it is
//! made, so an interrupted `up` leaves a lab that `down` (or the next `up`) removes.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::down;
use super::engine;
use super::spec::{HOST_ADDRESS, LabSpec, PREFIX_LEN};
use super::state::{Created, LabState, NodeState, Role};
use super::status;
use crate::command::Invocation;
use crate::command::lab as cmd;

/// Labels of node 1: the stack pins Redis, MongoDB and the edge there.
pub const MANAGER_LABELS: [&str; 2] = ["avalon.data=true", "avalon.edge=true"];
const ENGINE_DEADLINE: Duration = Duration::from_secs(60);
const READY_DEADLINE: Duration = Duration::from_secs(90);

/// Every command `up` runs on a fresh lab, in order (`--dry-run` prints these); the join token and node
/// IDs are only known while it runs.
pub fn plan(spec: &LabSpec) -> Vec<String> {
    let state = LabState::planned(spec);
    let mut lines = vec![
        format!("mkdir -p {}", spec.dir().display()),
        cmd::bridge_add(&state.bridge).to_string(),
        cmd::address_add(&state.bridge, &format!("{HOST_ADDRESS}/{PREFIX_LEN}")).to_string(),
        cmd::link_up(&state.bridge).to_string(),
    ];
    for rule in cmd::forward_rules(&state.bridge).iter().rev() {
        lines.push(cmd::iptables_insert(rule).to_string());
    }
    for node in &state.nodes {
        lines.extend(node_network(&state, node).iter().map(ToString::to_string));
        lines.push(format!(
            "{} >>{} 2>&1 &",
            cmd::containerd(node),
            node.dir.join("containerd.log").display()
        ));
        lines.push(format!(
            "{} >>{} 2>&1 &",
            cmd::dockerd(node),
            node.dir.join("dockerd.log").display()
        ));
    }
    let manager = &state.nodes[0];
    lines.push(cmd::swarm_init(manager, &manager.address).to_string());
    for node in &state.nodes[1..] {
        lines.push(cmd::swarm_join(node, &node.address, "", &manager.address).to_string());
    }
    for node in &state.nodes {
        lines.push(cmd::node_add_labels(manager, "<node-id>", &labels(node)).to_string());
    }
    lines
}

fn labels(node: &NodeState) -> Vec<String> {
    let mut labels = vec![format!("avalon.lab.node={}", node.index)];
    if node.role == Role::Manager {
        labels.extend(MANAGER_LABELS.iter().map(|label| (*label).to_owned()));
    }
    labels
}

fn node_network(state: &LabState, node: &NodeState) -> Vec<Invocation> {
    let mut commands = vec![
        cmd::netns_add(&node.netns),
        cmd::veth_add(&node.host_veth, &node.netns),
        cmd::attach_to_bridge(&node.host_veth, &state.bridge),
    ];
    commands.extend(cmd::node_network(
        node,
        &format!("{}/{PREFIX_LEN}", node.address),
        &state.host_address,
    ));
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for server in name_servers(&resolv) {
        commands.push(cmd::unreachable_route(node, &server));
    }
    commands
}

/// The IPv4 name servers of a resolv.conf, but loopback ones (a node's own lo refuses those at once).
fn name_servers(resolv: &str) -> Vec<String> {
    resolv
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::Ipv4Addr>().ok())
        .filter(|address| !address.is_loopback())
        .map(|address| address.to_string())
        .collect()
}

/// Makes the lab, or reports the healthy one already there. Returns its state.
pub fn up(spec: &LabSpec) -> anyhow::Result<LabState> {
    if let Some(existing) = LabState::load(&spec.state_file())? {
        if existing.complete {
            if existing.nodes.len() != spec.nodes {
                bail!(
                    "lab {} is up with {} nodes, not {}: `cargo xtask lab down --name {}` first",
                    spec.name,
                    existing.nodes.len(),
                    spec.nodes,
                    spec.name
                );
            }
            let report = status::report(&existing)?;
            if let Some(trouble) = unhealthy(&report) {
                // A node cut or an engine killed is a fault made on purpose: say how to undo it, and
                // never remove the lab (and what runs on it) to make a fresh one.
                bail!("lab {} is up but not healthy:\n{trouble}", spec.name);
            }
            eprintln!("lab {} is up with {} Ready nodes", spec.name, spec.nodes);
            return Ok(existing);
        }
        eprintln!(
            "lab {} exists but is half-made: removing it and making it again",
            spec.name
        );
        down::down(&existing, false)?;
    } else if cmd::link_show(&spec.bridge()).output(None)?.success() {
        bail!(
            "the bridge {} exists but {} does not: not made by `cargo xtask lab up`; remove it by hand \
             (`ip link del {}`) if it is a leftover",
            spec.bridge(),
            spec.state_file().display(),
            spec.bridge()
        );
    }
    refuse_another_lab(&spec.name)?;
    let mut state = LabState::planned(spec);
    let started = Instant::now();
    create(spec, &mut state).with_context(|| {
        format!(
            "making lab {} (what was made is in {}; `cargo xtask lab down --name {}` removes it)",
            spec.name,
            spec.state_file().display(),
            spec.name
        )
    })?;
    eprintln!(
        "lab {}: {} nodes Ready in {:.1}s; manager: export DOCKER_HOST={}",
        spec.name,
        spec.nodes,
        started.elapsed().as_secs_f64(),
        state.manager()?.docker_host
    );
    Ok(state)
}

/// What is wrong with each node of a complete lab, with the command that undoes it; `None` when every link
/// and engine is up and every node Ready.
fn unhealthy(report: &status::LabReport) -> Option<String> {
    let name = &report.name;
    let lines: Vec<String> = report
        .nodes
        .iter()
        .filter_map(|node| {
            let index = node.index;
            if !node.link_up {
                Some(format!(
                    "  node {index} is cut off: `cargo xtask lab reconnect --node {index} --name {name}`"
                ))
            } else if !node.engine_up {
                Some(format!(
                    "  node {index}'s engine is not running: `cargo xtask lab start-engine --node {index} \
                     --name {name}`"
                ))
            } else if node.state != "Ready" {
                Some(format!(
                    "  node {index} is {} in the swarm: wait, or `cargo xtask lab status --name {name}`",
                    node.state
                ))
            } else {
                None
            }
        })
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "{}\nor remove the lab: `cargo xtask lab down --name {name}`",
            lines.join("\n")
        )
    })
}

/// Every lab uses 10.231.0.0/24: two at once would route each other's nodes to the wrong bridge.
fn refuse_another_lab(name: &str) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(super::spec::LAB_ROOT) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        if other != name && entry.path().join("lab.json").exists() {
            bail!(
                "lab {other} is up and uses the lab network 10.231.0.0/24 too: \
                 `cargo xtask lab down --name {other}` first"
            );
        }
    }
    Ok(())
}

/// Records `thing` in lab.json, then makes it with `command`.
fn make(
    state: &mut LabState,
    path: &std::path::Path,
    thing: Created,
    command: Invocation,
) -> anyhow::Result<()> {
    state.created.push(thing);
    state.save(path)?;
    command.capture(None)?;
    Ok(())
}

fn create(spec: &LabSpec, state: &mut LabState) -> anyhow::Result<()> {
    let dir = spec.dir();
    let file = spec.state_file();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    state.created.push(Created::Dir { path: dir.clone() });
    state.save(&file)?;

    let bridge = state.bridge.clone();
    make(
        state,
        &file,
        Created::Bridge {
            name: bridge.clone(),
        },
        cmd::bridge_add(&bridge),
    )?;
    cmd::address_add(&bridge, &format!("{}/{PREFIX_LEN}", state.host_address)).capture(None)?;
    cmd::link_up(&bridge).capture(None)?;
    for rule in cmd::forward_rules(&bridge).into_iter().rev() {
        let insert = cmd::iptables_insert(&rule);
        make(state, &file, Created::ForwardRule { rule }, insert)?;
    }

    for node in state.nodes.clone() {
        make(
            state,
            &file,
            Created::Netns {
                name: node.netns.clone(),
            },
            cmd::netns_add(&node.netns),
        )?;
        make(
            state,
            &file,
            Created::Veth {
                name: node.host_veth.clone(),
            },
            cmd::veth_add(&node.host_veth, &node.netns),
        )?;
        for command in node_network(state, &node).into_iter().skip(2) {
            command.capture(None)?;
        }
        state.created.push(Created::Engine { node: node.index });
        state.save(&file)?;
        engine::start(state, node.index, &file)?;
    }
    for node in &state.nodes {
        let pid = node.pid.context("engine pid")?;
        engine::wait_until_answering(node, pid, ENGINE_DEADLINE)?;
    }

    form_swarm(state)?;
    state.save(&file)?;
    wait_until_ready(state, READY_DEADLINE)?;
    state.complete = true;
    state.save(&file)
}

fn form_swarm(state: &mut LabState) -> anyhow::Result<()> {
    let manager = state.manager()?.clone();
    cmd::swarm_init(&manager, &manager.address).capture(None)?;
    let token = cmd::worker_token(&manager).capture(None)?.trim().to_owned();
    for node in state.nodes.iter().filter(|node| node.role == Role::Worker) {
        cmd::swarm_join(node, &node.address, &token, &manager.address).capture(None)?;
    }
    for index in 1..=state.nodes.len() {
        let node = state.node(index)?.clone();
        let info = cmd::swarm_info(&node).capture(None)?;
        let id = info
            .split_whitespace()
            .next()
            .filter(|id| !id.is_empty())
            .with_context(|| format!("node {index} reports no swarm node ID ({info:?})"))?
            .to_owned();
        cmd::node_add_labels(&manager, &id, &labels(&node)).capture(None)?;
        state.node_mut(index)?.node_id = Some(id);
    }
    Ok(())
}

/// Waits until the manager lists every node of the lab as Ready.
pub fn wait_until_ready(state: &LabState, deadline: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let ready = status::swarm_nodes(state)
            .map(|nodes| {
                state.nodes.iter().all(|node| {
                    node.node_id
                        .as_ref()
                        .and_then(|id| nodes.get(id))
                        .is_some_and(|seen| seen.status == "Ready")
                })
            })
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        if started.elapsed() > deadline {
            bail!(
                "not every node of lab {} was Ready within {deadline:?}",
                state.name
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_plan_makes_the_network_before_the_engines_and_the_swarm_last() {
        let plan = plan(&LabSpec::new("t", 3).unwrap());
        let at = |needle: &str| plan.iter().position(|line| line.contains(needle)).unwrap();
        assert!(at("ip link add avlab-t type bridge") < at("iptables -I FORWARD"));
        assert!(at("ip netns add avlab-t-3") < at("--net=/var/run/netns/avlab-t-3 containerd"));
        assert!(
            at("--net=/var/run/netns/avlab-t-3 containerd")
                < at("--net=/var/run/netns/avlab-t-3 dockerd")
        );
        assert!(at("dockerd") < at("swarm init"));
        assert_eq!(
            plan.iter()
                .filter(|line| line.contains("swarm join"))
                .count(),
            2
        );
        assert!(
            plan.iter()
                .any(|line| line.contains("--label-add avalon.edge=true"))
        );
        assert!(plan.iter().all(|line| !line.contains("ip netns exec")));
    }

    #[test]
    fn an_unhealthy_lab_is_named_node_by_node_with_the_command_that_mends_it() {
        let node = |index: usize, link_up: bool, engine_up: bool, state: &str| status::NodeReport {
            index,
            address: String::new(),
            docker_host: String::new(),
            link_up,
            engine_up,
            role: "worker".to_owned(),
            state: state.to_owned(),
            availability: String::new(),
            node_id: None,
        };
        let mut report = status::LabReport {
            name: "t".to_owned(),
            complete: true,
            manager: String::new(),
            nodes: vec![node(1, true, true, "Ready"), node(2, true, true, "Ready")],
        };
        assert_eq!(unhealthy(&report), None);
        report.nodes.push(node(3, false, true, "Down"));
        report.nodes.push(node(4, true, false, "Down"));
        let trouble = unhealthy(&report).unwrap();
        assert!(
            trouble.contains("lab reconnect --node 3 --name t"),
            "{trouble}"
        );
        assert!(
            trouble.contains("lab start-engine --node 4 --name t"),
            "{trouble}"
        );
        assert!(trouble.contains("lab down --name t"), "{trouble}");
        assert!(!trouble.contains("node 2"), "{trouble}");
    }

    #[test]
    fn name_servers_but_loopback_ones_are_made_unreachable() {
        let resolv =
            "# x\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver ::1\nsearch lan\n";
        assert_eq!(name_servers(resolv), ["10.255.255.53"]);
    }
}
