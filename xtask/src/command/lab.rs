//! The argv of every command `cargo xtask lab` runs (pure; tested as argv): `ip` for the bridge, the
//! namespaces and the veths, `iptables` for the bridge's FORWARD rules, `nsenter … containerd` and
//! `nsenter … dockerd` for each node's engine, and `docker -H unix://<node socket> …` for the swarm.
//! Nothing here runs anything.

use std::path::Path;

use super::invocation::Invocation;

/// What `lab` needs to know of a node to spell its commands.
pub trait LabNode {
    fn netns_path(&self) -> String;
    fn docker_host(&self) -> String;
    fn dir(&self) -> std::path::PathBuf;
}

fn ip<const N: usize>(args: [&str; N]) -> Invocation {
    Invocation::new("ip").args(args)
}

pub fn bridge_add(bridge: &str) -> Invocation {
    ip(["link", "add", bridge, "type", "bridge"])
}

pub fn address_add(device: &str, cidr: &str) -> Invocation {
    ip(["addr", "add", cidr, "dev", device])
}

pub fn link_up(device: &str) -> Invocation {
    ip(["link", "set", device, "up"])
}

pub fn link_down(device: &str) -> Invocation {
    ip(["link", "set", device, "down"])
}

pub fn link_delete(device: &str) -> Invocation {
    ip(["link", "del", device])
}

/// `ip -o link show dev DEVICE`: fails when the device does not exist.
pub fn link_show(device: &str) -> Invocation {
    ip(["-o", "link", "show", "dev", device]).read_only()
}

pub fn netns_add(netns: &str) -> Invocation {
    ip(["netns", "add", netns])
}

pub fn netns_delete(netns: &str) -> Invocation {
    ip(["netns", "del", netns])
}

/// A veth pair whose peer is born inside the node's namespace as `eth0`.
pub fn veth_add(host_end: &str, netns: &str) -> Invocation {
    ip([
        "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", netns,
    ])
}

pub fn attach_to_bridge(host_end: &str, bridge: &str) -> Invocation {
    ip(["link", "set", host_end, "master", bridge, "up"])
}

/// `nsenter --net=<ns path> PROGRAM ARGS…`: only the network namespace changes, so the program keeps the
/// host's /sys, mounts and process table (what dockerd needs).
pub fn in_netns(node: &dyn LabNode, inner: Invocation) -> Invocation {
    let effect = inner.effect;
    Invocation::new("nsenter")
        .arg(format!("--net={}", node.netns_path()))
        .then_run(inner)
        .with_effect(effect)
}

/// The commands that set up the inside of a node's namespace: address, links up, default route.
pub fn node_network(node: &dyn LabNode, cidr: &str, gateway: &str) -> Vec<Invocation> {
    vec![
        in_netns(node, address_add("eth0", cidr)),
        in_netns(node, link_up("eth0")),
        in_netns(node, link_up("lo")),
        in_netns(
            node,
            ip(["route", "add", "default", "via", gateway, "dev", "eth0"]),
        ),
    ]
}

/// `unreachable ADDRESS/32` in the node's namespace: a lookup through the host's name server (which a node
/// cannot reach) then fails at once with ENETUNREACH. Swarm tries a registry pull before every task start of
/// a tagged image; through a dropped or rejected (ICMP rate-limited) query that held each start ~10 s.
pub fn unreachable_route(node: &dyn LabNode, address: &str) -> Invocation {
    in_netns(
        node,
        ip(["route", "add", "unreachable", &format!("{address}/32")]),
    )
}

/// The lab's FORWARD rules, in the order they must end up in the chain (each is inserted at the top, so
/// insert them in reverse). Traffic inside the bridge and from the host's other networks is accepted (the
/// host's FORWARD policy is Docker's DROP); a NEW connection from a node to anywhere else is rejected at
/// once: the node has no route out, and a rejected registry lookup fails now, where a dropped one would
/// hold every task start in "Preparing" for a DNS timeout.
pub fn forward_rules(bridge: &str) -> Vec<Vec<String>> {
    let words = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    vec![
        words(&[
            "-i",
            bridge,
            "!",
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "REJECT",
        ]),
        words(&["-i", bridge, "-j", "ACCEPT"]),
        words(&["-o", bridge, "-j", "ACCEPT"]),
    ]
}

