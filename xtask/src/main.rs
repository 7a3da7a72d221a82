//! `cargo xtask …` — the release and operations CLI of Avalon Ops.
//!
//! `main` only parses flags and dispatches; each command lives in its own module. External commands run
//! through the command layer ([`command`]), which prints each one that changes something before it runs,
//! and read-only ones too with `-v`.

mod autoscale;
mod backup;
mod bench;
mod ci;
mod command;
mod config_check;
mod container_exec;
mod deploy;
mod dev;
mod docs;
mod github_output;
mod heal;
mod host;
mod image;
mod instances;
mod k8s;
mod k8s_rules;
mod k8s_startup;
mod lab;
mod maintenance;
mod nginx;
mod project;
mod release;
mod scale;
mod stack;
mod swarm;
mod version;
mod workflows;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, check, run and operate Avalon Ops",
    version
)]
struct Cli {
    /// Also print the read-only commands run on a target (listings, inspections, log reads, health
    /// probes); commands that change something are printed always.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build and run both services natively on embedded defaults (no MongoDB, Redis or Docker).
    Dev(dev::Dev),
    /// Everything CI runs: formatting, clippy with warnings denied, generated files up to date, all tests.
    Ci(ci::Ci),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Generated documentation.
    #[command(subcommand)]
    Docs(docs::Docs),
    /// MongoDB backups: create, verify, restore, list, prune, status.
    #[command(subcommand)]
    Backup(backup::Backup),
    /// Benchmarks with their baselines, measured in the same run.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// The nginx edge: render the model, check it with `nginx -t`, reload a running edge safely.
    #[command(subcommand)]
    Nginx(nginx::Nginx),
    /// Next semantic version from conventional commits: bump Cargo.toml, prepend CHANGELOG.md, commit, tag.
    Version(version::Version),
    /// Release: ci, version, image build with the release tags, push or export, release notes (resumable).
    Release(release::Release),
    /// Container images: build, push, export/import, offline base images.
    #[command(subcommand)]
    Image(image::Image),
    /// Start a compose stack (dev, prod or offline) and wait until every service is healthy.
    Up(stack::Up),
    /// Stop and remove a compose stack.
    Down(stack::Down),
    /// Show the containers of a compose stack and their health.
    Ps(stack::Ps),
    /// Show the logs of a compose stack.
    Logs(stack::Logs),
    /// Blue/green deploy of a release: pre-flight, start the idle slot, switch, verify, drain the old one.
    Deploy(deploy::Deploy),
    /// Canary on the idle slot: sticky share stepped by a plan, each step judged; auto-abort on failure.
    #[command(subcommand)]
    Canary(deploy::Canary),
    /// Return traffic to an earlier good release (instant when its slot is still there).
    Rollback(deploy::Rollback),
    /// The release ledger kept on the target: every deploy, canary step, abort and rollback.
    Releases(deploy::Releases),
    /// Maintenance mode at the edge and in the apps; /health stays 200.
    #[command(subcommand)]
    Maintenance(maintenance::Maintenance),
    /// Current release, slots, weights, container health, maintenance, last outcome, the lock (running or
    /// stale), loud warnings.
    Status(deploy::Status),
    /// Break a stale deploy lock (its holder's lease expired or its process is gone); refuses a live one.
    Unlock(deploy::Unlock),
    /// Replicas from CPU, memory and connections with HPA semantics (deploy/scaling.toml); `simulate`
    /// replays a demand trace through the same policy.
    Autoscale(autoscale::Autoscale),
    /// Every api and websocket instance as the instance registry and the engine see it, with their
    /// disagreements (a container up but not registered, a registration without a container).
    Instances(instances::Instances),
    /// Kubernetes manifests of k8s/: build every overlay and validate it offline; HPAs from the policy.
    #[command(subcommand)]
    K8s(k8s::K8s),
    /// Change the live slot's replicas of api or websocket: scale-out waits until the new instances are
    /// ready and on the edge; scale-in drains the instances with the fewest live games first.
    Scale(scale::Scale),
    /// The live edge's membership: its upstreams follow the instance registry.
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Restart containers that stay unhealthy (hung processes), with back-off; one pass or --watch.
    Heal(heal::Heal),
    /// A multi-node Docker Swarm on this machine (one engine per network namespace): up, down, status,
    /// load images, and the fault verbs cut/reconnect/kill-engine/start-engine. Needs root.
    #[command(subcommand)]
    Lab(lab::Lab),
    /// Prepare a Docker host (directories, secrets, env file, certificates, sysctls, units) or check one.
    #[command(subcommand)]
    Host(host::Host),
}

