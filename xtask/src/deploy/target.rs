//! The target stack as the Docker CLI sees it: listing its containers, starting and stopping a slot,
//! finding its edge. Every command is built by the command layer ([`crate::command`]) and goes through
//! `docker` / `docker compose`, so `DOCKER_HOST=ssh://…` or `DOCKER_CONTEXT=…` points it at a remote
//! engine. What the listing means is [`super::containers`]'s, the slot overlay [`super::slot_overlay`]'s,
//! the edge [`super::edge`]'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use xshell::Shell;

pub use super::containers::{ContainerInfo, KeptContainer};
use super::containers::{Inspect, container_info};
pub use super::edge::Edge;
use super::edge::endpoint_host;
use super::interrupt::Stopped;
use super::ledger::Release;
use super::lock::Holding;
use super::plan::Live;
use super::slot_overlay::{rebase_binds, slot_overlay, use_images};
use super::slots::{self, Slot};
use crate::command::{Compose, SERVICE_LABEL};
use crate::container_exec::DockerCli;
use crate::nginx::EdgeModel;
use crate::stack::{Stack, StackEnv};

/// One listing of the stack: its containers, and the running edge's inspect object if there is one.
pub struct Snapshot {
    pub containers: Vec<ContainerInfo>,
    edge: Option<serde_json::Value>,
}

pub struct Target {
    pub docker: DockerCli,
    pub env: StackEnv,
    pub project: String,
    /// The deploy lock this command holds, if any: its fence goes with every edge swap.
    pub holding: Holding,
}

impl Target {
    pub fn new(env: StackEnv, project: Option<String>) -> Self {
        Self {
            docker: DockerCli::default(),
            env,
            project: project.unwrap_or_else(|| env.default_project()),
            holding: Holding::default(),
        }
    }

    fn ids(&self, filters: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(self
            .docker
            .container_ids(&self.project, filters)
            .capture(None)?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }

    /// `docker container inspect` objects as they come (the edge reads more of its own than [`Inspect`]).
    fn inspect_raw(&self, ids: &[String]) -> anyhow::Result<Vec<serde_json::Value>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let output = self.docker.inspect_containers(ids).capture(None)?;
        serde_json::from_str(&output).context("unexpected `docker inspect` output")
    }

    fn inspect(&self, ids: &[String]) -> anyhow::Result<Vec<Inspect>> {
        self.inspect_raw(ids)?
            .iter()
            .map(|raw| Inspect::deserialize(raw).context("unexpected `docker inspect` output"))
            .collect()
    }

    /// Every container of the stack, running or not.
    pub fn containers(&self) -> anyhow::Result<Vec<ContainerInfo>> {
        Ok(self.snapshot()?.containers)
    }