pub fn iptables_insert(rule: &[String]) -> Invocation {
    Invocation::new("iptables")
        .args(["-I", "FORWARD", "1"])
        .args(rule.iter().cloned())
}

pub fn iptables_delete(rule: &[String]) -> Invocation {
    Invocation::new("iptables")
        .args(["-D", "FORWARD"])
        .args(rule.iter().cloned())
}

/// `iptables -C FORWARD RULE`: exits 0 when the rule is there.
pub fn iptables_check(rule: &[String]) -> Invocation {
    Invocation::new("iptables")
        .args(["-C", "FORWARD"])
        .args(rule.iter().cloned())
        .read_only()
}

/// The socket of the node's own containerd, under its exec root (so the shims, which name it, are found as
/// the node's).
pub fn containerd_socket(node: &dyn LabNode) -> String {
    node.dir()
        .join("exec/containerd/containerd.sock")
        .display()
        .to_string()
}

/// The node's own containerd config: only the CRI plugin off (a containerd for dockerd needs none, and the
/// host's /etc/containerd/config.toml, which configures it, is not read).
pub fn containerd_config() -> &'static str {
    "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
}

/// The node's own containerd, in its namespace, with its own config, root, state and socket. Started by
/// `lab` rather than by dockerd: dockerd starts one of its own only when /run/containerd/containerd.sock
/// does not exist, and on a host whose containerd has that socket every node's engine would share it —
/// killing a node's engine would leave its containers running.
pub fn containerd(node: &dyn LabNode) -> Invocation {
    let dir = node.dir();
    let at = |name: &str| dir.join(name).display().to_string();
    in_netns(
        node,
        Invocation::new("containerd").args([
            "--config".to_owned(),
            at("containerd.toml"),
            "--address".to_owned(),
            containerd_socket(node),
            "--root".to_owned(),
            at("containerd"),
            "--state".to_owned(),
            at("exec/containerd-state"),
        ]),
    )
}

/// The node's engine: its own config, data, exec root, pid file and socket, and the node's own containerd
/// ([`containerd`]); vfs (works on any backing file system, no overlay-in-overlay); no iptables and no
/// default bridge, which a network namespace without the host's chains cannot have.
pub fn dockerd(node: &dyn LabNode) -> Invocation {
    let dir = node.dir();
    let at = |name: &str| dir.join(name).display().to_string();
    in_netns(
        node,
        Invocation::new("dockerd").args([
            "--config-file".to_owned(),
            at("daemon.json"),
            "--data-root".to_owned(),
            at("data"),
            "--exec-root".to_owned(),
            at("exec"),
            "--pidfile".to_owned(),
            at("docker.pid"),
            "--host".to_owned(),
            format!("unix://{}", at("docker.sock")),
            "--containerd".to_owned(),
            containerd_socket(node),
            "--storage-driver".to_owned(),
            "vfs".to_owned(),
            "--iptables=false".to_owned(),
            "--bridge=none".to_owned(),
        ]),
    )
}

/// `docker -H unix://<node socket>`: the start of every engine command on one node.
pub fn docker_on(node: &dyn LabNode) -> Invocation {
    Invocation::new("docker").arg("-H").arg(node.docker_host())
}

/// `docker version`: the engine answers.
pub fn engine_version(node: &dyn LabNode) -> Invocation {
    docker_on(node)
        .args(["version", "--format", "{{.Server.Version}}"])
        .read_only()
}

