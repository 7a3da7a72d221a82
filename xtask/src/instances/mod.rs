//! `cargo xtask instances [--json] [--env ENV] [--project NAME]`: every api and websocket instance as the
//! instance registry (Redis, `avalon:instance:<id>`) and the engine see it, side by side, with the
//! disagreements flagged: a container up but not registered, a registration without a container.
//! docs/operations.md "Instances and the registry".

pub mod registry_read;
mod table;
pub mod view;

use clap::Args;

use view::view;

use crate::deploy::Target;
use crate::stack::StackEnv;

#[derive(Args, Debug)]
pub struct Instances {
    /// Which stack (overlay of docker/compose.yml). The engine is DOCKER_HOST / DOCKER_CONTEXT's.
    #[arg(long, value_enum, env = crate::stack::ENV_VAR, default_value_t)]
    env: StackEnv,
    /// Compose project name [default: avalon-<env>].
    #[arg(long, env = "AVALON_STACK_PROJECT")]
    project: Option<String>,
    /// Print the view as one JSON object (`project`, `instances`, `disagreements`).
    #[arg(long)]
    json: bool,
}

impl Instances {
    pub fn run(self) -> anyhow::Result<()> {
        let target = Target::new(self.env, self.project);
        let view = view(&target)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&view)?);
        } else {
            print!("{}", table::render(&view));
        }
        Ok(())
    }
}
