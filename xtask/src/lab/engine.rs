//! A node's engine: its own containerd and its dockerd, started detached in the node's namespace; a wait
//! until it answers; and a stop (SIGKILL of its whole tree: dockerd, its containerd, the shims and the
//! containers — what losing a machine does).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::procs;
use super::state::{LabState, NodeState};
use crate::command::lab as cmd;

const CONTAINERD_DEADLINE: Duration = Duration::from_secs(30);

/// Starts the node's engine — its containerd (unless that still runs) and, once containerd listens, its
/// dockerd — recording each pid in `state` (saved to `file`) as soon as it is known. Returns dockerd's pid
/// (`nsenter` execs dockerd, so the pid is dockerd's).
pub fn start(state: &mut LabState, index: usize, file: &Path) -> anyhow::Result<u32> {
    let node = state.node(index)?.clone();
    std::fs::create_dir_all(&node.dir)
        .with_context(|| format!("creating {}", node.dir.display()))?;
    let config = node.dir.join("daemon.json");
    if !config.exists() {
        std::fs::write(&config, "{}\n").with_context(|| format!("writing {}", config.display()))?;
    }
    let containerd_pid = match node.containerd_pid.filter(|_| containerd_running(&node)) {
        Some(pid) => pid,
        None => {
            let config = node.dir.join("containerd.toml");
            std::fs::write(&config, cmd::containerd_config())
                .with_context(|| format!("writing {}", config.display()))?;
            let pid = cmd::containerd(&node).spawn_detached(&node.dir.join("containerd.log"))?;
            state.node_mut(index)?.containerd_pid = Some(pid);
            state.save(file)?;
            pid
        }
    };
    wait_for_containerd(&node, containerd_pid, CONTAINERD_DEADLINE)?;
    let pid = cmd::dockerd(&node).spawn_detached(&node.dir.join("dockerd.log"))?;
    state.node_mut(index)?.pid = Some(pid);
    state.save(file)?;
    Ok(pid)
}

/// Waits until the node's containerd accepts connections on its socket (dockerd gives up on one that
/// does not answer in time); fails early, with the end of its log, when it died.
fn wait_for_containerd(node: &NodeState, pid: u32, deadline: Duration) -> anyhow::Result<()> {
    let socket = cmd::containerd_socket(node);
    let started = Instant::now();
    loop {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(());
        }
        if !procs::is_containerd(&procs::process_table(), pid, &node.dir) {
            bail!(
                "the containerd of node {} (pid {pid}) exited ({}); the end of {}:\n{}",
                node.index,
                procs::exit_of_zombie(pid).unwrap_or_else(|| "already reaped".to_owned()),
                node.dir.join("containerd.log").display(),
                log_tail(node, "containerd.log", 20)
            );
        }
        if started.elapsed() > deadline {
            bail!(
                "the containerd of node {} did not listen on {socket} within {deadline:?}; the end of its \
                 log:\n{}",
                node.index,
                log_tail(node, "containerd.log", 20)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
                "the engine of node {} (pid {pid}) exited ({}); the end of {}:\n{}",
                node.index,
                procs::exit_of_zombie(pid).unwrap_or_else(|| "already reaped".to_owned()),
                node.dir.join("dockerd.log").display(),
                log_tail(node, "dockerd.log", 20)
            );
        }
        if started.elapsed() > deadline {
            bail!(
                "the engine of node {} did not answer on {} within {deadline:?}; the end of its log:\n{}",
                node.index,
                node.docker_host,
                log_tail(node, "dockerd.log", 20)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn log_tail(node: &NodeState, log: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(node.dir.join(log)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether the node's dockerd runs, and its own containerd (by the recorded pids, checked against its
/// directory). A lab.json without a containerd pid is of an engine that started its containerd itself.
pub fn running(node: &NodeState) -> bool {
    let table = procs::process_table();
    node.pid
        .is_some_and(|pid| procs::is_engine(&table, pid, &node.dir))
        && node
            .containerd_pid
            .is_none_or(|pid| procs::is_containerd(&table, pid, &node.dir))
}

/// Whether the node's dockerd runs, whatever its containerd does.
pub fn dockerd_running(node: &NodeState) -> bool {
    node.pid
        .is_some_and(|pid| procs::is_engine(&procs::process_table(), pid, &node.dir))
}

/// Whether the node's own containerd runs (by the recorded pid, checked against its directory).
pub fn containerd_running(node: &NodeState) -> bool {
    node.containerd_pid
        .is_some_and(|pid| procs::is_containerd(&procs::process_table(), pid, &node.dir))
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
