//! `cargo xtask up|down|ps|logs [--env dev|prod|offline]`: the Compose stack of docker/.

mod compose;
mod edge_model;
mod health;
mod logs;
pub(crate) mod secrets;
mod slotted;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use xshell::Shell;

use crate::command::DockerCli;
use crate::image::build::{Build, BuildPath, identity};
use crate::image::docker;
use crate::image::service::ServiceChoice;
use crate::project;
pub use compose::{ENV_VAR, Stack, StackEnv};

/// The label a deploy puts on a slot's containers (`blue` or `green`). The stack knows slots only by this
/// label and these names (`api-green`, …) so that `up` and `logs` can tell a deployed stack; what a slot
/// is belongs to `deploy` (`deploy::slots::Slot`, which names itself from [`SLOT_NAMES`]).
pub const SLOT_LABEL: &str = "avalon.slot";
/// The slots' names: a deploy's services are `<service>-<slot>`.
pub const SLOT_NAMES: [&str; 2] = ["blue", "green"];

#[derive(Args, Clone)]
pub struct StackArgs {
    /// Which overlay of docker/compose.yml.
    #[arg(long, value_enum, env = compose::ENV_VAR, default_value_t)]
    pub env: StackEnv,
    /// Compose project name (default `avalon-<env>`); tests use their own so they never touch yours.
    #[arg(long, env = "AVALON_STACK_PROJECT")]
    pub project: Option<String>,
}

#[derive(Args)]
pub struct Up {
    #[command(flatten)]
    stack: StackArgs,
    /// Host port of the edge (default 8080, 80 for prod); also AVALON_HTTP_PORT.
    #[arg(long)]
    http_port: Option<u16>,
    /// Host port of the edge's HTTPS listener (prod; default 443); also AVALON_HTTPS_PORT.
    #[arg(long)]
    https_port: Option<u16>,
    /// Use the images already tagged for this checkout instead of building them.
    #[arg(long)]
    no_build: bool,
    /// Seconds to wait for every service to become healthy.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// Print what would run without changing anything.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    engine: crate::swarm::EngineArg,
}

#[derive(Args)]
pub struct Down {
    #[command(flatten)]
    stack: StackArgs,
    /// Also remove the named volumes (Redis data, the embedded store, MongoDB data).
    #[arg(long)]
    volumes: bool,
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    engine: crate::swarm::EngineArg,
}

#[derive(Args)]
pub struct Ps {
    #[command(flatten)]
    stack: StackArgs,
    /// Print `service`, `state`, `health` per container as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct Logs {
    #[command(flatten)]
    stack: StackArgs,
    /// Keep following new lines.
    #[arg(long, short)]
    follow: bool,
    /// Lines per service from the end.
    #[arg(long, default_value_t = 100)]
    tail: u32,
    /// Services to show (default: all). `api` shows the api containers of every slot, `api-green` the
    /// green slot's; each line starts with its container's name, which names the slot.
    services: Vec<String>,
}

/// Variables the compose files require (`${X:?…}`) that commands other than `up` do not use: compose
/// interpolates every file for every command, so `down` of a prod stack must not fail for lack of them.
const UP_ONLY_VARIABLES: [&str; 4] = [
    "AVALON_API_IMAGE",
    "AVALON_WS_IMAGE",
    "WECHAT_APPID",
    "AVALON_SECRETS_DIR",
];

impl Up {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let env = self.stack.env;
        if self.engine.is_swarm() {
            crate::swarm::refuse_ignored(
                "up",
                &[(
                    "--https-port",
                    self.https_port.is_some(),
                    "the Swarm stack publishes the edge's HTTP port only (--http-port); no HTTPS \
                     listener is published",
                )],
            )?;
            return crate::swarm::up::up(
                sh,
                crate::swarm::up::UpRequest {
                    env,
                    project: self.stack.project.clone(),
                    http_port: self.http_port,
                    timeout: std::time::Duration::from_secs(self.timeout),
                    dry_run: self.dry_run,
                },
            );
        }
        let mut stack = Stack::new(env, self.stack.project.clone());
        if let Some(port) = self.http_port {
            stack.set("AVALON_HTTP_PORT", port.to_string());
        }
        if let Some(port) = self.https_port {
            stack.set("AVALON_HTTPS_PORT", port.to_string());
        }
        if self.dry_run {
            return self.print_plan(&stack);
        }
        docker::require_engine(sh)?;
        docker::require_compose_v2(sh)?;
        slotted::refuse(&DockerCli::default(), &stack)?;
        if env == StackEnv::Offline {
            crate::image::base_images(sh)?;
        }
        if env.builds_images() {
            self.prepare_images(sh, &mut stack)?;
        }
        if env.generates_secrets() {
            let dir = secrets::ensure(env)?;
            stack.set("AVALON_SECRETS_DIR", dir.display().to_string());
        }
        stack.set(
            "AVALON_NGINX_DIR",
            nginx_tree(sh, &stack)?.display().to_string(),
        );

