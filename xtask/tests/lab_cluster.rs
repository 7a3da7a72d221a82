//! `cargo xtask lab` for real: `lab up --nodes 3` gives three Ready swarm nodes; an overlay service of three
//! replicas spreads over at least two nodes and every replica reaches every other through `tasks.<svc>`; the
//! edge's host-mode published port answers from the host; `lab cut`/`reconnect` and `kill-engine`/
//! `start-engine` take a node Down and back to Ready; `lab down` leaves no namespace, link, FORWARD rule,
//! process or directory of the lab behind.
//!
//! Needs root, `nsenter` and `dockerd` (skip id `lab-cluster`; not listed, so it fails under CI=true where
//! they are missing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use avalon_testkit::figures::figure;
use serde_json::Value;

/// Its own name, so a developer's `avalon` lab is never touched (`lab up` refuses while another lab is up).
const LAB: &str = "labtest";
const IMAGE: &str = "avalon-offline/nginx:1.22";
/// Each replica answers with its hostname (its container's short ID).
const SERVE_HOSTNAME: &str = r#"printf 'server { listen 80; location / { return 200 "$HOSTNAME\n"; } }\n' > /etc/nginx/conf.d/lab.conf && exec nginx -g 'daemon off;'"#;
/// From inside a replica: every address of `tasks.web`, and what each answers. (`wget -T` segfaults in this
/// busybox; the docker exec is killed after 10 s instead, see `output_within`.)
const ASK_EVERY_TASK: &str = r#"for ip in $(busybox nslookup tasks.web | awk '/^Address/ && !/:53/ {print $2}'); do echo "$ip=$(wget -qO- http://$ip/)"; done"#;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn xtask(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn xtask_ok(args: &[&str]) -> String {
    let output = xtask(args);
    assert!(output.status.success(), "cargo xtask {args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

fn socket(node: usize) -> String {
    format!("unix:///var/lib/avalon-lab/{LAB}/node{node}/docker.sock")
}

fn docker(node: usize, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(socket(node))
        .args(args)
        .output()
        .unwrap()
}

fn docker_ok(node: usize, args: &[&str]) -> String {
    let output = docker(node, args);
    assert!(
        output.status.success(),
        "docker -H node{node} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn status() -> Value {
    serde_json::from_str(&xtask_ok(&["lab", "status", "--name", LAB, "--json"])).unwrap()
}

fn node_state(node: usize) -> String {
    status()["nodes"][node - 1]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the manager sees `node` in `state`; returns the seconds it took.
fn wait_for_state(node: usize, state: &str, timeout: Duration) -> f64 {
    let started = Instant::now();
    assert!(
        avalon_testkit::wait_until(timeout, || node_state(node) == state),
        "node {node} not {state} within {timeout:?}: {}",
        status()
    );
    started.elapsed().as_secs_f64()
}

/// `lab down` however the test ends.
struct LabGuard {
    down: bool,
}

impl LabGuard {
    fn down(&mut self) {
        self.down = true;
        let output = xtask(&["lab", "down", "--name", LAB]);
        assert!(output.status.success(), "lab down failed");
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if !self.down {
            let _ = xtask(&["lab", "down", "--name", LAB]);
        }
    }
}

/// Runs `command` to its end and returns its output, or `None` — the child killed — when it has not ended
/// within `limit` (busybox `wget` without `-T` can hang on a path that is not there yet).
fn output_within(mut command: Command, limit: Duration) -> Option<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            // The outputs here are a few lines: they fit the pipe, so waiting first cannot block.
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// An HTTP GET of `/` at `address` answers 200 within 2 s (std only: the host may lack curl).
fn answers_200(address: &str) -> bool {
    let Ok(address) = address.parse::<std::net::SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok()
        && (head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
}

fn can_run() -> bool {
    let root = is_root();
    let tools = ["nsenter", "dockerd", "ip", "iptables", "docker"]
        .iter()
        .all(|tool| avalon_testkit::which(tool).is_some());
    if !root || !tools {
        avalon_testkit::skip(
            "lab-cluster",
            "the lab needs root and nsenter, dockerd, ip, iptables, docker",
        );
        return false;
    }
    true
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The running tasks of `service`: (node ID, container ID) of each.
fn running_tasks(service: &str) -> Vec<(String, String)> {
    let ids = docker_ok(
        1,
        &[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            service,
        ],
    );
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec![
        "inspect",
        "--format",
        "{{.NodeID}} {{.Status.State}} {{.Status.ContainerStatus.ContainerID}}",
    ];
    args.extend(ids);
    let output = docker(1, &args);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.len() == 3 && words[1] == "running")
                .then(|| (words[0].to_owned(), words[2].chars().take(12).collect()))
        })
        .collect()
}

/// Labs other than this test's that have a lab.json.
fn other_labs() -> Vec<String> {
    std::fs::read_dir("/var/lib/avalon-lab")
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().join("lab.json").exists())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name != LAB)
                .collect()
        })
        .unwrap_or_default()
}

