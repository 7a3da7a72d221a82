//! The target stack as the Docker CLI sees it: its containers and their slots, starting and stopping a
//! slot, and the edge (nginx) that routes between them. Everything goes through `docker` / `docker
//! compose`, so `DOCKER_HOST=ssh://…` or `DOCKER_CONTEXT=…` points every command at a remote engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::ledger::Release;
use super::plan::Live;
use super::slots::{self, Routing, Slot};
use crate::container_exec::DockerCli;
use crate::nginx::{self, EdgeModel, ReloadOptions};
use crate::stack::{Stack, StackEnv};

/// Where the nginx container mounts its tree (see docker/compose.yml).
const EDGE_MOUNT: &str = "/etc/nginx";
/// The symlink the nginx module swaps between rendered trees (nginx::target::LIVE).
const LIVE_LINK: &str = "live";

pub struct Target {
    pub docker: DockerCli,
    pub env: StackEnv,
    pub project: String,
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
    /// The image's or compose's healthcheck command, as an argv to `docker exec` (`None` without one).
    #[serde(skip)]
    pub healthcheck: Option<Vec<String>>,
}

impl ContainerInfo {
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
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    status: String,
    #[serde(default)]
    health: Option<InspectHealth>,
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
    source: String,
    destination: String,
}

pub const SLOT_LABEL: &str = "avalon.slot";
pub const RELEASE_LABEL: &str = "avalon.release";

/// Parses `docker inspect` output into container facts.
#[cfg(test)]
pub fn parse_inspect(json: &str) -> anyhow::Result<Vec<ContainerInfo>> {
    let raw: Vec<Inspect> =
        serde_json::from_str(json).context("unexpected `docker inspect` output")?;
    Ok(raw.into_iter().map(container_info).collect())
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
        restart_count: raw.restart_count,
        healthcheck: raw
            .config
            .healthcheck
            .and_then(|check| healthcheck_argv(&check.test)),
    }
}

