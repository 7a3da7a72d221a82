//! The fault verbs: cut a node off the network (host end of its veth down) and reconnect it; kill its
//! engine (SIGKILL of dockerd, containerd, the shims and containers) and start it again.

use anyhow::bail;

use std::path::PathBuf;

use super::engine;
use super::state::{LabState, NodeState};
use crate::command::lab as cmd;

pub fn cut(state: &LabState, index: usize, dry_run: bool) -> anyhow::Result<()> {
    let node = state.node(index)?;
    run(cmd::link_down(&node.host_veth), dry_run)
}

pub fn reconnect(state: &LabState, index: usize, dry_run: bool) -> anyhow::Result<()> {
    let node = state.node(index)?;
    run(cmd::link_up(&node.host_veth), dry_run)
}

pub fn kill_engine(state: &LabState, index: usize, dry_run: bool) -> anyhow::Result<()> {
    engine::kill(state.node(index)?, dry_run)
}

/// Starts the node's engine again on its data — its containerd first, unless that still runs — (it
/// rejoins the swarm on its own) and records the new pids.
pub fn start_engine(state: &mut LabState, index: usize, dry_run: bool) -> anyhow::Result<()> {
    let node = state.node(index)?.clone();
    if engine::dockerd_running(&node) {
        bail!(
            "the engine of node {index} is running (dockerd pid {:?}); `cargo xtask lab kill-engine \
             --node {index} --name {}` first",
            node.pid,
            state.name
        );
    }
    if dry_run {
        if !engine::containerd_running(&node) {
            eprintln!("$ {}", cmd::containerd(&node));
        }
        eprintln!("$ {}", cmd::dockerd(&node));
        return Ok(());
    }
    for stale in stale_files(&node, engine::containerd_running(&node)) {
        let _ = std::fs::remove_file(stale);
    }
    let pid = engine::start(
        state,
        index,
        &super::spec::lab_dir(&state.name).join("lab.json"),
    )?;
    engine::wait_until_answering(&node, pid, std::time::Duration::from_secs(60))
}

/// What a killed engine leaves that would stop it starting again: dockerd's pid file (it refuses to start
/// over a live-looking one) and socket, and — unless the node's containerd still runs — containerd's
/// sockets and the containerd pid file that a dockerd supervising its own containerd wrote (an engine made
/// before `lab` started containerd itself; that dockerd would take the pid, reused, for a live containerd).
fn stale_files(node: &NodeState, containerd_running: bool) -> Vec<PathBuf> {
    let mut files = vec![node.dir.join("docker.pid"), node.dir.join("docker.sock")];
    if !containerd_running {
        let socket = PathBuf::from(cmd::containerd_socket(node));
        files.push(socket.with_extension("sock.ttrpc"));
        files.push(socket.with_file_name("containerd.pid"));
        files.push(socket);
    }
    files
}

fn run(command: crate::command::Invocation, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        eprintln!("$ {command}");
        return Ok(());
    }
    command.capture(None).map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::lab::spec::LabSpec;

    #[test]
    fn a_killed_engine_leaves_no_file_that_stops_it_starting_again() {
        let state = LabState::planned(&LabSpec::new("t", 1).unwrap());
        let node = state.node(1).unwrap();
        let dir = node.dir.display().to_string();
        let names = |files: Vec<PathBuf>| -> Vec<String> {
            files
                .iter()
                .map(|file| file.display().to_string().replace(&dir, ""))
                .collect()
        };
        assert_eq!(
            names(stale_files(node, false)),
            [
                "/docker.pid",
                "/docker.sock",
                "/exec/containerd/containerd.sock.ttrpc",
                "/exec/containerd/containerd.pid",
                "/exec/containerd/containerd.sock",
            ]
        );
        assert_eq!(
            names(stale_files(node, true)),
            ["/docker.pid", "/docker.sock"],
            "a live containerd keeps its socket"
        );
    }
}
