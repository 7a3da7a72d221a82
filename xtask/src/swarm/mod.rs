//! `--engine swarm` (or AVALON_ENGINE=swarm): the same stack on a Docker Swarm, reached through DOCKER_HOST
//! (a manager; `cargo xtask lab env` prints the lab's). Verbs: `up`, `deploy`, `rollback`, `status`,
//! `scale`, `maintenance`, `releases`, `down`, `unlock`; `canary` refuses (a service VIP balances evenly over its
//! tasks: there is no weighted split to step).
//!
//! One file per concern: [`transform`] (compose model → stack file, pure), [`stack_file`] (what the
//! transform reads from disk and `docker compose config`), [`target`] (services, tasks, convergence), [`edge`] (the nginx tree for DNS round robin),
//! [`ledger`] (the release ledger as Swarm configs), [`lock`] (the deploy lock as a Swarm config, leased
//! and fenced with deploy::lock's rules), and the verbs [`up`], [`rollout`] (deploy and rollback),
//! [`scale`], [`status`], [`maintenance`]. Flags stay in the command structs of `stack`, `deploy`, `scale`
//! and `maintenance`, which call in here when the engine is Swarm.

pub mod edge;
pub mod guard;
pub mod ledger;
pub mod lock;
pub mod maintenance;
pub mod rollout;
pub mod scale;
pub mod stack_file;
pub mod status;
pub mod target;
pub mod transform;
pub mod up;

use clap::{Args, ValueEnum};

/// The variable `--engine` falls back to.
pub const ENGINE_VAR: &str = "AVALON_ENGINE";

/// Which engine runs the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Engine {
    /// Docker Compose on one host (blue/green slots, canary).
    #[default]
    Compose,
    /// Docker Swarm through DOCKER_HOST (a manager): rolling updates, no canary.
    Swarm,
}

#[derive(Args, Debug, Clone, Copy, Default)]
pub struct EngineArg {
    /// Compose (one host) or Swarm (the cluster DOCKER_HOST's manager runs).
    #[arg(long, value_enum, env = ENGINE_VAR, default_value_t)]
    pub engine: Engine,
}

impl EngineArg {
    pub fn is_swarm(self) -> bool {
        self.engine == Engine::Swarm
    }

    /// Fails for a command that has no Swarm form.
    pub fn refuse_swarm(self, what: &str) -> anyhow::Result<()> {
        if self.is_swarm() {
            anyhow::bail!(
                "{what} has no --engine swarm form; with Swarm use up, deploy, rollback, status, scale, \
                 maintenance, releases, down, and unlock (breaks a stale Swarm deploy lock) \
                 (docs/operations.md, \"Swarm engine\")"
            );
        }
        Ok(())
    }
}

/// Refuses the first flag that is set but has no Swarm meaning: `(flag, set, why it has none)`. A flag
/// accepted and ignored would let an operator believe it took effect.
pub fn refuse_ignored(verb: &str, flags: &[(&str, bool, &str)]) -> anyhow::Result<()> {
    match flags.iter().find(|(_, set, _)| *set) {
        Some((flag, _, why)) => anyhow::bail!("{verb} --engine swarm does not take {flag}: {why}"),
        None => Ok(()),
    }
}

/// Why `canary --engine swarm` refuses.
pub const CANARY_REFUSAL: &str = "canary has no --engine swarm form: Swarm balances a service's virtual IP \
evenly over its tasks, so there is no weighted, sticky share to step and judge. Use `deploy --engine swarm` \
(a rolling update that Swarm rolls back itself when a new task fails its healthcheck) and `rollback`.";

/// The stack name: `--project`, else `avalon-<env>` (the Compose project's name).
pub fn stack_name(env: crate::stack::StackEnv, project: &Option<String>) -> String {
    project.clone().unwrap_or_else(|| env.default_project())
}

/// A deploy or rollback waits this long for the update to converge.
pub const ROLLOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The Swarm services of a stack are `<stack>_<service>`.
pub fn service_name(stack: &str, service: &str) -> String {
    format!("{stack}_{service}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ignored_flag_is_refused_by_name() {
        let flags = [
            ("--volumes", false, "a"),
            ("--pull", true, "each node pulls"),
        ];
        let err = refuse_ignored("deploy", &flags).unwrap_err().to_string();
        assert!(
            err.contains("--pull") && err.contains("each node pulls"),
            "{err}"
        );
        assert!(refuse_ignored("deploy", &flags[..1]).is_ok());
    }
}
