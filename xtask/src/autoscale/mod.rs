//! `cargo xtask autoscale`: replicas decided from CPU, memory and connections by one policy engine with
//! Kubernetes HPA v2 semantics (docs/scaling.md).
//!
//! - [`policy`]: the engine — PURE, shared by the live autoscaler, the simulator and the tests;
//! - [`policy_file`]: `deploy/scaling.toml`, every key required and validated;
//! - [`trace`] + [`simulate`]: `autoscale simulate` replays a CSV demand trace;
//! - [`hpa_manifest`]: the Kubernetes HorizontalPodAutoscalers generated from the same policy;
//! - [`live`]: `autoscale --once | --watch` on the Compose stack.

pub mod hpa_manifest;
mod live;
pub mod policy;
pub mod policy_file;
pub mod simulate;
pub mod trace;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::deploy::TargetArgs;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Autoscale {
    #[command(subcommand)]
    pub command: Option<AutoscaleCommand>,
    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Subcommand, Debug)]
pub enum AutoscaleCommand {
    /// Replay a demand trace through the policy and print every change of replicas.
    Simulate(simulate::Simulate),
}

/// The live autoscaler's flags: evaluate the running stack once, or every `sync_period`.
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// Evaluate once, apply the decisions, exit.
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Evaluate every `sync_period` until stopped (the systemd unit runs this).
    #[arg(long)]
    pub watch: bool,
    /// Decide and print; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Decisions as JSON, one object per line.
    #[arg(long)]
    pub json: bool,
    /// The scaling policy.
    #[arg(long, value_name = "FILE", default_value = policy_file::DEFAULT_POLICY)]
    pub policy: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
}

impl Autoscale {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Some(AutoscaleCommand::Simulate(cmd)) => cmd.run(),
            None => live::run(self.live),
        }
    }
}