#[derive(Subcommand)]
enum EdgeCommand {
    /// Keep the edge's upstream members in line with the instance registry (ready instances in,
    /// draining and vanished ones out): graceful, verified reloads; skipped while the deploy lock is held.
    Follow(scale::Follow),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate configuration with the services' own validator; exits non-zero on any violation.
    Check(config_check::ConfigCheck),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    command::set_verbose(cli.verbose);
    let sh = xshell::Shell::new()?;
    sh.change_dir(project::root());
    match cli.command {
        Command::Dev(cmd) => cmd.run(&sh),
        Command::Ci(cmd) => cmd.run(&sh),
        Command::Config(ConfigCommand::Check(cmd)) => cmd.run(&sh),
        Command::Docs(cmd) => cmd.run(&sh),
        Command::Backup(cmd) => cmd.run(&sh),
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Nginx(cmd) => cmd.run(&sh),
        Command::Version(cmd) => cmd.run(&sh),
        Command::Release(cmd) => cmd.run(&sh),
        Command::Image(cmd) => cmd.run(&sh),
        Command::Up(cmd) => cmd.run(&sh),
        Command::Down(cmd) => cmd.run(),
        Command::Ps(cmd) => cmd.run(),
        Command::Logs(cmd) => cmd.run(),
        Command::Deploy(cmd) => cmd.run(&sh),
        Command::Canary(cmd) => cmd.run(&sh),
        Command::Rollback(cmd) => cmd.run(&sh),
        Command::Releases(cmd) => cmd.run(),
        Command::Maintenance(cmd) => cmd.run(&sh),
        Command::Status(cmd) => cmd.run(),
        Command::Unlock(cmd) => cmd.run(),
        Command::Heal(cmd) => cmd.run(),
        Command::Scale(cmd) => cmd.run(&sh),
        Command::Edge(EdgeCommand::Follow(cmd)) => cmd.run(&sh),
        Command::Instances(cmd) => cmd.run(),
        Command::K8s(cmd) => cmd.run(&sh),
        Command::Autoscale(cmd) => cmd.run(),
        Command::Host(cmd) => cmd.run(),
        Command::Lab(cmd) => cmd.run(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// `--env` flags that are not the stack: `config check --env` is APP_ENV (development, production, …);
    /// `host init|check --env` is the kind of host being prepared (prod or staging).
    const NOT_THE_STACK: [&str; 3] = ["config check", "host init", "host check"];

    /// Every `--env` that names a stack, with the command path that has it.
    fn stack_env_flags(command: &clap::Command, path: &str, found: &mut Vec<(String, clap::Arg)>) {
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name()).trim().to_owned();
            if let Some(env) = sub
                .get_arguments()
                .find(|arg| arg.get_long() == Some("env"))
                && !NOT_THE_STACK.contains(&path.as_str())
            {
                found.push((path.clone(), env.clone()));
            }
            stack_env_flags(sub, &path, found);
        }
    }

    /// One rule for every command: `--env`, else AVALON_ENV, else `dev` (docs/operations.md).
    #[test]
    fn every_command_defaults_to_the_same_stack() {
        let mut found = Vec::new();
        stack_env_flags(&Cli::command(), "", &mut found);
        for (path, env) in &found {
            let defaults: Vec<_> = env.get_default_values().iter().collect();
            assert_eq!(defaults, ["dev"], "`{path} --env` default");
            assert_eq!(
                env.get_env().and_then(|name| name.to_str()),
                Some(stack::ENV_VAR),
                "`{path} --env` variable"
            );
        }
        let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
        for expected in [
            "up",
            "down",
            "ps",
            "logs",
            "deploy",
            "canary start",
            "rollback",
            "releases",
            "maintenance on",
            "status",
            "instances",
            "heal",
            "backup create",
            "backup restore",
            "backup verify",
            "autoscale",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
    }

    #[test]
    fn the_stack_env_parses_with_its_application_names_too() {
        for (given, parsed) in [
            ("prod", stack::StackEnv::Prod),
            ("production", stack::StackEnv::Prod),
            ("development", stack::StackEnv::Dev),
            ("offline", stack::StackEnv::Offline),
        ] {
            assert_eq!(
                <stack::StackEnv as clap::ValueEnum>::from_str(given, false),
                Ok(parsed)
            );
        }
    }
}