/// The engine's swarm view of itself: `NODE_ID STATE CONTROL` (`ID inactive false` outside a swarm).
pub fn swarm_info(node: &dyn LabNode) -> Invocation {
    docker_on(node)
        .args([
            "info",
            "--format",
            "{{.Swarm.NodeID}} {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ])
        .read_only()
}

/// A 2 s dispatcher heartbeat: a lost node is noticed in seconds, not the default 5 s × grace.
pub fn swarm_init(manager: &dyn LabNode, address: &str) -> Invocation {
    docker_on(manager).args([
        "swarm",
        "init",
        "--advertise-addr",
        address,
        "--dispatcher-heartbeat",
        "2s",
    ])
}

pub fn worker_token(manager: &dyn LabNode) -> Invocation {
    docker_on(manager)
        .args(["swarm", "join-token", "--quiet", "worker"])
        .read_only()
}

/// The token is printed as a label: it admits any engine to the swarm.
pub fn swarm_join(
    worker: &dyn LabNode,
    address: &str,
    token: &str,
    manager_address: &str,
) -> Invocation {
    docker_on(worker)
        .args(["swarm", "join", "--advertise-addr", address, "--token"])
        .labelled_arg("<worker-token>", token)
        .arg(format!("{manager_address}:2377"))
}

pub fn node_add_labels(manager: &dyn LabNode, node_id: &str, labels: &[String]) -> Invocation {
    let mut invocation = docker_on(manager).args(["node", "update"]);
    for label in labels {
        invocation = invocation.arg("--label-add").arg(label.clone());
    }
    invocation.arg(node_id)
}

/// One JSON object a line: ID, Status, Availability, ManagerStatus, …
pub fn node_list(manager: &dyn LabNode) -> Invocation {
    docker_on(manager)
        .args(["node", "ls", "--format", "{{json .}}"])
        .read_only()
}

/// `docker …` on the host engine whatever DOCKER_HOST or DOCKER_CONTEXT say: after
/// `eval "$(cargo xtask lab env)"` they name the lab's manager, which is where images go, not where they
/// come from. `env -u` rather than a fixed `-H`: the host engine is the one the default context names.
fn docker_on_host() -> Invocation {
    Invocation::new("env").args(["-u", "DOCKER_HOST", "-u", "DOCKER_CONTEXT", "docker"])
}

/// `docker images` of the host engine, `REPOSITORY:TAG` a line.
pub fn host_images() -> Invocation {
    docker_on_host()
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .read_only()
}

/// `docker save IMAGE…` from the host engine, to be piped into [`load_into`].
pub fn save(images: &[String]) -> Invocation {
    docker_on_host()
        .arg("save")
        .args(images.iter().cloned())
        .read_only()
}

pub fn load_into(node: &dyn LabNode) -> Invocation {
    docker_on(node).args(["load", "--quiet"])
}

pub fn kill(signal: &str, pids: &[u32]) -> Invocation {
    Invocation::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
}

/// Lazy: a mount a dead engine left (a container's shm, a namespace file) goes even when still busy.
pub fn unmount(path: &Path) -> Invocation {
    Invocation::new("umount")
        .arg("--lazy")
        .arg(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    struct Node;
    impl LabNode for Node {
        fn netns_path(&self) -> String {
            "/var/run/netns/avlab-t-1".to_owned()
        }
        fn docker_host(&self) -> String {
            "unix:///var/lib/avalon-lab/t/node1/docker.sock".to_owned()
        }
        fn dir(&self) -> PathBuf {
            PathBuf::from("/var/lib/avalon-lab/t/node1")
        }
    }

    fn argv(invocation: &Invocation) -> Vec<String> {
        std::iter::once(invocation.program.display().to_string())
            .chain(invocation.args.iter().cloned())
            .collect()
    }

    #[test]
    fn dockerd_runs_in_the_node_namespace_with_its_own_dirs() {
        let words = argv(&dockerd(&Node)).join(" ");
        assert_eq!(
            words,
            "nsenter --net=/var/run/netns/avlab-t-1 dockerd \
             --config-file /var/lib/avalon-lab/t/node1/daemon.json \
             --data-root /var/lib/avalon-lab/t/node1/data \
             --exec-root /var/lib/avalon-lab/t/node1/exec \
             --pidfile /var/lib/avalon-lab/t/node1/docker.pid \
             --host unix:///var/lib/avalon-lab/t/node1/docker.sock \
             --containerd /var/lib/avalon-lab/t/node1/exec/containerd/containerd.sock \
             --storage-driver vfs --iptables=false --bridge=none"
        );
    }

    #[test]
    fn each_node_runs_its_own_containerd_not_the_hosts() {
        assert_eq!(
            argv(&containerd(&Node)).join(" "),
            "nsenter --net=/var/run/netns/avlab-t-1 containerd \
             --config /var/lib/avalon-lab/t/node1/containerd.toml \
             --address /var/lib/avalon-lab/t/node1/exec/containerd/containerd.sock \
             --root /var/lib/avalon-lab/t/node1/containerd \
             --state /var/lib/avalon-lab/t/node1/exec/containerd-state"
        );
        assert!(
            argv(&dockerd(&Node))
                .windows(2)
                .any(|pair| pair[0] == "--containerd" && pair[1] == containerd_socket(&Node))
        );
        assert!(containerd_config().contains("io.containerd.grpc.v1.cri"));
    }

    #[test]
    fn images_are_read_from_the_host_engine_even_with_the_lab_env_set() {
        for invocation in [host_images(), save(&["redis:7".to_owned()])] {
            let words = argv(&invocation);
            assert_eq!(
                words[..6],
                ["env", "-u", "DOCKER_HOST", "-u", "DOCKER_CONTEXT", "docker"]
            );
            assert!(!words.contains(&"-H".to_owned()), "{words:?}");
        }
    }

    #[test]
    fn the_join_token_is_not_printed() {
        let join = swarm_join(&Node, "10.231.0.12", "SWMTKN-secret", "10.231.0.11");
        assert!(argv(&join).contains(&"SWMTKN-secret".to_owned()));
        assert!(!join.to_string().contains("SWMTKN"), "{join}");
        assert!(
            join.to_string()
                .ends_with("--token <worker-token> 10.231.0.11:2377")
        );
    }

    #[test]
    fn swarm_init_has_a_fast_heartbeat() {
        assert_eq!(
            argv(&swarm_init(&Node, "10.231.0.11"))[3..],
            [
                "swarm",
                "init",
                "--advertise-addr",
                "10.231.0.11",
                "--dispatcher-heartbeat",
                "2s"
            ]
        );
    }

    #[test]
    fn forward_rules_are_deleted_as_inserted() {
        for rule in forward_rules("avlab-t") {
            let insert = argv(&iptables_insert(&rule));
            let delete = argv(&iptables_delete(&rule));
            assert_eq!(insert[..4], ["iptables", "-I", "FORWARD", "1"]);
            assert_eq!(insert[4..], delete[3..]);
        }
        assert!(forward_rules("avlab-t")[0].contains(&"REJECT".to_owned()));
    }

    #[test]
    fn namespace_commands_go_through_nsenter_not_ip_netns_exec() {
        for invocation in node_network(&Node, "10.231.0.11/24", "10.231.0.1") {
            let words = argv(&invocation);
            assert_eq!(
                words[..3],
                ["nsenter", "--net=/var/run/netns/avlab-t-1", "ip"]
            );
        }
        assert_eq!(
            argv(&veth_add("av-t-1", "avlab-t-1")).join(" "),
            "ip link add av-t-1 type veth peer name eth0 netns avlab-t-1"
        );
    }

    #[test]
    fn labels_are_added_one_flag_each() {
        let labels = ["avalon.data=true".to_owned(), "avalon.edge=true".to_owned()];
        assert_eq!(
            argv(&node_add_labels(&Node, "abc", &labels))[3..],
            [
                "node",
                "update",
                "--label-add",
                "avalon.data=true",
                "--label-add",
                "avalon.edge=true",
                "abc"
            ]
        );
    }
}
