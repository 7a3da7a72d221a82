//! `up` on a stack a deploy has moved to blue/green slots: refused before anything changes.

use anyhow::{Context, bail};

use super::{SLOT_LABEL, Stack};
use crate::command::DockerCli;

/// `up` runs this checkout's images as the unslotted services behind the default edge. On a stack a deploy
/// has moved to blue/green slots that would remove the live slots (Compose sees them as orphans), route
/// users back to the unslotted services and render over the live edge tree: refused before anything
/// changes. Releases on such a stack change with `deploy` / `rollback`; `down` first to start over.
pub fn refuse(docker: &DockerCli, stack: &Stack) -> anyhow::Result<()> {
    let project = &stack.project;
    let slotted = docker
        .list_containers(project, &[format!("label={SLOT_LABEL}")], "{{.Names}}")
        .capture(None)
        .context("listing the stack's slot containers")?;
    let names: Vec<&str> = slotted.split_whitespace().collect();
    if names.is_empty() {
        return Ok(());
    }
    bail!(
        "up: the stack {project} runs blue/green slots ({}); `up` would remove them and put users back on \
         this checkout's unslotted services. Change its release with `cargo xtask deploy` or `rollback`, or \
         start over with `cargo xtask down --env {}` first",
        names.join(", "),
        stack.env.name()
    )
}
