//! `cargo xtask …` — the release and operations CLI of Avalon Ops.
//!
//! `main` only parses flags and dispatches; each command lives in its own module and prints every external
//! command it runs before running it.

mod backup;
mod bench;
mod ci;
mod config_check;
mod container_exec;
mod dev;
mod docs;
mod image;
mod maintenance_flag;
mod nginx;
mod project;
mod stack;
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
    /// Next semantic version from conventional commits: bump Cargo.toml, prepend CHANGELOG.md, commit, tag.
    /// The nginx edge: render the model, check it with `nginx -t`, reload a running edge safely.
    #[command(subcommand)]
    Nginx(nginx::Nginx),
    Version(version::Version),
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
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate configuration with the services' own validator; exits non-zero on any violation.
    Check(config_check::ConfigCheck),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = xshell::Shell::new()?;
    sh.change_dir(project::root());
    match cli.command {
        Command::Dev(cmd) => cmd.run(&sh),
        Command::Ci(cmd) => cmd.run(&sh),
        Command::Config(ConfigCommand::Check(cmd)) => cmd.run(&sh),
        Command::Docs(cmd) => cmd.run(&sh),
        Command::Backup(cmd) => cmd.run(&sh),
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Version(cmd) => cmd.run(&sh),
        Command::Nginx(cmd) => cmd.run(&sh),
        Command::Image(cmd) => cmd.run(&sh),
        Command::Up(cmd) => cmd.run(&sh),
        Command::Down(cmd) => cmd.run(&sh),
        Command::Ps(cmd) => cmd.run(&sh),
        Command::Logs(cmd) => cmd.run(&sh),
    }
}
