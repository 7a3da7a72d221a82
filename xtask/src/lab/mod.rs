//! `cargo xtask lab`: a multi-node Docker Swarm on this one machine — one dockerd per network namespace on a
//! Linux bridge — so the swarm engine of the stack is exercised on real nodes that can be cut off or killed.
//! Needs root, `ip`, `iptables`, `nsenter` and `dockerd`. See "The multi-node lab" in docs/operations.md.

mod down;
mod engine;
mod fault;
mod load;
mod procs;
mod spec;
mod state;
mod status;
mod up;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use spec::LabSpec;
use state::LabState;

#[derive(Subcommand)]
pub enum Lab {
    /// Make the lab (bridge, a namespace and an engine per node, a swarm with node 1 the manager) and wait
    /// until every node is Ready; reports a healthy lab already there, remakes a half-made one, and refuses
    /// a complete one with a node cut or an engine down, naming the command that mends it.
    Up(Up),
    /// Remove the lab: engines, mounts, namespaces, veths, FORWARD rules, bridge and data — what lab.json
    /// recorded, nothing else.
    Down(Down),
    /// Nodes, addresses, link and engine up, role, swarm state and availability.
    Status(Status),
    /// Copy images from the host engine into every node (default: the images `up --env offline` runs from this checkout).
    Load(Load),
    /// Cut a node off the network (the host end of its veth down).
    Cut(NodeFlag),
    /// Put a cut node back on the network.
    Reconnect(NodeFlag),
    /// SIGKILL a node's engine with its containerd, shims and containers (a lost machine).
    KillEngine(NodeFlag),
    /// Start a node's engine again on its data; it rejoins the swarm.
    StartEngine(NodeFlag),
    /// Print `export DOCKER_HOST=…` for the lab's manager: `eval "$(cargo xtask lab env)"`.
    Env(NameFlag),
}

#[derive(Args)]
pub struct NameFlag {
    /// The lab's name (part of its interface, namespace and directory names).
    #[arg(long, default_value = "avalon")]
    pub name: String,
}

#[derive(Args)]
pub struct Up {
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    #[command(flatten)]
    pub name: NameFlag,
    /// Print the commands and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the lab's status as JSON when it is up.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Down {
    #[command(flatten)]
    pub name: NameFlag,
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct Status {
    #[command(flatten)]
    pub name: NameFlag,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Load {
    /// Images to copy (default: the compose image variables when set, else the service images at this
    /// checkout's build tag and the offline base images — those the host engine has).
    pub images: Vec<String>,
    #[command(flatten)]
    pub name: NameFlag,
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct NodeFlag {
    /// The node's index (1 is the manager).
    #[arg(long)]
    pub node: usize,
    #[command(flatten)]
    pub name: NameFlag,
    #[arg(long)]
    pub dry_run: bool,
}

/// The recorded lab, or an error saying how to make one.
fn existing(name: &str) -> anyhow::Result<LabState> {
    spec::check_name(name)?;
    let path = spec::lab_dir(name).join("lab.json");
    LabState::load(&path)?.with_context(|| {
        format!(
            "no lab {name} ({} is missing): `cargo xtask lab up --name {name}`",
            path.display()
        )
    })
}

fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "the lab makes network namespaces, links and iptables rules and runs dockerd: run it as root"
        );
    }
    Ok(())
}

impl Lab {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Lab::Up(up) => {
                let spec = LabSpec::new(&up.name.name, up.nodes)?;
                if up.dry_run {
                    for line in up::plan(&spec) {
                        eprintln!("$ {line}");
                    }
                    return Ok(());
                }
                require_root()?;
                let state = up::up(&spec)?;
                if up.json {
                    status::print(&status::report(&state)?, true)?;
                }
                Ok(())
            }
            Lab::Down(down) => {
                spec::check_name(&down.name.name)?;
                let path = spec::lab_dir(&down.name.name).join("lab.json");
                match LabState::load(&path)? {
                    Some(state) => {
                        if !down.dry_run {
                            require_root()?;
                        }
                        down::down(&state, down.dry_run)
                    }
                    None => {
                        eprintln!(
                            "no lab {} ({} is missing): nothing to remove",
                            down.name.name,
                            path.display()
                        );
                        Ok(())
                    }
                }
            }
            Lab::Status(status) => {
                let state = existing(&status.name.name)?;
                status::print(&status::report(&state)?, status.json)
            }
            Lab::Load(load) => {
                let state = existing(&load.name.name)?;
                load::load(&state, &load.images, load.dry_run)
            }
            Lab::Cut(flag) => fault::cut(&existing(&flag.name.name)?, flag.node, flag.dry_run),
            Lab::Reconnect(flag) => {
                fault::reconnect(&existing(&flag.name.name)?, flag.node, flag.dry_run)
            }
            Lab::KillEngine(flag) => {
                fault::kill_engine(&existing(&flag.name.name)?, flag.node, flag.dry_run)
            }
            Lab::StartEngine(flag) => {
                fault::start_engine(&mut existing(&flag.name.name)?, flag.node, flag.dry_run)
            }
            Lab::Env(flag) => {
                spec::check_name(&flag.name)?;
                let node = LabSpec::new(&flag.name, 1)?.node(1);
                println!("export DOCKER_HOST={}", node.docker_host());
                Ok(())
            }
        }
    }
}