    /// Every container of the stack and the running edge's details, from one listing (two engine round
    /// trips, which count on a rollback's clock).
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let ids = self.ids(&[])?;
        let mut containers = Vec::new();
        let mut edge = None;
        for raw in self.inspect_raw(&ids)? {
            let inspected =
                Inspect::deserialize(&raw).context("unexpected `docker inspect` output")?;
            let info = container_info(inspected);
            if info.service == "nginx" && info.running() && edge.is_none() {
                edge = Some(raw);
            }
            containers.push(info);
        }
        containers.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
        Ok(Snapshot { containers, edge })
    }

    fn service_containers(&self, service: &str) -> anyhow::Result<Vec<ContainerInfo>> {
        let ids = self.ids(&[format!("label={SERVICE_LABEL}={service}")])?;
        Ok(self
            .inspect(&ids)?
            .into_iter()
            .map(container_info)
            .collect())
    }

    fn no_edge(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "no running nginx in Compose project {}; start the stack with `cargo xtask up --env {}`",
            self.project,
            self.env.name()
        )
    }

    /// The edge as xtask's nginx module drives it: the container, its state directory (reached through
    /// the engine, so the engine may be remote) and its published plain-HTTP port.
    pub fn edge(&self) -> anyhow::Result<Edge> {
        let ids = self.ids(&[
            format!("label={SERVICE_LABEL}=nginx"),
            "status=running".to_owned(),
        ])?;
        let Some(id) = ids.first() else {
            return Err(self.no_edge());
        };
        let raw = self
            .inspect_raw(std::slice::from_ref(id))?
            .into_iter()
            .next()
            .context("nginx vanished while being inspected")?;
        Edge::from_inspect(&self.docker, &raw, self.holding.clone())
    }

    /// The edge of a [`Snapshot`], without asking the engine again.
    pub fn edge_in(&self, snapshot: &Snapshot) -> anyhow::Result<Edge> {
        match &snapshot.edge {
            Some(raw) => Edge::from_inspect(&self.docker, raw, self.holding.clone()),
            None => Err(self.no_edge()),
        }
    }

    /// Whether the engine is on another host (a `tcp://` or `ssh://` endpoint).
    pub fn engine_is_remote(&self) -> bool {
        endpoint_host(&self.docker.endpoint()).is_some()
    }

    /// What serves users now, from the live edge model and the running containers.
    pub fn live(&self, edge_model: &EdgeModel, containers: &[ContainerInfo]) -> Live {
        if let Some(routing) = slots::routing_of(edge_model) {
            return Live::Slot(routing.primary);
        }
        if containers
            .iter()
            .any(|c| slots::UNSLOTTED_SERVICES.contains(&c.service.as_str()) && c.running())
        {
            Live::Unslotted
        } else {
            Live::Nothing
        }
    }

    /// The `docker compose` invocation for this stack, with the variables compose interpolates.
    pub fn stack(&self, release: Option<&Release>) -> Stack {
        let mut stack = Stack::new(self.env, Some(self.project.clone()));
        if stack.var("AVALON_SECRETS_DIR").is_none() && self.env != StackEnv::Prod {
            // Where `cargo xtask up` generates the dev/offline secrets (stack::secrets).
            let dir = crate::project::root()
                .join(".avalon/secrets")
                .join(self.env.name());
            stack.set("AVALON_SECRETS_DIR", dir.display().to_string());
        }
        if let Some(release) = release {
            for (service, variable) in [
                ("api", "AVALON_API_IMAGE"),
                ("websocket", "AVALON_WS_IMAGE"),
            ] {
                if let Some(image) = release.images.get(service) {
                    stack.set(variable, image.clone());
                }
            }
        }
        stack
    }

    /// Writes the compose overlay that adds `slot`'s services: copies of the stack's own `api` and
    /// `websocket` (as the env overlay resolves them) with the release's images, slot labels, no published
    /// ports, and `extra_env` (e.g. a fault switch for a canary rehearsal).
    /// The containers are labelled with the overlay's config digest, computed for `release` as the ledger
    /// records it; compose is then given `composable`'s image references (see [`Self::composable_release`]).
    pub fn write_slot_overlay(
        &self,
        sh: &Shell,
        slot: Slot,
        release: &Release,
        composable: &Release,
        extra_env: &BTreeMap<String, String>,
    ) -> anyhow::Result<PathBuf> {
        let mut overlay = self.slot_overlay_json(sh, slot, release, extra_env)?;
        super::labels::stamp_config_digest(&mut overlay)?;
        use_images(&mut overlay, slot, composable);
        let dir = crate::project::root()
            .join(".avalon/deploy")
            .join(&self.project);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("compose.slot-{slot}.json"));
        let text = serde_json::to_string_pretty(&overlay)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The slot's overlay document, from `docker compose config` (reads only).
    pub fn slot_overlay_json(
        &self,
        sh: &Shell,
        slot: Slot,
        release: &Release,
        extra_env: &BTreeMap<String, String>,
    ) -> anyhow::Result<serde_json::Value> {
        let host_binds = self.host_binds()?;
        slot_overlay(
            &self.resolved(sh, release)?,
            slot,
            release,
            extra_env,
            &host_binds,
        )
    }

    /// The bind mounts the stack's `api` and `websocket` run with now (from any of their containers,
    /// unslotted or slotted; running ones first), by base service. A slot mounts the same host paths:
    /// the engine's, which need not exist where xtask runs (a remote engine, another checkout).
    fn host_binds(&self) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
        // One listing of the project serves both services.
        let containers = self.containers()?;
        let mut binds = BTreeMap::new();
        for base in ["api", "websocket"] {
            let services = [
                base.to_owned(),
                format!("{base}-blue"),
                format!("{base}-green"),
            ];
            let reference = containers
                .iter()
                .filter(|c| services.contains(&c.service))
                .min_by_key(|c| !c.running());
            if let Some(reference) = reference {
                binds.insert(base.to_owned(), reference.binds.clone());
            }
        }
        Ok(binds)
    }

    /// The stack's compose model for `release` with the host paths the running stack mounts (what a slot
    /// will see; see [`rebase_binds`]).
    pub fn effective(&self, sh: &Shell, release: &Release) -> anyhow::Result<serde_json::Value> {
        let mut resolved = self.resolved(sh, release)?;
        let host_binds = self.host_binds()?;
        let mut secrets = serde_json::Map::new();
        for (base, binds) in &host_binds {
            if let Some(definition) = resolved.pointer_mut(&format!("/services/{base}")) {
                rebase_binds(definition, binds, &mut secrets);
            }
        }
        for (name, secret) in secrets {
            if let Some(file) = resolved.pointer_mut(&format!("/secrets/{name}/file")) {
                *file = secret["file"].clone();
            }
        }
        Ok(resolved)
    }

    /// The stack's compose model as compose resolves it for `release` (reads only).
    pub fn resolved(&self, _sh: &Shell, release: &Release) -> anyhow::Result<serde_json::Value> {
        let resolved = self
            .compose(release)
            .config_json()
            .capture(None)
            .context("docker compose config")?;
        serde_json::from_str(&resolved).context("unexpected `docker compose config` output")
    }

    /// Under the deploy lock, a holder whose lease is lost starts and stops nothing more (its own clock:
    /// no round trip); the edge and the ledger check the fence itself.
    fn fenced(&self) -> anyhow::Result<()> {
        self.holding
            .fence()
            .map(|_| ())
            .map_err(|why| anyhow::Error::new(Stopped::LeaseLost(why)))
    }

    /// Creates (or recreates) the slot's containers and waits until their healthchecks pass.
    pub fn start_slot(
        &self,
        sh: &Shell,
        slot: Slot,
        release: &Release,
        extra_env: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.fenced()?;
        let composable = self.composable_release(release)?;
        let overlay = self.write_slot_overlay(sh, slot, release, &composable, extra_env)?;
        let release = &composable;
        let mut compose = self.compose(release);
        compose.files.push(overlay);
        compose
            .recreate_and_wait(&slot.services(), timeout.as_secs())
            .stream(None, &mut std::io::stdout())
            .with_context(|| format!("slot {slot} did not become healthy"))
    }

    /// Adds containers of one live service up to `replicas` (the running ones untouched) and waits for
    /// their healthchecks: a slot's service with the slot overlay a deploy writes, the unslotted one with
    /// the stack's own files; both with the images the live containers run (`release`).
    pub fn scale_out(
        &self,
        sh: &Shell,
        slot: Option<Slot>,
        release: &Release,
        service: &str,
        replicas: u32,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.fenced()?;
        let composable = self.composable_release(release)?;
        let mut compose = self.compose(&composable);
        if let Some(slot) = slot {
            let overlay =
                self.write_slot_overlay(sh, slot, release, &composable, &BTreeMap::new())?;
            compose.files.push(overlay);
        }
        compose
            .scale_out_and_wait(service, replicas, timeout.as_secs())
            .stream(None, &mut std::io::stdout())
            .with_context(|| format!("{service} did not become healthy at {replicas} replicas"))
    }

    /// Stops containers with their stop signal and grace period (the runtime drains) and removes them:
    /// a scale-in's instances, already out of the edge.
    pub fn stop_and_remove(&self, ids: &[String]) -> anyhow::Result<()> {
        self.fenced()?;
        if ids.is_empty() {
            return Ok(());
        }
        self.docker.stop_containers(ids).capture(None)?;
        self.docker.remove_stopped(ids).capture(None).map(|_| ())
    }

    /// `docker compose` of this stack for `release`.
    fn compose(&self, release: &Release) -> Compose {
        self.stack(Some(release)).command(&self.docker)
    }

    /// Compose cannot start an image given as a bare id (`sha256:…`, what the ledger records for images
    /// without a registry digest), so such images get a local tag naming the id first.
    pub fn composable_release(&self, release: &Release) -> anyhow::Result<Release> {
        let mut release = release.clone();
        for (service, image) in &mut release.images {
            if let Some(id) = image.strip_prefix("sha256:") {
                let short: String = id.chars().take(12).collect();
                let tag = format!(
                    "avalon-{}:id-{short}",
                    if service == "websocket" { "ws" } else { "api" }
                );
                self.docker.tag_image(image, &tag).capture(None)?;
                *image = tag;
            }
        }
        Ok(release)
    }

    /// Starts kept containers again and waits until each is healthy. Each container is started and then
    /// checked on a thread of its own, so the slowest start-then-ready sets the time (not every start, then
    /// a listing, then every check); the CLI would start the containers it is given one after another.
    /// `once_started` runs here while the checks go on, as soon as one container of every service has
    /// started (the service's name resolves on the stack's networks from then on); its result is `None`
    /// if no container of some service started.
    pub fn restart_kept<T>(
        &self,
        kept: &[KeptContainer],
        timeout: Duration,
        once_started: impl FnOnce() -> T,
    ) -> (anyhow::Result<()>, Option<T>) {
        if kept.is_empty() {
            return (Err(anyhow::anyhow!("no kept containers to start")), None);
        }
        if let Err(lost) = self.fenced() {
            return (Err(lost), None);
        }
        let deadline = Instant::now() + timeout;
        let (started_tx, started_rx) = std::sync::mpsc::channel::<&str>();
        std::thread::scope(|scope| {
            let runs: Vec<_> = kept
                .iter()
                .map(|container| {
                    let started = started_tx.clone();
                    scope.spawn(move || self.start_until_healthy(container, deadline, &started))
                })
                .collect();
            drop(started_tx);
            // Each thread reports its service once started; the count ends when every thread is done
            // reporting (a failed start reports nothing).
            let mut waiting: std::collections::BTreeSet<&str> =
                kept.iter().map(|c| c.service.as_str()).collect();
            for service in &started_rx {
                waiting.remove(service);
                if waiting.is_empty() {
                    break;
                }
            }
            let early = waiting.is_empty().then(once_started);
            let failures: Vec<String> = runs
                .into_iter()
                .filter_map(|run| match run.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(format!("{err:#}")),
                    Err(_) => Some("a container start thread panicked".to_owned()),
                })
                .collect();
            let result = if failures.is_empty() {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{}", failures.join("; ")))
            };
            (result, early)
        })
    }

    fn start_until_healthy<'a>(
        &self,
        kept: &'a KeptContainer,
        deadline: Instant,
        started: &std::sync::mpsc::Sender<&'a str>,
    ) -> anyhow::Result<()> {
        self.docker
            .start_container(&kept.id)
            .capture(None)
            .with_context(|| format!("cannot start {}", kept.name))?;
        let _ = started.send(kept.service.as_str());
        // A process is not listening the moment its container starts: checks are retried often, and the
        // engine is asked whether the container still runs only now and then (each ask is a round trip).
        let mut last_failure = String::new();
        let mut asked_at = Instant::now();
        loop {
            // Docker runs its first scheduled check only after a whole interval (the engine here predates
            // `start_interval`): the same check is run now instead.
            let passed = match &kept.healthcheck {
                // Nothing to run: the engine's word below (running, or exited) decides.
                None => false,
                Some(argv) => {
                    let checked = self.docker.exec_check(&kept.id, argv).output(None)?;
                    last_failure = format!("{}{}", checked.stdout_text(), checked.stderr);
                    checked.success()
                }
            };
            if passed {
                return Ok(());
            }
            let timed_out = Instant::now() > deadline;
            if timed_out
                || kept.healthcheck.is_none()
                || asked_at.elapsed() >= Duration::from_secs(1)
            {
                asked_at = Instant::now();
                // Not ready yet, or not running at all: only the engine can tell which.
                let now = self
                    .inspect(std::slice::from_ref(&kept.id))?
                    .into_iter()
                    .next()
                    .map(container_info)
                    .with_context(|| format!("{} vanished while starting", kept.name))?;
                if now.healthy() {
                    return Ok(());
                }
                if !now.running() && now.state != "restarting" {
                    bail!(
                        "{} is {} after its start (see `cargo xtask logs`)",
                        kept.name,
                        now.state
                    );
                }
                if timed_out {
                    bail!(
                        "{} not healthy in time ({}/{}); its check said: {}",
                        kept.name,
                        now.state,
                        now.health,
                        last_failure.trim_end()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops services' containers (their stop signal and grace period: the runtime drains) and keeps them.
    pub fn stop_services(&self, services: &[String]) -> anyhow::Result<()> {
        self.fenced()?;
        let mut ids = Vec::new();
        for service in services {
            ids.extend(
                self.service_containers(service)?
                    .into_iter()
                    .filter(ContainerInfo::running)
                    .map(|c| c.id),
            );
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.docker.stop_containers(&ids).capture(None).map(|_| ())
    }

    /// The reference that starts the very same image again: its repo digest when it has one (pulled or
    /// pushed), else the image id (local builds, imported archives).
    pub fn image_digest(&self, reference: &str) -> anyhow::Result<String> {
        let output = self
            .docker
            .image_digests(reference)
            .capture(None)
            .with_context(|| {
                format!("image {reference} is not on the target; build/import or push it first")
            })?;
        let (digests, id) = output
            .trim()
            .rsplit_once(' ')
            .context("unexpected `docker image inspect` output")?;
        let digests: Vec<String> = serde_json::from_str(digests).unwrap_or_default();
        Ok(digests.into_iter().next().unwrap_or_else(|| id.to_owned()))
    }

    /// nginx's access log since `since`, from the container's output.
    pub fn access_log(&self, edge: &Edge, since: time::OffsetDateTime) -> anyhow::Result<String> {
        // The access log goes to stdout, error-log lines to stderr; only stdout is read.
        self.docker
            .logs_since(&edge.container, since.unix_timestamp())
            .capture(None)
    }

    /// A small image present on the target for helper containers that never run (lock, ledger).
    pub fn helper_image(&self, containers: &[ContainerInfo]) -> anyhow::Result<String> {
        containers
            .iter()
            .find(|c| c.service.starts_with("api") || c.service == "nginx" || c.service == "redis")
            .map(|c| c.image_id.clone())
            .with_context(|| {
                format!(
                    "Compose project {} has no containers; start it with `cargo xtask up --env {}`",
                    self.project,
                    self.env.name()
                )
            })
    }
}
