//! The flags that choose where the MongoDB tools run (shared by create, restore and verify
//! --restore-test), and the target they describe; the command lines themselves are [`super::target`]'s.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::target::{MongoTarget, ToolPlace};
use crate::container_exec::{ContainerRef, DockerCli, secret_from_env};
use crate::stack::StackEnv;

/// Flags that choose the target, shared by create, restore and verify --restore-test.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Which stack, by the rule every command follows (`--env`, else AVALON_ENV, else dev). Credentials
    /// not already in the environment are read from `.env.<name>` in the project root (`.env.production`
    /// for prod, `.env.development` for dev), and that name is recorded in the manifest.
    #[arg(long = "env", value_name = "ENV", value_enum, env = crate::stack::ENV_VAR, default_value_t)]
    pub environment: StackEnv,
    /// Run the MongoDB tools on this host against MONGODB_URI instead of inside the container.
    #[arg(long)]
    pub local_tools: bool,
    /// Docker Compose project of the stack [default: avalon-<env>, the project `cargo xtask up` gives it].
    #[arg(long, value_name = "NAME", env = "AVALON_STACK_PROJECT")]
    pub project: Option<String>,
    /// MongoDB container name or id (default: the `mongodb` service of --project).
    #[arg(long, value_name = "NAME", conflicts_with = "local_tools")]
    pub mongodb_container: Option<String>,
    /// Docker context to talk to (default: DOCKER_HOST or the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The Docker CLI to run.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "docker",
        hide = true,
        env = "AVALON_DOCKER"
    )]
    pub docker: PathBuf,
}

impl Default for TargetArgs {
    fn default() -> Self {
        Self {
            environment: StackEnv::default(),
            local_tools: false,
            project: None,
            mongodb_container: None,
            context: None,
            docker: PathBuf::from("docker"),
        }
    }
}

impl TargetArgs {
    pub fn docker(&self) -> DockerCli {
        DockerCli {
            program: self.docker.clone(),
            context: self.context.clone(),
        }
    }

    /// `--project`, else the stack's own project name.
    pub fn project(&self) -> String {
        self.project
            .clone()
            .unwrap_or_else(|| self.environment.default_project())
    }

    pub fn compose_service(&self, service: &str) -> ContainerRef {
        ContainerRef::ComposeService {
            project: self.project(),
            service: service.to_owned(),
        }
    }

    /// Loads `.env.<ENV>` (without overriding what is already set) and describes the target.
    pub fn mongo(&self) -> anyhow::Result<MongoTarget> {
        self.load_env_file()?;
        let uri = secret_from_env("MONGODB_URI")?;
        let place = if self.local_tools {
            if uri.is_none() {
                bail!("--local-tools needs MONGODB_URI (or MONGODB_URI_FILE) in the environment");
            }
            ToolPlace::Host
        } else {
            let container = match &self.mongodb_container {
                Some(name) => ContainerRef::Named(name.clone()),
                None => self.compose_service("mongodb"),
            };
            ToolPlace::Container {
                docker: self.docker(),
                container,
            }
        };
        Ok(MongoTarget { place, uri })
    }

    pub fn load_env_file(&self) -> anyhow::Result<()> {
        let path = crate::project::root().join(format!(".env.{}", self.environment.app_env()));
        if path.exists() {
            dotenvy::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
        }
        Ok(())
    }
}
