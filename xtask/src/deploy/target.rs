//! The target stack as the Docker CLI sees it: its containers and their slots, starting and stopping a
//! slot, and the edge (nginx) that routes between them. Everything goes through `docker` / `docker
//! compose`, so `DOCKER_HOST=ssh://…` or `DOCKER_CONTEXT=…` points every command at a remote engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::interrupt::Stopped;
use super::ledger::Release;
use super::lock::{self, Holding};
use super::plan::Live;
use super::slots::{self, Routing, Slot};
use crate::container_exec::DockerCli;
use crate::nginx::{self, EdgeModel, LIVE, ReloadOptions};
use crate::stack::{Stack, StackEnv};

/// Where the nginx container mounts its tree (see docker/compose.yml).
const EDGE_MOUNT: &str = "/etc/nginx";

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

/// One container of the stack, from `docker inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub service: String,
    pub slot: Option<Slot>,
    /// The image reference it was created from, and the image id it runs.
    pub image: String,
    pub image_id: String,
    /// The release label set when a slot was started.
    pub release: Option<String>,
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a healthcheck.
    pub health: String,
    pub restart_count: u64,
    /// Consecutive failed healthchecks right now.
    pub failing_streak: u64,
    /// How the process last ended (0 before it ever did), and whether the kernel's OOM killer ended it.
    pub exit_code: i64,
    pub oom_killed: bool,
    /// When the process last ended (`None` while it never has).
    #[serde(skip)]
    pub finished_at: Option<time::OffsetDateTime>,
    /// A `docker compose run` container, not a service replica.
    #[serde(skip)]
    pub one_off: bool,
    /// The image's or compose's healthcheck command, as an argv to `docker exec` (`None` without one).
    #[serde(skip)]
    pub healthcheck: Option<Vec<String>>,
    /// Bind mounts, path in the container → path on the engine's host.
    #[serde(skip)]
    pub binds: BTreeMap<String, String>,
}

/// What starting a kept container again needs, known when the plan is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    #[serde(skip)]
    pub healthcheck: Option<Vec<String>>,
}

impl ContainerInfo {
    pub fn kept(&self) -> KeptContainer {
        KeptContainer {
            id: self.id.clone(),
            name: self.name.clone(),
            service: self.service.clone(),
            healthcheck: self.healthcheck.clone(),
        }
    }

    pub fn running(&self) -> bool {
        self.state == "running"
    }

