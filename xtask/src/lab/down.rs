//! `lab down`: removes what lab.json recorded — engines (their whole process trees), their mounts, the
//! namespaces, veths, FORWARD rules, the bridge, the directory — and nothing else. Each step skips what is
//! already gone, so it finishes a half-made or half-removed lab.

use std::path::Path;

use anyhow::Context;

use super::engine;
use super::procs;
use super::state::{Created, LabState};
use crate::command::lab as cmd;

pub fn down(state: &LabState, dry_run: bool) -> anyhow::Result<()> {
    // Engines first: a live dockerd would re-create what the later steps remove.
    for node in &state.nodes {
        if state.has_created(&Created::Engine { node: node.index }) {
            engine::kill(node, dry_run)?;
        }
    }
    let lab_dir = state.created.iter().find_map(|thing| match thing {
        Created::Dir { path } => Some(path.clone()),
        _ => None,
    });
    if let Some(dir) = &lab_dir {
        unmount_under(dir, dry_run)?;
    }
    for thing in state.created.iter().rev() {
        match thing {
            Created::Netns { name } => {
                if Path::new("/var/run/netns").join(name).exists() {
                    run(cmd::netns_delete(name), dry_run)?;
                }
            }
            Created::Veth { name } => {
                if link_exists(name)? {
                    run(cmd::link_delete(name), dry_run)?;
                }
            }
            Created::ForwardRule { rule } => {
                while cmd::iptables_check(rule).output(None)?.success() {
                    run(cmd::iptables_delete(rule), dry_run)?;
                    if dry_run {
                        break;
                    }
                }
            }
            Created::Bridge { name } => {
                if link_exists(name)? {
                    run(cmd::link_delete(name), dry_run)?;
                }
            }
            Created::Dir { .. } | Created::Engine { .. } => {}
        }
    }
    if let Some(dir) = lab_dir
        && dir.exists()
    {
        if dry_run {
            eprintln!("$ rm -rf {}", dir.display());
        } else {
            eprintln!("$ rm -rf {}", dir.display());
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    if !dry_run {
        eprintln!("lab {} removed", state.name);
    }
    Ok(())
}

fn link_exists(name: &str) -> anyhow::Result<bool> {
    Ok(cmd::link_show(name).output(None)?.success())
}

fn run(command: crate::command::Invocation, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        eprintln!("$ {command}");
        return Ok(());
    }
    command.capture(None).map(|_| ())
}

/// The mounts the engines left (container shm, namespace files, the data root's bind): lazily unmounted,
/// deepest first, so the directory can go.
fn unmount_under(dir: &Path, dry_run: bool) -> anyhow::Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    for point in procs::mounts_under(&info, dir) {
        let command = cmd::unmount(Path::new(&point));
        if dry_run {
            eprintln!("$ {command}");
        } else {
            // A mount under another that went first is already gone.
            let _ = command.output(None)?;
        }
    }
    Ok(())
}
