//! `cargo xtask host init|check`: prepare a fresh Debian/Ubuntu Docker host for the prod overlay, and report
//! on one. See "First install on a new host" in docs/deployment.md.

pub(crate) mod certs;
mod checks;
mod env_file;
mod init;
mod layout;
mod plan;
mod secrets;
mod system;
mod units;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Subcommand)]
pub enum Host {
    /// Prepare this host (or the tree at --root): directories, secrets, env file, certificates, sysctls,
    /// limits, systemd units. Idempotent; never overwrites a secret, certificate or value you set. Exits
    /// non-zero while anything is left for you to do (each item named).
    Init(Init),
    /// Report every item of a prepared host (ok / missing / differs / placeholder / invalid); changes nothing.
    Check(Check),
}

/// Which environment the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostEnv {
    /// APP_ENV=production; real certificates supplied by the operator.
    Prod,
    /// APP_ENV=staging; a self-signed certificate is made.
    Staging,
}

impl HostEnv {
    pub fn name(self) -> &'static str {
        match self {
            HostEnv::Prod => "prod",
            HostEnv::Staging => "staging",
        }
    }

    pub fn app_env(self) -> &'static str {
        match self {
            HostEnv::Prod => "production",
            HostEnv::Staging => "staging",
        }
    }
}

#[derive(Args, Clone)]
pub struct HostArgs {
    /// The host's root file system; another directory prepares (or checks) a tree there instead, unprivileged,
    /// without touching the running system (no sysctl, systemctl). Paths inside files stay host paths.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    #[arg(long, value_enum, default_value_t = HostEnv::Prod)]
    pub env: HostEnv,
    /// Host name on the certificate: the self-signed one made for staging, the one expected for prod.
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct Init {
    #[command(flatten)]
    pub host: HostArgs,
    /// Fill in a value of the env file (repeatable): a variable of docs/configuration.md or a deployment one
    /// (AVALON_*). Only empty, commented-out or placeholder values are set; a value you chose is never changed.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// File holding the WeChat AppSecret, copied to secrets/wechat_secret (never over an existing one).
    #[arg(long, value_name = "FILE")]
    pub wechat_secret_file: Option<PathBuf>,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct Check {
    #[command(flatten)]
    pub host: HostArgs,
}

impl Host {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Host::Init(cmd) => init::run(cmd),
            Host::Check(cmd) => checks::run(&cmd.host),
        }
    }
}