    pub fn healthy(&self) -> bool {
        self.running() && (self.health == "healthy" || self.health == "none")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    name: String,
    image: String,
    restart_count: u64,
    state: InspectState,
    config: InspectConfig,
    #[serde(default)]
    mounts: Vec<InspectMount>,
    #[serde(default)]
    network_settings: Option<InspectNetwork>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectNetwork {
    /// `"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]`; null for a port that is not published.
    #[serde(default)]
    ports: Option<BTreeMap<String, Option<Vec<InspectPortBinding>>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectPortBinding {
    #[serde(default)]
    host_ip: String,
    host_port: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    status: String,
    #[serde(default)]
    health: Option<InspectHealth>,
    #[serde(default)]
    exit_code: i64,
    #[serde(default, rename = "OOMKilled")]
    oom_killed: bool,
    /// RFC 3339; `0001-01-01T00:00:00Z` for a container that never stopped.
    #[serde(default)]
    finished_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealth {
    status: String,
    #[serde(default)]
    failing_streak: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectConfig {
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    healthcheck: Option<InspectHealthcheck>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealthcheck {
    #[serde(default)]
    test: Vec<String>,
}

/// A healthcheck's `Test` as an argv for `docker exec`: `CMD` runs as given, `CMD-SHELL` through `sh -c`;
/// `NONE` or an empty test has nothing to run.
fn healthcheck_argv(test: &[String]) -> Option<Vec<String>> {
    match test.split_first()? {
        (kind, rest) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        (kind, [command]) if kind == "CMD-SHELL" => {
            Some(vec!["sh".to_owned(), "-c".to_owned(), command.clone()])
        }
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectMount {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    destination: String,
}

pub const SLOT_LABEL: &str = "avalon.slot";
pub const RELEASE_LABEL: &str = "avalon.release";

/// Parses `docker inspect` output into container facts.
#[cfg(test)]
pub(crate) fn parse_inspect(json: &str) -> anyhow::Result<Vec<ContainerInfo>> {
    let raw: Vec<Inspect> =
        serde_json::from_str(json).context("unexpected `docker inspect` output")?;
    Ok(raw.into_iter().map(container_info).collect())
}

/// Docker's `FinishedAt`; its zero time (year 1) means the process never ended.
fn finished_at(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .filter(|at| at.year() > 1)
}

fn container_info(raw: Inspect) -> ContainerInfo {
    let labels = raw.config.labels.unwrap_or_default();
    let service = labels
        .get("com.docker.compose.service")
        .cloned()
        .unwrap_or_default();
    ContainerInfo {
        id: raw.id.chars().take(12).collect(),
        name: raw.name.trim_start_matches('/').to_owned(),
        slot: labels
            .get(SLOT_LABEL)
            .and_then(|s| Slot::parse(s))
            .or_else(|| Slot::of_service(&service)),
        service,
        image: raw.config.image,
        image_id: raw.image,
        release: labels.get(RELEASE_LABEL).cloned(),
        state: raw.state.status,
        health: raw
            .state
            .health
            .as_ref()
            .map_or_else(|| "none".to_owned(), |h| h.status.clone()),
        failing_streak: raw.state.health.map_or(0, |h| h.failing_streak),
        exit_code: raw.state.exit_code,
        oom_killed: raw.state.oom_killed,
        finished_at: finished_at(&raw.state.finished_at),
        one_off: labels
            .get("com.docker.compose.oneoff")
            .is_some_and(|value| value.eq_ignore_ascii_case("true")),
        restart_count: raw.restart_count,
        healthcheck: raw
            .config
            .healthcheck
            .and_then(|check| healthcheck_argv(&check.test)),
        binds: raw
            .mounts
            .into_iter()
            .filter(|m| m.kind == "bind")
            .map(|m| (m.destination, m.source))
            .collect(),
    }
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
        let mut invocation = self
            .docker
            .invocation()
            .args(["container", "ls", "--all", "--quiet"]);
        invocation = invocation.args([
            "--filter".to_owned(),
            format!("label=com.docker.compose.project={}", self.project),
        ]);
        for filter in filters {
            invocation = invocation.args(["--filter".to_owned(), filter.clone()]);
        }
        Ok(invocation
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
        let output = self
            .docker
            .invocation()
            .args(["container", "inspect"])
            .args(ids.iter().cloned())
            .capture(None)?;
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
        let ids = self.ids(&[format!("label=com.docker.compose.service={service}")])?;
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
            "label=com.docker.compose.service=nginx".to_owned(),
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
        self.edge_of(&raw)
    }

    /// The edge of a [`Snapshot`], without asking the engine again.
    pub fn edge_in(&self, snapshot: &Snapshot) -> anyhow::Result<Edge> {
        match &snapshot.edge {
            Some(raw) => self.edge_of(raw),
            None => Err(self.no_edge()),
        }
    }

    fn edge_of(&self, raw: &serde_json::Value) -> anyhow::Result<Edge> {
        let nginx = Inspect::deserialize(raw).context("unexpected `docker inspect` output")?;
        let container = nginx.name.trim_start_matches('/').to_owned();
        let engine = nginx::EngineEdge::from_inspect(
            self.docker.clone(),
            &container,
            Path::new(EDGE_MOUNT),
            raw,
        )?;
        let http_port = nginx
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove("80/tcp").flatten())
            .and_then(|bindings| bindings.into_iter().next())
            .with_context(|| format!("the edge container {container} publishes no port 80"))?;
        Ok(Edge {
            container,
            http_port: http_port.host_port,
            http_host_ip: http_port.host_ip,
            endpoint: std::sync::OnceLock::new(),
            engine,
            holding: self.holding.clone(),
        })
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
    pub fn write_slot_overlay(
        &self,
        sh: &Shell,
        slot: Slot,
        release: &Release,
        extra_env: &BTreeMap<String, String>,
    ) -> anyhow::Result<PathBuf> {
        let overlay = self.slot_overlay_json(sh, slot, release, extra_env)?;
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
    pub fn resolved(&self, sh: &Shell, release: &Release) -> anyhow::Result<serde_json::Value> {
        let stack = self.stack(Some(release));
        let resolved = stack
            .compose(sh, &["config", "--format", "json"])
            .quiet()
            .read()
            .context("docker compose config")?;
        serde_json::from_str(&resolved).context("unexpected `docker compose config` output")
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
        let release = &self.composable_release(release)?;
        let overlay = self.write_slot_overlay(sh, slot, release, extra_env)?;
        let stack = self.stack(Some(release));
        let base = crate::project::root().join("docker/compose.yml");
        let env_file = self.env.overlay();
        let project = &self.project;
        let timeout = timeout.as_secs().to_string();
        let [api, ws] = slot.services();
        let mut command = xshell::cmd!(
            sh,
            "docker compose --project-name {project} --file {base} --file {env_file} --file {overlay} up --detach --no-deps --force-recreate --wait --wait-timeout {timeout} {api} {ws}"
        )
        .env("COMPOSE_IGNORE_ORPHANS", "true");
        for (key, value) in &stack.vars {
            command = command.env(key, value);
        }
        command
            .run()
            .with_context(|| format!("slot {slot} did not become healthy"))
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
                self.docker
                    .invocation()
                    .args(["image", "tag", image.as_str(), &tag])
                    .capture(None)?;
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
            .invocation()
            .args(["container", "start", kept.id.as_str()])
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
                    let checked = self
                        .docker
                        .invocation()
                        .args(["exec", kept.id.as_str()])
                        .args(argv.iter().cloned())
                        .output(None)?;
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
        self.docker
            .invocation()
            .args(["container", "stop"])
            .args(ids)
            .capture(None)
            .map(|_| ())
    }

    /// The reference that starts the very same image again: its repo digest when it has one (pulled or
    /// pushed), else the image id (local builds, imported archives).
    pub fn image_digest(&self, reference: &str) -> anyhow::Result<String> {
        let output = self
            .docker
            .invocation()
            .args([
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}} {{.Id}}",
                reference,
            ])
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
        let since = since.unix_timestamp().to_string();
        // The access log goes to stdout, error-log lines to stderr; only stdout is read.
        self.docker
            .invocation()
            .args(["container", "logs", "--since", &since, &edge.container])
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

/// The edge of a stack: its container and state directory (through the engine).
#[derive(Debug, Clone)]
pub struct Edge {
    pub container: String,
    /// The host port nginx's port 80 is published on, and the address it is bound to.
    http_port: String,
    http_host_ip: String,
    /// The engine endpoint, asked for once.
    endpoint: std::sync::OnceLock<String>,
    pub engine: nginx::EngineEdge,
    holding: Holding,
}

impl Edge {
    /// The model the edge runs now: the live tree's, or the flat tree an older `cargo xtask up` rendered.
    pub fn model(&self) -> anyhow::Result<EdgeModel> {
        match self.engine.read_model(LIVE)? {
            Some(model) => Ok(model),
            None => self
                .engine
                .read_model("")?
                .context("the edge's state directory holds no model.json"),
        }
    }

    /// Renders `model`, checks it with the edge's nginx, swaps it in and reloads gracefully (see
    /// [`Self::finish`]).
    pub fn apply(&self, sh: &Shell, model: &EdgeModel) -> anyhow::Result<nginx::ReloadReport> {
        self.finish(sh, self.stage(model)?)
    }

    /// Renders `model` and checks it with the edge's nginx; nothing changes until [`Self::finish`]. Under
    /// the deploy lock the model carries the lock's fence.
    pub fn stage(&self, model: &EdgeModel) -> anyhow::Result<nginx::PendingReload> {
        let mut model = model.clone();
        let lost = |why| anyhow::Error::new(Stopped::LeaseLost(why));
        if let Some(fence) = self.holding.fence().map_err(lost)? {
            // Every staged model is derived from the live one as read (`model()`), which carries the fence
            // of its writer: checked here without another round trip on a rollback's clock; `finish`
            // checks the lease again.
            lock::edge_fence_allows(Some(fence), model.fence).map_err(lost)?;
            model.fence = Some(fence);
        }
        nginx::stage_reload(&nginx::Target::Container(self.engine.clone()), &model)
    }

    /// Swaps a staged tree in and reloads gracefully. The reload is verified through the published port
    /// when the engine is on this machine (what users reach, and no `docker exec` round trips on a
    /// rollback's clock), else from inside the edge container.
    pub fn finish(
        &self,
        sh: &Shell,
        pending: nginx::PendingReload,
    ) -> anyhow::Result<nginx::ReloadReport> {
        // Fenced: a holder that lost its lease swaps nothing (the live model's fence was checked when
        // this tree was staged).
        self.holding
            .fence()
            .map_err(|why| anyhow::Error::new(Stopped::LeaseLost(why)))?;
        // Not base_url(): AVALON_EDGE_URL may name a load balancer, and /.avalon/config answers
        // internal addresses only.
        let verify_url = endpoint_host(self.endpoint())
            .is_none()
            .then(|| format!("http://127.0.0.1:{}", self.http_port));
        let options = ReloadOptions {
            verify_url,
            ..ReloadOptions::default()
        };
        pending.finish(sh, &options)
    }

    pub fn route(
        &self,
        sh: &Shell,
        routing: Routing,
        keep_idle: Option<Slot>,
    ) -> anyhow::Result<nginx::ReloadReport> {
        self.finish(sh, self.stage_route(routing, keep_idle)?)
    }

    /// The edge model for `routing` (from the live one), staged.
    pub fn stage_route(
        &self,
        routing: Routing,
        keep_idle: Option<Slot>,
    ) -> anyhow::Result<nginx::PendingReload> {
        self.stage(&slots::edge_model(&self.model()?, routing, keep_idle))
    }

    /// The published plain-HTTP port as this machine reaches it (probe traffic of a judgment).
    pub fn base_url(&self) -> anyhow::Result<String> {
        // A port bound to the engine host's loopback is out of reach from any other machine.
        let elsewhere = endpoint_host(self.endpoint()).is_some_and(|host| {
            !matches!(host.as_str(), "localhost" | "[::1]") && !host.starts_with("127.")
        });
        let overridden = std::env::var("AVALON_EDGE_URL").is_ok_and(|url| !url.is_empty());
        if elsewhere && !overridden && self.http_host_ip.starts_with("127.") {
            bail!(
                "the edge publishes port {} on the engine host's loopback only ({}): set AVALON_EDGE_URL \
                 to a URL this machine reaches it by (an ssh tunnel, say)",
                self.http_port,
                self.http_host_ip
            );
        }
        Ok(edge_url(&self.http_port, self.endpoint()))
    }

    /// The engine's endpoint, asked once (a `docker context inspect`).
    pub fn endpoint(&self) -> &str {
        self.endpoint.get_or_init(|| self.engine.docker.endpoint())
    }
}

/// The edge URL for the published `port`: on this machine for a local engine, on the engine's host for
/// `tcp://` and `ssh://` endpoints. `AVALON_EDGE_URL` overrides (a load balancer or DNS name in front of
/// the host).
fn edge_url(port: &str, endpoint: &str) -> String {
    if let Some(url) = std::env::var("AVALON_EDGE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        return url.trim_end_matches('/').to_owned();
    }
    let host = endpoint_host(endpoint).unwrap_or_else(|| "127.0.0.1".to_owned());
    format!("http://{host}:{port}")
}

/// The host of a remote engine endpoint; `None` for a local socket.
fn endpoint_host(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("ssh://"))?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next()?),
        None => host_port.split(':').next()?.to_owned(),
    };
    (!host.is_empty()).then_some(host)
}

/// The overlay document adding one slot's services (pure: tested without Docker).
pub fn slot_overlay(
    resolved: &serde_json::Value,
    slot: Slot,
    release: &Release,
    extra_env: &BTreeMap<String, String>,
    host_binds: &BTreeMap<String, BTreeMap<String, String>>,
) -> anyhow::Result<serde_json::Value> {
    let mut services = serde_json::Map::new();
    let mut secrets = serde_json::Map::new();
    for (base, service) in [
        ("api", slot.api_service()),
        ("websocket", slot.ws_service()),
    ] {
        let mut definition = resolved
            .pointer(&format!("/services/{base}"))
            .cloned()
            .with_context(|| format!("the compose model has no `{base}` service to copy"))?;
        let object = definition
            .as_object_mut()
            .context("a compose service is not an object")?;
        for key in ["ports", "container_name", "build", "depends_on"] {
            object.remove(key);
        }
        // A slot must come back after a crash even on overlays without a restart policy (offline).
        object
            .entry("restart")
            .or_insert_with(|| "unless-stopped".into());
        if let Some(image) = release.images.get(base) {
            object.insert("image".to_owned(), image.clone().into());
        }
        let labels = object
            .entry("labels")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(SLOT_LABEL.to_owned(), slot.name().into());
            labels.insert(RELEASE_LABEL.to_owned(), release.version.clone().into());
        }
        let environment = object
            .entry("environment")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(environment) = environment.as_object_mut() {
            for (key, value) in extra_env {
                environment.insert(key.clone(), value.clone().into());
            }
        }
        if let Some(binds) = host_binds.get(base) {
            rebase_binds(&mut definition, binds, &mut secrets);
        }
        services.insert(service, definition);
    }
    let mut overlay = serde_json::json!({ "services": services });
    if !secrets.is_empty() {
        overlay["secrets"] = secrets.into();
    }
    Ok(overlay)
}

/// Points the service's bind mounts and file secrets at the host paths the running stack uses
/// (`binds`: path in the container → path on the host). Compose resolved them against this checkout,
/// which is the same place only when xtask runs on the engine's host from the checkout that started the
/// stack. Secrets become top-level overrides of their `file`.
fn rebase_binds(
    definition: &mut serde_json::Value,
    binds: &BTreeMap<String, String>,
    secrets: &mut serde_json::Map<String, serde_json::Value>,
) {
    if let Some(volumes) = definition
        .get_mut("volumes")
        .and_then(serde_json::Value::as_array_mut)
    {
        for volume in volumes {
            let is_bind = volume.get("type").and_then(serde_json::Value::as_str) == Some("bind");
            let host = volume
                .get("target")
                .and_then(serde_json::Value::as_str)
                .and_then(|target| binds.get(target));
            if let (true, Some(host)) = (is_bind, host) {
                volume["source"] = host.clone().into();
            }
        }
    }
    for secret in definition
        .get("secrets")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = secret.get("source").and_then(serde_json::Value::as_str) else {
            continue;
        };
        let target = secret
            .get("target")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(name);
        let in_container = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/run/secrets/{target}")
        };
        if let Some(host) = binds.get(&in_container) {
            secrets.insert(name.to_owned(), serde_json::json!({ "file": host }));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_slot_overlay_copies_the_services_with_the_release_and_without_ports() {
        let resolved = serde_json::json!({"services": {
            "api": {"image": "avalon-api:old", "ports": [{"target": 3000}], "environment": {"APP_ENV": "development"},
                    "depends_on": {"redis": {"condition": "service_healthy"}}, "networks": {"backend": null}},
            "websocket": {"image": "avalon-ws:old", "labels": {"x": "y"}}
        }});
        let release = Release {
            version: "1.2.0".to_owned(),
            images: BTreeMap::from([
                ("api".to_owned(), "avalon-api@sha256:aa".to_owned()),
                ("websocket".to_owned(), "sha256:bb".to_owned()),
            ]),
            config_digest: String::new(),
        };
        let extra = BTreeMap::from([("FAULT_INJECT_5XX_RATE".to_owned(), "0.5".to_owned())]);
        let overlay =
            slot_overlay(&resolved, Slot::Green, &release, &extra, &BTreeMap::new()).unwrap();
        assert!(overlay.get("secrets").is_none());
        let api = &overlay["services"]["api-green"];
        assert_eq!(api["image"], "avalon-api@sha256:aa");
        assert!(api.get("ports").is_none() && api.get("depends_on").is_none());
        assert_eq!(api["labels"][SLOT_LABEL], "green");
        assert_eq!(api["environment"]["FAULT_INJECT_5XX_RATE"], "0.5");
        assert_eq!(api["environment"]["APP_ENV"], "development");
        assert_eq!(api["restart"], "unless-stopped");
        assert_eq!(overlay["services"]["websocket-green"]["labels"]["x"], "y");
        assert_eq!(
            overlay["services"]["websocket-green"]["labels"][RELEASE_LABEL],
            "1.2.0"
        );
    }

    #[test]
    fn slots_mount_the_host_paths_the_running_stack_mounts() {
        // What `docker compose config` resolved in this checkout …
        let resolved = serde_json::json!({"services": {
            "api": {"image": "avalon-api:old",
                    "volumes": [{"type": "bind", "source": "/home/ci/checkout/config", "target": "/etc/avalon", "read_only": true},
                                {"type": "volume", "source": "api-data", "target": "/var/lib/avalon"}],
                    "secrets": [{"source": "jwt_secret"}, {"source": "wechat", "target": "/run/keys/wechat"}]},
            "websocket": {"image": "avalon-ws:old", "secrets": [{"source": "jwt_secret"}]}
        }});
        // … and what the stack's containers mount on the engine's host.
        let host = BTreeMap::from([(
            "api".to_owned(),
            BTreeMap::from([
                ("/etc/avalon".to_owned(), "/srv/avalon/config".to_owned()),
                (
                    "/run/secrets/jwt_secret".to_owned(),
                    "/srv/avalon/secrets/jwt_secret".to_owned(),
                ),
                (
                    "/run/keys/wechat".to_owned(),
                    "/srv/avalon/secrets/wechat".to_owned(),
                ),
            ]),
        )]);
        let release = Release {
            version: "1.2.0".to_owned(),
            images: BTreeMap::new(),
            config_digest: String::new(),
        };
        let overlay =
            slot_overlay(&resolved, Slot::Blue, &release, &BTreeMap::new(), &host).unwrap();
        let volumes = &overlay["services"]["api-blue"]["volumes"];
        assert_eq!(volumes[0]["source"], "/srv/avalon/config");
        assert_eq!(volumes[0]["read_only"], true);
        assert_eq!(
            volumes[1]["source"], "api-data",
            "named volumes are left alone"
        );
        assert_eq!(
            overlay["secrets"]["jwt_secret"]["file"],
            "/srv/avalon/secrets/jwt_secret"
        );
        assert_eq!(
            overlay["secrets"]["wechat"]["file"],
            "/srv/avalon/secrets/wechat"
        );
        assert!(
            overlay["services"]["websocket-blue"]
                .get("volumes")
                .is_none(),
            "no reference container for websocket: compose's paths stay"
        );
    }

    #[test]
    fn healthcheck_tests_become_exec_argvs() {
        let argv = |test: &[&str]| {
            healthcheck_argv(&test.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(
            argv(&["CMD", "/usr/local/bin/avalon-api", "healthcheck"]),
            Some(vec![
                "/usr/local/bin/avalon-api".to_owned(),
                "healthcheck".to_owned()
            ])
        );
        assert_eq!(
            argv(&["CMD-SHELL", "redis-cli ping"]),
            Some(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "redis-cli ping".to_owned()
            ])
        );
        assert_eq!(argv(&["NONE"]), None);
        assert_eq!(argv(&["CMD"]), None);
        assert_eq!(argv(&[]), None);
    }

    #[test]
    fn inspect_output_gives_slot_health_and_restarts() {
        let json = r#"[{"Id":"0123456789abcdef","Name":"/avalon-offline-api-green-1","Image":"sha256:img","RestartCount":3,
            "State":{"Status":"running","Health":{"Status":"unhealthy","FailingStreak":4}},
            "Config":{"Image":"avalon-api:1.2.0","Labels":{"com.docker.compose.service":"api-green","avalon.release":"1.2.0"}},
            "Mounts":[]}]"#;
        let containers = parse_inspect(json).unwrap();
        let c = &containers[0];
        assert_eq!(
            (c.id.as_str(), c.name.as_str(), c.slot),
            (
                "0123456789ab",
                "avalon-offline-api-green-1",
                Some(Slot::Green)
            )
        );
        assert_eq!(
            (c.health.as_str(), c.restart_count, c.failing_streak),
            ("unhealthy", 3, 4)
        );
        assert!(!c.healthy());
        assert_eq!(c.release.as_deref(), Some("1.2.0"));
    }

    #[test]
    fn the_edge_url_is_on_the_engine_host_for_remote_endpoints() {
        assert_eq!(
            edge_url("8080", "unix:///var/run/docker.sock"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            edge_url("80", "ssh://ops@game.example.com"),
            "http://game.example.com:80"
        );
        assert_eq!(
            edge_url("8080", "tcp://10.0.0.5:2376"),
            "http://10.0.0.5:8080"
        );
        assert_eq!(
            endpoint_host("ssh://ops@[2001:db8::1]:22"),
            Some("[2001:db8::1]".to_owned())
        );
        assert_eq!(endpoint_host("npipe:////./pipe/docker_engine"), None);
    }
}