        let started = Instant::now();
        let result = stack.up(self.timeout);
        let services = health::services(&stack)?;
        if let Err(err) = result {
            health::print_unhealthy(&stack, &services);
            bail!(
                "up: the {} stack was not healthy within {}s ({err}); see the log lines above, \
                 `cargo xtask ps --env {}` and `cargo xtask down --env {}`",
                env.name(),
                self.timeout,
                env.name(),
                env.name()
            );
        }
        health::print_table(&services);
        let unhealthy: Vec<&str> = services
            .iter()
            .filter(|service| !service.is_healthy())
            .map(|service| service.service.as_str())
            .collect();
        if !unhealthy.is_empty() {
            health::print_unhealthy(&stack, &services);
            bail!("up: not healthy: {}", unhealthy.join(", "));
        }
        let port = stack.http_port();
        println!(
            "\nup: the {} stack ({}) is healthy after {:.1}s",
            env.name(),
            stack.project,
            started.elapsed().as_secs_f64()
        );
        println!("  health     http://127.0.0.1:{port}/health");
        if env == StackEnv::Prod {
            let https = stack.https_port();
            println!("  api        https://127.0.0.1:{https}/api/   (plain HTTP redirects here)");
            println!("  socket.io  wss://127.0.0.1:{https}/socket.io/");
        } else {
            println!("  api        http://127.0.0.1:{port}/api/");
            println!("  socket.io  ws://127.0.0.1:{port}/socket.io/");
        }
        if env == StackEnv::Dev {
            println!(
                "  api direct http://127.0.0.1:3000/livez   websocket direct http://127.0.0.1:3001/livez"
            );
        }
        Ok(())
    }

    /// Builds (or, with --no-build, finds) the images of this checkout and points the stack at them.
    fn prepare_images(&self, sh: &Shell, stack: &mut Stack) -> anyhow::Result<()> {
        let identity = identity(sh)?;
        let tag = format!("{}-{}", identity.version, identity.revision());
        if !self.no_build {
            Build {
                service: ServiceChoice::All,
                from: BuildPath::Host,
                registry: None,
                max_size_mb: 20,
                dry_run: false,
                json: false,
            }
            .run(sh)?;
        }
        for (variable, repository) in [
            ("AVALON_API_IMAGE", "avalon-api"),
            ("AVALON_WS_IMAGE", "avalon-ws"),
        ] {
            let reference = format!("{repository}:{tag}");
            if docker::inspect(sh, &reference)?.is_none() {
                bail!(
                    "{reference} does not exist: run `cargo xtask image build` or drop --no-build"
                );
            }
            stack.set(variable, reference);
        }
        Ok(())
    }

    fn print_plan(&self, stack: &Stack) -> anyhow::Result<()> {
        let env = stack.env;
        println!(
            "up plan for the {} stack (project {}):",
            env.name(),
            stack.project
        );
        if env == StackEnv::Offline {
            println!(
                "  cargo xtask image base            # nginx/redis from Debian packages, skipped when current"
            );
        }
        if env.builds_images() && !self.no_build {
            println!(
                "  cargo xtask image build           # avalon-api, avalon-ws from this checkout"
            );
        }
        if env.generates_secrets() {
            println!(
                "  generate missing secrets in {}",
                secrets::dir(env).display()
            );
        }
        let model = edge_model::for_stack(stack)?;
        println!(
            "  cargo xtask nginx render --model {} --out {}   # {}",
            model_file(stack).display(),
            nginx_dir(stack).display(),
            model.origin
        );
        println!(
            "  docker compose --project-name {} --file docker/compose.yml --file docker/compose.{}.yml \
             up --detach --remove-orphans --wait --wait-timeout {}",
            stack.project,
            env.name(),
            self.timeout
        );
        Ok(())
    }
}

