//! The fault verbs: cut a node off the network (host end of its veth down) and reconnect it; kill its
//! engine (SIGKILL of dockerd, containerd, the shims and containers) and start it again.

use anyhow::bail;

use super::engine;
use super::state::LabState;
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

/// Starts the node's engine again on its data (it rejoins the swarm on its own) and records the new pid.
pub fn start_engine(state: &mut LabState, index: usize, dry_run: bool) -> anyhow::Result<()> {
    let node = state.node(index)?.clone();
    if engine::running(&node) {
        bail!("the engine of node {index} is running (pid {:?})", node.pid);
    }
    if dry_run {
        eprintln!("$ {}", cmd::dockerd(&node));
        return Ok(());
    }
    // A killed engine leaves its pid file and socket; dockerd refuses to start over a live-looking pid file.
    for stale in ["docker.pid", "docker.sock"] {
        let _ = std::fs::remove_file(node.dir.join(stale));
    }
    let pid = engine::start(&node)?;
    state.node_mut(index)?.pid = Some(pid);
    state.save(&super::spec::lab_dir(&state.name).join("lab.json"))?;
    engine::wait_until_answering(&node, pid, std::time::Duration::from_secs(60))
}

fn run(command: crate::command::Invocation, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        eprintln!("$ {command}");
        return Ok(());
    }
    command.capture(None).map(|_| ())
}
