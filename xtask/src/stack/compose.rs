//! The `docker compose` invocation of one stack: which files, which project, which variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::command::DockerCli;
use crate::project;

/// The variable every command's `--env` falls back to (up, down, ps, logs, deploy, canary, rollback,
/// releases, maintenance, status, heal, backup create/restore/verify): one rule, documented in
/// docs/operations.md. An operator exports `AVALON_ENV=prod` once on a production host.
pub const ENV_VAR: &str = "AVALON_ENV";

/// Which stack a command acts on: `--env`, else `$AVALON_ENV`, else `dev` for every command — the stack
/// `cargo xtask up` starts on a developer's machine; never production by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StackEnv {
    /// Images built from this checkout, ports on loopback, MongoDB, debug logs.
    #[default]
    #[value(alias = "development")]
    Dev,
    /// Released images from AVALON_API_IMAGE/AVALON_WS_IMAGE, limits, hardening, operator's secrets.
    #[value(alias = "production")]
    Prod,
    /// No registry: locally built nginx/redis base images, no MongoDB (embedded store).
    Offline,
}

impl StackEnv {
    pub fn name(self) -> &'static str {
        match self {
            StackEnv::Dev => "dev",
            StackEnv::Prod => "prod",
            StackEnv::Offline => "offline",
        }
    }

    /// The application's name for it (APP_ENV, `.env.<name>` files, backup manifests).
    pub fn app_env(self) -> &'static str {
        match self {
            StackEnv::Dev => "development",
            StackEnv::Prod => "production",
            StackEnv::Offline => "offline",
        }
    }

    /// The Compose project of this stack unless `--project` names another: `avalon-<env>`.
    pub fn default_project(self) -> String {
        format!("avalon-{}", self.name())
    }

    pub fn overlay(self) -> PathBuf {
        project::root()
            .join("docker")
            .join(format!("compose.{}.yml", self.name()))
    }

    /// Whether `up` builds the service images from this checkout (prod runs released images).
    pub fn builds_images(self) -> bool {
        self != StackEnv::Prod
    }

    /// Whether `up` generates throwaway secrets (prod reads the operator's AVALON_SECRETS_DIR).
    pub fn generates_secrets(self) -> bool {
        self != StackEnv::Prod
    }

    /// The shipped edge model `up` renders for this overlay (relative to the repository), when it is not the
    /// built-in plain-HTTP one; AVALON_EDGE_MODEL replaces it.
    pub fn edge_model_file(self) -> Option<PathBuf> {
        match self {
            StackEnv::Prod => Some(project::root().join("nginx/models/prod.json")),
            StackEnv::Dev | StackEnv::Offline => None,
        }
    }

    /// Default host port of the edge.
    pub fn default_http_port(self) -> u16 {
        match self {
            StackEnv::Prod => 80,
            StackEnv::Dev | StackEnv::Offline => 8080,
        }
    }
}

/// One stack: an overlay plus a compose project name, with the variables its files interpolate.
pub struct Stack {
    pub env: StackEnv,
    pub project: String,
    pub vars: BTreeMap<String, String>,
}

impl Stack {
    pub fn new(env: StackEnv, project: Option<String>) -> Stack {
        Stack {
            env,
            project: project.unwrap_or_else(|| env.default_project()),
            vars: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.vars.insert(key.to_owned(), value.into());
    }

    /// A variable as compose will see it: set by xtask, else from the environment.
    pub fn var(&self, key: &str) -> Option<String> {
        self.vars
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok().filter(|value| !value.is_empty()))
    }

    pub fn http_port(&self) -> String {
        self.var("AVALON_HTTP_PORT")
            .unwrap_or_else(|| self.env.default_http_port().to_string())
    }

    /// Host port of the edge's HTTPS listener (published by the prod overlay only).
    pub fn https_port(&self) -> String {
        self.var("AVALON_HTTPS_PORT")
            .unwrap_or_else(|| "443".to_owned())
    }

    /// The same project for the command layer: `docker compose -p <project> -f docker/compose.yml -f
    /// docker/compose.<env>.yml`, with these variables, from the checkout's root.
    pub fn command(&self, docker: &crate::command::DockerCli) -> crate::command::Compose {
        crate::command::Compose {
            docker: docker.clone(),
            project: self.project.clone(),
            files: vec![
                project::root().join("docker/compose.yml"),
                self.env.overlay(),
            ],
            vars: self.vars.clone(),
            dir: project::root(),
        }
    }

    /// `docker compose up` of the whole stack, waiting until every service is healthy (printed: it changes
    /// the target).
    pub fn up(&self, timeout_secs: u64) -> anyhow::Result<()> {
        self.command(&DockerCli::default())
            .up_and_wait(timeout_secs)
            .stream(None, &mut std::io::stdout())
    }

    /// `docker compose down` of the stack, with its named volumes when `volumes`.
    pub fn down_command(&self, volumes: bool) -> crate::command::Invocation {
        self.command(&DockerCli::default()).down(volumes)
    }

    pub fn down(&self, volumes: bool) -> anyhow::Result<()> {
        self.down_command(volumes)
            .stream(None, &mut std::io::stdout())
    }

    /// `docker compose ps --all --format json` of the stack (reads only).
    pub fn ps_json(&self) -> anyhow::Result<String> {
        self.command(&DockerCli::default()).ps_json().capture(None)
    }

    /// The last `tail` log lines of one service (reads only; printed with `-v`).
    pub fn print_service_logs(&self, service: &str, tail: u32) -> anyhow::Result<()> {
        self.command(&DockerCli::default())
            .service_logs(service, tail)
            .stream(None, &mut std::io::stdout())
    }
}