impl Down {
    pub fn run(self) -> anyhow::Result<()> {
        if self.engine.is_swarm() {
            crate::swarm::refuse_ignored(
                "down",
                &[(
                    "--volumes",
                    self.volumes,
                    "`docker stack rm` leaves each node's volumes, and removing them means reaching \
                     every node; remove them there with `docker volume rm` after checking what they hold",
                )],
            )?;
            let project = crate::swarm::stack_name(self.stack.env, &self.stack.project);
            return crate::swarm::up::down(&project, self.dry_run);
        }
        let stack = stack_for_inspection(&self.stack);
        if self.dry_run {
            println!("would run: {}", stack.down_command(self.volumes));
            return Ok(());
        }
        stack.down(self.volumes).context("docker compose down")?;
        Ok(())
    }
}

impl Ps {
    pub fn run(self) -> anyhow::Result<()> {
        let stack = stack_for_inspection(&self.stack);
        let services = health::services(&stack)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&services)?);
        } else {
            health::print_table(&services);
        }
        Ok(())
    }
}

impl Logs {
    /// The project's containers by label (slots included, which the compose files do not know), then
    /// `docker logs` for the ones asked for.
    pub fn run(self) -> anyhow::Result<()> {
        let stack = Stack::new(self.stack.env, self.stack.project.clone());
        let docker = DockerCli::default();
        let sources = logs::select(&logs::list(&docker, &stack.project)?, &self.services)?;
        if sources.is_empty() {
            bail!(
                "logs: the stack {} has no containers; start it with `cargo xtask up --env {}`",
                stack.project,
                stack.env.name()
            );
        }
        logs::stream(&docker, &sources, self.tail, self.follow)
    }
}

/// A stack for commands that only look at (or remove) containers: compose still interpolates every file, so
/// each variable only `up` needs is given a self-describing `unset-<name>` value when the operator left it unset.
fn stack_for_inspection(args: &StackArgs) -> Stack {
    let mut stack = Stack::new(args.env, args.project.clone());
    for variable in UP_ONLY_VARIABLES {
        if stack.var(variable).is_none() {
            stack.set(variable, format!("unset-{}", variable.to_lowercase()));
        }
    }
    if stack
        .var("AVALON_SECRETS_DIR")
        .is_some_and(|dir| dir.starts_with("unset-"))
    {
        stack.set(
            "AVALON_SECRETS_DIR",
            secrets::dir(args.env).display().to_string(),
        );
    }
    stack
}

/// The model `up` rendered last, with the host's settings applied.
fn model_file(stack: &Stack) -> PathBuf {
    project::root()
        .join(".avalon/stack")
        .join(&stack.project)
        .join("edge-model.json")
}

fn nginx_dir(stack: &Stack) -> PathBuf {
    project::root()
        .join(".avalon/stack")
        .join(&stack.project)
        .join("nginx")
}

/// The edge tree the nginx container mounts: rendered by `cargo xtask nginx render` from the overlay's model
/// (prod: nginx/models/prod.json, HTTPS; dev/offline: the built-in one, `api:3000`, `websocket:3001`, plain
/// HTTP; AVALON_EDGE_MODEL replaces either) with the host's settings applied, or, in a build without that
/// command, the minimal `docker/nginx/` config.
pub(crate) fn nginx_tree(sh: &Shell, stack: &Stack) -> anyhow::Result<PathBuf> {
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let has_renderer = xshell::cmd!(sh, "{xtask} nginx render --help")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    if !has_renderer {
        let fallback = project::root().join("docker/nginx");
        eprintln!(
            "up: this xtask has no `nginx render`; mounting the minimal edge config {}",
            fallback.display()
        );
        return Ok(fallback);
    }
    let out = nginx_dir(stack);
    let chosen = edge_model::for_stack(stack)?;
    let model_path = model_file(stack);
    if let Some(dir) = model_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&chosen.model)?;
    std::fs::write(&model_path, format!("{json}\n"))
        .with_context(|| format!("writing {}", model_path.display()))?;
    eprintln!(
        "up: edge model from {} (API_BODY_LIMIT, AVALON_ADMIN_ALLOWLIST applied) -> {}",
        chosen.origin,
        model_path.display()
    );
    xshell::cmd!(sh, "{xtask} nginx render --out {out} --model {model_path}")
        .run()
        .context("rendering the nginx tree")?;
    Ok(out)
}
