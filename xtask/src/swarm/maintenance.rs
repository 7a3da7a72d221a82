//! `maintenance on|off|status --engine swarm`: the apps' Redis flag (both services honour it), set with
//! `redis-cli` in the redis task's container. Redis is pinned to the node labelled avalon.data=true, the
//! manager DOCKER_HOST reaches, so `docker exec` finds it there. The edge has no maintenance switch of its
//! own on a Swarm: the apps answer 503 with the message while /health stays 200.

use super::target::SwarmTarget;
use crate::container_exec::ContainerRef;
use crate::maintenance::{MaintenanceFlag, MaintenanceState};

pub fn flag(target: &SwarmTarget) -> anyhow::Result<MaintenanceFlag> {
    let container = target.local_task_container("redis")?;
    MaintenanceFlag::new(target.docker.clone(), ContainerRef::Named(container))
}

/// Sets the flag (`on` = message and Retry-After seconds) or prints what would be set.
pub fn set(project: &str, on: Option<(String, u32)>, dry_run: bool) -> anyhow::Result<()> {
    let target = SwarmTarget::new(project.to_owned());
    let state = match on {
        Some((message, retry_after)) => MaintenanceState::on(message, retry_after),
        None => MaintenanceState::off(),
    };
    if dry_run {
        println!(
            "would set {} in the redis task of {} to {}",
            crate::maintenance::FLAG_KEY,
            target.service("redis"),
            serde_json::to_string(&state)?
        );
        return Ok(());
    }
    target.require_manager()?;
    flag(&target)?.set(&state)
}

pub fn status(project: &str, json: bool) -> anyhow::Result<()> {
    let target = SwarmTarget::new(project.to_owned());
    target.require_manager()?;
    let state = flag(&target)?.get()?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "engine": "swarm", "apps": state })
        );
    } else {
        match state {
            Some(state) if state.enabled => println!(
                "maintenance ON (apps): {}",
                state.message.unwrap_or_default()
            ),
            _ => println!("maintenance off"),
        }
    }
    Ok(())
}
