//! A node's engine: start it detached in the node's namespace, wait until it answers, and stop it (SIGKILL
//! of its whole tree: dockerd, its containerd, the shims and the containers — what losing a machine does).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::procs;
use super::state::NodeState;
use crate::command::lab as cmd;

/// Starts the node's dockerd and returns its pid (`nsenter` execs dockerd, so the pid is dockerd's).
pub fn start(node: &NodeState) -> anyhow::Result<u32> {
    std::fs::create_dir_all(&node.dir)
        .with_context(|| format!("creating {}", node.dir.display()))?;
    let config = node.dir.join("daemon.json");
    if !config.exists() {
        std::fs::write(&config, "{}\n").with_context(|| format!("writing {}", config.display()))?;
    }
    cmd::dockerd(node).spawn_detached(&node.dir.join("dockerd.log"))
}

/// Waits until the engine answers on its socket; fails early, with the end of its log, when it died.
pub fn wait_until_answering(node: &NodeState, pid: u32, deadline: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if cmd::engine_version(node)
            .output(None)
            .is_ok_and(|out| out.success())
        {
            return Ok(());
        }
        let table = procs::process_table();
        if !procs::is_engine(&table, pid, &node.dir) {
            bail!(
                "the engine of node {} (pid {pid}) exited; the end of {}:\n{}",
                node.index,
                node.dir.join("dockerd.log").display(),
                log_tail(node, 20)
            );
        }
        if started.elapsed() > deadline {
            bail!(
                "the engine of node {} did not answer on {} within {deadline:?}; the end of its log:\n{}",
                node.index,
                node.docker_host,
                log_tail(node, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn log_tail(node: &NodeState, lines: usize) -> String {
    let text = std::fs::read_to_string(node.dir.join("dockerd.log")).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether the node's dockerd runs (by the recorded pid, checked against its directory).
pub fn running(node: &NodeState) -> bool {
    node.pid
        .is_some_and(|pid| procs::is_engine(&procs::process_table(), pid, &node.dir))
}

/// SIGKILL every process of the node's engine and wait until they are gone.
pub fn kill(node: &NodeState, dry_run: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pids: Vec<u32> = procs::engine_processes(&procs::process_table(), &node.dir)
            .into_iter()
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        let kill = cmd::kill("KILL", &pids);
        if dry_run {
            eprintln!("$ {kill}");
            return Ok(());
        }
        // A process that exits between the listing and the kill makes kill fail; the next pass sees.
        let _ = kill.output(None);
        if Instant::now() > deadline {
            bail!(
                "processes of node {}'s engine survive SIGKILL: {pids:?}",
                node.index
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
