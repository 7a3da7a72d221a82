//! `up --engine swarm` and `down --engine swarm`.
//!
//! up: the images (AVALON_API_IMAGE / AVALON_WS_IMAGE, else the ledger's live release, else this checkout's
//! `cargo xtask image build` tag — built on the operator's engine and loaded on every node, e.g. with
//! `cargo xtask lab load`: nodes have no registry), the secrets and the nginx tree as the Compose `up` makes
//! them, the stack file from the compose model, `docker stack deploy`, then a wait (deadline) until every
//! service runs all its replicas, healthy. The release is recorded in the ledger when it is not the live one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use xshell::Shell;

use super::ledger::ConfigStore;
use super::lock::SwarmLock;
use super::rollout::{self, record};
use super::stack_file;
use super::target::SwarmTarget;
use crate::command::swarm as argv;
use crate::deploy::ledger::{Event, History, Outcome};
use crate::deploy::ledger_store::LedgerStore;
use crate::deploy::lock::Holding;
use crate::stack::{Stack, StackEnv};

pub struct UpRequest {
    pub env: StackEnv,
    pub project: Option<String>,
    pub http_port: Option<u16>,
    pub timeout: Duration,
    pub dry_run: bool,
}

/// The api and websocket images `up` starts.
fn images(sh: &Shell, stack: &Stack) -> anyhow::Result<(String, String)> {
    if let (Some(api), Some(ws)) = (stack.var("AVALON_API_IMAGE"), stack.var("AVALON_WS_IMAGE")) {
        return Ok((api, ws));
    }
    let history = History::parse(&ConfigStore::new(&stack.project).read()?.jsonl);
    if let Some(live) = history.live()
        && let (Some(api), Some(ws)) = (
            live.release.images.get("api"),
            live.release.images.get("websocket"),
        )
    {
        return Ok((api.clone(), ws.clone()));
    }
    let identity = crate::image::build::identity(sh)?;
    let tag = format!("{}-{}", identity.version, identity.revision());
    Ok((format!("avalon-api:{tag}"), format!("avalon-ws:{tag}")))
}

/// The version a tag names (`avalon-api:1.2.0-abc` → `1.2.0-abc`).
pub fn version_of(image: &str) -> String {
    image
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .filter(|tag| !tag.contains('/'))
        .unwrap_or("latest")
        .to_owned()
}

pub fn up(sh: &Shell, request: UpRequest) -> anyhow::Result<()> {
    let env = request.env;
    let mut stack = Stack::new(env, request.project);
    if let Some(port) = request.http_port {
        stack.set("AVALON_HTTP_PORT", port.to_string());
    }
    let target = SwarmTarget::new(stack.project.clone());
    if request.dry_run {
        println!(
            "up --engine swarm plan for the {} stack (stack {}):",
            env.name(),
            stack.project
        );
        if env.generates_secrets() {
            println!(
                "  generate missing secrets in {}",
                crate::stack::secrets::dir(env).display()
            );
        }
        println!(
            "  cargo xtask nginx render …   # the edge routes to the service VIPs api:3000, websocket:3001"
        );
        println!(
            "  docker compose -f docker/compose.yml -f docker/compose.{}.yml -f docker/compose.swarm.yml config \
             --format json → .avalon/stack/{}/swarm-stack.json",
            env.name(),
            stack.project
        );
        println!(
            "  {}",
            argv::stack_deploy(
                &target.docker,
                &format!(".avalon/stack/{}/swarm-stack.json", stack.project),
                &stack.project
            )
        );
        println!(
            "  wait until every service runs all its replicas (healthy), {}s",
            request.timeout.as_secs()
        );
        return Ok(());
    }
    target.require_manager()?;
    let (api, ws) = images(sh, &stack)?;
    stack.set("AVALON_API_IMAGE", api.clone());
    stack.set("AVALON_WS_IMAGE", ws.clone());
    if env.generates_secrets() {
        let dir = crate::stack::secrets::ensure(env)?;
        stack.set("AVALON_SECRETS_DIR", dir.display().to_string());
    }
    let rendered = crate::stack::nginx_tree(sh, &stack)?;
    stack.set(
        "AVALON_NGINX_DIR",
        super::edge::write(&rendered)?.display().to_string(),
    );
    let model = stack_file::compose_model(&stack)?;
    let expected = model["services"].as_object().map_or(0, |s| s.len());
    let images = BTreeMap::from([
        ("api".to_owned(), api.clone()),
        ("websocket".to_owned(), ws.clone()),
    ]);
    let file = stack_file::build(&stack, &model, images)?;
    for note in &file.notes {
        eprintln!("up: {note}");
    }
    let path = stack_file::write(&stack, &file)?;
    let holding = Holding::default();
    let lock = SwarmLock::acquire(
        &stack.project,
        "up",
        Duration::from_secs(30),
        holding.clone(),
    )?;
    let started = Instant::now();
    let deployed = argv::stack_deploy(&target.docker, &path.display().to_string(), &stack.project)
        .stream(None, &mut std::io::stdout())
        .context("docker stack deploy");
    let converged = deployed.and_then(|()| target.wait_converged(expected, request.timeout));
    let store = ConfigStore::new(&stack.project);
    let release = rollout::release(&version_of(&api), &api, &ws, &stack_file::digest(&file));
    let live = History::parse(&store.read()?.jsonl)
        .live()
        .map(|e| e.release.images.clone());
    let recorded = match &converged {
        Ok(_) if live.as_ref() != Some(&release.images) => record(
            &store,
            &holding,
            Event::Deploy,
            release,
            Outcome::Succeeded,
            Some("up --engine swarm".to_owned()),
        )
        .map(|_| ()),
        _ => Ok(()),
    };
    lock.release()?;
    let services = converged?;
    recorded?;
    super::status::print_services(&services);
    let port = stack.http_port();
    println!(
        "\nup: the {} stack ({}) runs on the swarm after {:.1}s; the edge publishes port {port} (host mode) on \
         the node labelled avalon.edge=true",
        env.name(),
        stack.project,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `docker stack rm`, then a wait (deadline) until its services and networks are gone (the engine removes
/// networks after the call returns; a `stack deploy` meanwhile would find a network that then vanishes). The ledger and lock configs are
/// not part of the stack and stay.
pub fn down(project: &str, dry_run: bool) -> anyhow::Result<()> {
    let target = SwarmTarget::new(project.to_owned());
    let rm = argv::stack_rm(&target.docker, project);
    if dry_run {
        println!("would run: {rm}");
        return Ok(());
    }
    target.require_manager()?;
    rm.stream(None, &mut std::io::stdout())
        .context("docker stack rm")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !target.services()?.is_empty()
        || !argv::stack_networks(&target.docker, project)
            .capture(None)?
            .trim()
            .is_empty()
    {
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the services or networks of stack {project} were still listed after 60s"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "down: stack {project} removed (its ledger stays: `cargo xtask releases --engine swarm`)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_images_tag() {
        assert_eq!(version_of("avalon-api:1.2.0-abc"), "1.2.0-abc");
        assert_eq!(version_of("registry:5000/avalon-api"), "latest");
        assert_eq!(version_of("avalon-api"), "latest");
    }
}