fn leftovers() -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/var/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("avlab-{LAB}-")) {
                found.push(format!("netns {name}"));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == format!("avlab-{LAB}") || name.starts_with(&format!("av-{LAB}-")) {
                found.push(format!("link {name}"));
            }
        }
    }
    let rules = Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .unwrap();
    for rule in String::from_utf8_lossy(&rules.stdout).lines() {
        if rule.contains(&format!("avlab-{LAB}")) {
            found.push(format!("iptables {rule}"));
        }
    }
    // The engines and what runs under their exec roots (containerd, shims); not a client's command line.
    let marker = format!("/var/lib/avalon-lab/{LAB}/");
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Ok(command) = std::fs::read(entry.path().join("cmdline")) {
                let command = String::from_utf8_lossy(&command).replace('\0', " ");
                let engine = command.starts_with("dockerd ") || command.contains("/exec/");
                if command.contains(&marker) && engine {
                    found.push(format!("process {command}"));
                }
            }
        }
    }
    let dir = format!("/var/lib/avalon-lab/{LAB}");
    if Path::new(&dir).exists() {
        found.push(format!("directory {dir}"));
    }
    found
}

#[test]
fn a_three_node_lab_runs_an_overlay_service_survives_node_faults_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let started = Instant::now();
    // The edge image the stack runs; built from Debian packages unless current.
    xtask_ok(&["image", "base", "--only", "nginx"]);
    // Labs share their subnet, so one runs at a time: wait for another lab (a developer's, another test's).
    assert!(
        avalon_testkit::wait_until(Duration::from_secs(600), || other_labs().is_empty()),
        "another lab is still up after 10 min: {:?} (`cargo xtask lab down --name NAME`)",
        other_labs()
    );
    let mut guard = LabGuard { down: false };

    let up = Instant::now();
    let report: Value = serde_json::from_str(&xtask_ok(&[
        "lab", "up", "--nodes", "3", "--name", LAB, "--json",
    ]))
    .unwrap();
    figure(
        "lab up --nodes 3 seconds",
        &format!("{:.1}", up.elapsed().as_secs_f64()),
    );
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{report}");
    for node in nodes {
        assert_eq!(node["state"], "Ready", "{report}");
        assert_eq!(node["engine_up"], true, "{report}");
    }
    assert_eq!(
        xtask_ok(&["lab", "env", "--name", LAB]).trim(),
        format!("export DOCKER_HOST={}", socket(1))
    );
    xtask_ok(&["lab", "load", "--name", LAB, IMAGE]);

    // Three replicas on an overlay: spread, and each reaches every other by tasks.web.
    docker_ok(1, &["network", "create", "--driver", "overlay", "labnet"]);
    docker_ok(
        1,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--no-resolve-image",
            "--name",
            "web",
            "--network",
            "labnet",
            "--replicas",
            "3",
            "--entrypoint",
            "/bin/sh",
            IMAGE,
            "-c",
            SERVE_HOSTNAME,
        ],
    );
    assert!(
        avalon_testkit::wait_until(Duration::from_secs(60), || running_tasks("web").len() == 3),
        "3 replicas of web not running: {:?}",
        docker(1, &["service", "ps", "--no-trunc", "web"])
    );
    let tasks = running_tasks("web");
    let spread: BTreeSet<&String> = tasks.iter().map(|(node, _)| node).collect();
    assert!(spread.len() >= 2, "replicas on one node: {tasks:?}");
    let replicas: BTreeSet<String> = tasks
        .iter()
        .map(|(_, container)| container.clone())
        .collect();
    for node in 1..=3 {
        let here = docker_ok(
            node,
            &[
                "ps",
                "-q",
                "--filter",
                "label=com.docker.swarm.service.name=web",
            ],
        );
        for container in here.split_whitespace() {
            // The overlay's DNS and paths settle a moment after the task runs.
            let mut last = String::new();
            let reached_all = avalon_testkit::wait_until(Duration::from_secs(30), || {
                let mut exec = Command::new("docker");
                exec.arg("-H").arg(socket(node)).args([
                    "exec",
                    container,
                    "sh",
                    "-c",
                    ASK_EVERY_TASK,
                ]);
                last = output_within(exec, Duration::from_secs(10))
                    .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
                    .unwrap_or_else(|| "(docker exec did not finish within 10s)".to_owned());
                replicas
                    .iter()
                    .all(|replica| last.contains(replica.as_str()))
            });
            assert!(
                reached_all,
                "replica {container} on node {node} did not reach every replica {replicas:?} by tasks.web: {last}"
            );
        }
    }

    // The edge's way in: a host-mode published port on an overlay service, pinned to the edge node.
    docker_ok(
        1,
        &[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--no-resolve-image",
            "--name",
            "edge",
            "--network",
            "labnet",
            "--constraint",
            "node.labels.avalon.edge==true",
            "--publish",
            "mode=host,target=80,published=8080",
            "--entrypoint",
            "/bin/sh",
            IMAGE,
            "-c",
            SERVE_HOSTNAME,
        ],
    );
    let edge_answers =
        avalon_testkit::wait_until(Duration::from_secs(60), || answers_200("10.231.0.11:8080"));
    assert!(
        edge_answers,
        "the host-mode port 10.231.0.11:8080 did not answer"
    );

    // Faults: the manager notices a cut node and a killed engine, and both come back.
    xtask_ok(&["lab", "cut", "--name", LAB, "--node", "2"]);
    let down = wait_for_state(2, "Down", Duration::from_secs(30));
    xtask_ok(&["lab", "reconnect", "--name", LAB, "--node", "2"]);
    let ready = wait_for_state(2, "Ready", Duration::from_secs(30));
    figure(
        "lab cut/reconnect node 2",
        &format!("Down after {down:.1}s, Ready again after {ready:.1}s"),
    );
    xtask_ok(&["lab", "kill-engine", "--name", LAB, "--node", "3"]);
    assert_eq!(status()["nodes"][2]["engine_up"], false);
    let down = wait_for_state(3, "Down", Duration::from_secs(30));
    xtask_ok(&["lab", "start-engine", "--name", LAB, "--node", "3"]);
    let ready = wait_for_state(3, "Ready", Duration::from_secs(30));
    figure(
        "lab kill-engine/start-engine node 3",
        &format!("Down after {down:.1}s, Ready again after {ready:.1}s"),
    );
    assert!(
        avalon_testkit::wait_until(Duration::from_secs(60), || running_tasks("web").len() == 3),
        "web did not get back to 3 running replicas"
    );

    guard.down();
    let left = leftovers();
    assert!(left.is_empty(), "lab down left: {left:#?}");
    figure(
        "lab cluster test seconds",
        &format!("{:.1}", started.elapsed().as_secs_f64()),
    );
}