impl Target {
    pub fn new(env: StackEnv, project: Option<String>) -> Self {
        Self {
            docker: DockerCli::default(),
            env,
            project: project.unwrap_or_else(|| format!("avalon-{}", env.name())),
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

    fn inspect(&self, ids: &[String]) -> anyhow::Result<Vec<Inspect>> {
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

    /// Every container of the stack, running or not.
    pub fn containers(&self) -> anyhow::Result<Vec<ContainerInfo>> {
        let ids = self.ids(&[])?;
        let mut containers: Vec<ContainerInfo> = self
            .inspect(&ids)?
            .into_iter()
            .map(container_info)
            .collect();
        containers.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
        Ok(containers)
    }

    fn service_containers(&self, service: &str) -> anyhow::Result<Vec<ContainerInfo>> {
        let ids = self.ids(&[format!("label=com.docker.compose.service={service}")])?;
        Ok(self
            .inspect(&ids)?
            .into_iter()
            .map(container_info)
            .collect())
    }

    fn nginx(&self) -> anyhow::Result<Inspect> {
        let ids = self.ids(&[
            "label=com.docker.compose.service=nginx".to_owned(),
            "status=running".to_owned(),
        ])?;
        let Some(id) = ids.first() else {
            bail!(
                "no running nginx in Compose project {}; start the stack with `cargo xtask up --env {}`",
                self.project,
                self.env.name()
            );
        };
        self.inspect(std::slice::from_ref(id))?
            .into_iter()
            .next()
            .context("nginx vanished while being inspected")
    }

    /// The edge as xtask's nginx module drives it: the container, the tree directory it mounts (which
    /// must be reachable from this machine: a local engine, or xtask run on the target host) and the URL
    /// of its published plain-HTTP port for verification.
    pub fn edge(&self) -> anyhow::Result<Edge> {
        let nginx = self.nginx()?;
        let mount = nginx
            .mounts
            .iter()
            .find(|m| m.destination == EDGE_MOUNT)
            .with_context(|| format!("the nginx container mounts nothing at {EDGE_MOUNT}"))?;
        let state_dir = PathBuf::from(&mount.source);
        if !state_dir.is_dir() {
            bail!(
                "the edge tree {} (mounted by nginx on the Docker host) is not on this machine: run the deploy \
                 commands on the Docker host, or from a machine that shares that directory",
                state_dir.display()
            );
        }
        let port = self
            .docker
            .invocation()
            .args(["container", "port", &nginx.id, "80/tcp"])
            .capture(None)
            .context("the nginx container publishes no port 80")?;
        let published = port
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .replace("0.0.0.0", "127.0.0.1");
        Ok(Edge {
            container: nginx.name.trim_start_matches('/').to_owned(),
            state_dir,
            base_url: format!("http://{published}"),
        })
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
        slot_overlay(&self.resolved(sh, release)?, slot, release, extra_env)
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

    /// Starts a slot's kept containers and waits until they are healthy.
    pub fn restart_slot(&self, slot: Slot, timeout: Duration) -> anyhow::Result<()> {
        let ids = self.slot_ids(slot)?;
        if ids.is_empty() {
            bail!("slot {slot} has no containers to start");
        }
        self.docker
            .invocation()
            .args(["container", "start"])
            .args(ids)
            .capture(None)?;
        self.wait_healthy(&slot.services(), timeout)
    }

    fn slot_ids(&self, slot: Slot) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        for service in slot.services() {
            ids.extend(self.service_containers(&service)?.into_iter().map(|c| c.id));
        }
        Ok(ids)
    }

    pub fn wait_healthy(&self, services: &[String], timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = Vec::new();
            for service in services {
                all.extend(self.service_containers(service)?);
            }
            if !all.is_empty() && all.iter().all(|c| c.healthy() || self.passes_check_now(c)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let states: Vec<String> = all
                    .iter()
                    .map(|c| format!("{} {}/{}", c.name, c.state, c.health))
                    .collect();
                bail!(
                    "not healthy within {}s: {}",
                    timeout.as_secs(),
                    states.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A started container whose first scheduled healthcheck has not run yet: runs the same check now.
    /// Docker waits a whole interval before the first check (the engine here predates `start_interval`),
    /// which would put most of a rollback's time into waiting for a process that was ready long before.
    fn passes_check_now(&self, container: &ContainerInfo) -> bool {
        if !(container.running() && container.health == "starting") {
            return false;
        }
        let Some(argv) = &container.healthcheck else {
            return false;
        };
        self.docker
            .invocation()
            .args(["exec", container.id.as_str()])
            .args(argv.iter().cloned())
            .capture(None)
            .is_ok()
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

/// The edge of a stack: its container, tree directory and URL.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub container: String,
    pub state_dir: PathBuf,
    pub base_url: String,
}

impl Edge {
    fn nginx_target(&self) -> nginx::Target {
        nginx::Target::Container {
            name: self.container.clone(),
            state_dir: self.state_dir.clone(),
            container_dir: PathBuf::from(EDGE_MOUNT),
        }
    }

    /// The model the edge runs now: the live tree's, or the flat tree `cargo xtask up` rendered.
    pub fn model(&self) -> anyhow::Result<EdgeModel> {
        let tree = self
            .nginx_target()
            .live_tree()
            .unwrap_or_else(|| self.state_dir.clone());
        nginx::read_tree_model(&tree)
    }

    /// Renders `model`, checks it with the container's nginx, swaps it in and reloads gracefully.
    pub fn apply(&self, sh: &Shell, model: &EdgeModel) -> anyhow::Result<nginx::ReloadReport> {
        let target = self.nginx_target();
        let options = ReloadOptions {
            verify_url: Some(self.base_url.clone()),
            ..ReloadOptions::default()
        };
        adopt_flat_tree(&self.state_dir)?;
        nginx::reload(sh, &target, model, &options)
    }

    pub fn route(
        &self,
        sh: &Shell,
        routing: Routing,
        keep_idle: Option<Slot>,
    ) -> anyhow::Result<nginx::ReloadReport> {
        let model = slots::edge_model(&self.model()?, routing, keep_idle);
        self.apply(sh, &model)
    }
}

/// Before the first swap: the flat tree `cargo xtask up` rendered becomes the first tree behind `live`
/// (a copy under `trees/`), and its entries become links into `live/`. Nothing nginx reads changes
/// content, so no reload is needed; from then on every swap of `live` is what the next reload sees.
fn adopt_flat_tree(state_dir: &Path) -> anyhow::Result<()> {
    let live = state_dir.join(LIVE_LINK);
    if std::fs::symlink_metadata(&live).is_err() {
        let initial = state_dir.join("trees/0000-initial");
        std::fs::create_dir_all(&initial)
            .with_context(|| format!("cannot create {}", initial.display()))?;
        for entry in std::fs::read_dir(state_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if text == "trees" || text.starts_with('.') {
                continue;
            }
            copy_recursively(&entry.path(), &initial.join(&name))?;
        }
        std::os::unix::fs::symlink("trees/0000-initial", &live)
            .with_context(|| format!("cannot create {}", live.display()))?;
    }
    link_flat_tree_to_live(state_dir)
}

fn copy_recursively(from: &Path, to: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_recursively(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        std::fs::copy(from, to).with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(())
}

/// `cargo xtask up` renders a flat tree that nginx runs with `-p /etc/nginx/`. The nginx module swaps
/// whole trees behind the `live` symlink; pointing the flat tree's entries at `live/…` makes the running
/// nginx follow every swap on its next reload, without recreating the container.
fn link_flat_tree_to_live(state_dir: &Path) -> anyhow::Result<()> {
    let live = state_dir.join(LIVE_LINK);
    let entries =
        std::fs::read_dir(&live).with_context(|| format!("cannot list {}", live.display()))?;
    for entry in entries {
        let name = entry?.file_name();
        let flat = state_dir.join(&name);
        if std::fs::symlink_metadata(&flat).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        let staging = state_dir.join(format!(".{}.link", name.to_string_lossy()));
        let _ = std::fs::remove_file(&staging);
        std::os::unix::fs::symlink(Path::new(LIVE_LINK).join(&name), &staging)?;
        if flat.is_dir() {
            let old = state_dir.join(format!(".flat-{}", name.to_string_lossy()));
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&flat, &old)?;
        }
        std::fs::rename(&staging, &flat)
            .with_context(|| format!("cannot link {}", flat.display()))?;
    }
    Ok(())
}

/// The overlay document adding one slot's services (pure: tested without Docker).
pub fn slot_overlay(
    resolved: &serde_json::Value,
    slot: Slot,
    release: &Release,
    extra_env: &BTreeMap<String, String>,
) -> anyhow::Result<serde_json::Value> {
    let mut services = serde_json::Map::new();
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
        services.insert(service, definition);
    }
    Ok(serde_json::json!({ "services": services }))
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
        let overlay = slot_overlay(&resolved, Slot::Green, &release, &extra).unwrap();
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
    fn a_flat_tree_is_adopted_without_changing_what_nginx_reads() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        std::fs::create_dir_all(state.join("conf.d")).unwrap();
        std::fs::write(state.join("conf.d/a.conf"), "a").unwrap();
        std::fs::write(state.join("nginx.conf"), "flat").unwrap();
        adopt_flat_tree(state).unwrap();
        assert_eq!(
            std::fs::read_to_string(state.join("nginx.conf")).unwrap(),
            "flat"
        );
        assert_eq!(
            std::fs::read_to_string(state.join("conf.d/a.conf")).unwrap(),
            "a"
        );
        assert!(
            std::fs::symlink_metadata(state.join("nginx.conf"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A swap of `live` is what nginx reads next.
        std::fs::create_dir_all(state.join("trees/2-b/conf.d")).unwrap();
        std::fs::write(state.join("trees/2-b/nginx.conf"), "new").unwrap();
        std::fs::remove_file(state.join("live")).unwrap();
        std::os::unix::fs::symlink("trees/2-b", state.join("live")).unwrap();
        assert_eq!(
            std::fs::read_to_string(state.join("nginx.conf")).unwrap(),
            "new"
        );
        adopt_flat_tree(state).unwrap();
    }

    #[test]
    fn the_flat_tree_ends_up_pointing_at_live() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        std::fs::create_dir_all(state.join("conf.d")).unwrap();
        std::fs::write(state.join("nginx.conf"), "flat").unwrap();
        std::fs::create_dir_all(state.join("trees/1-a/conf.d")).unwrap();
        std::fs::write(state.join("trees/1-a/nginx.conf"), "tree").unwrap();
        std::os::unix::fs::symlink("trees/1-a", state.join("live")).unwrap();
        link_flat_tree_to_live(state).unwrap();
        link_flat_tree_to_live(state).unwrap();
        assert_eq!(
            std::fs::read_to_string(state.join("nginx.conf")).unwrap(),
            "tree"
        );
        assert_eq!(
            std::fs::read_link(state.join("conf.d")).unwrap(),
            Path::new("live/conf.d")
        );
    }
}
