//! `cargo xtask bench …`: performance targets, each measured beside a baseline run on the same
//! input in the same run, printed as a ratio with the absolute figures beside it.

mod api;
mod backup;
mod ws;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Bench {
    /// The API: an authenticated read, direct and through nginx, saturated and at 2,000 req/s (oha).
    Api(api::ApiBench),
    /// `backup create`'s host pipeline (sha256, write, gunzip + parse + CRC) against `gzip -6 | sha256sum`.
    Backup(backup::BackupBench),
    /// The game server: connections per instance within 500 MiB, and room fan-out latency over two
    /// instances, each beside a python-socketio server doing the same.
    Ws(ws::WsBench),
    /// The bare-WebSocket floor server `bench ws` starts beside the game server (not run by hand).
    #[command(hide = true)]
    WsFloor(ws::WsFloor),
    /// A fan-out load generator `bench ws` starts for its share of the rooms (not run by hand).
    #[command(hide = true)]
    WsFanoutWorker(ws::WsFanoutWorker),
}

impl Bench {
    pub fn run(self, sh: &xshell::Shell) -> anyhow::Result<()> {
        match self {
            Self::Api(cmd) => cmd.run(sh),
            Self::Backup(cmd) => cmd.run(sh),
            Self::Ws(cmd) => cmd.run(sh),
            Self::WsFloor(cmd) => cmd.run(),
            Self::WsFanoutWorker(cmd) => cmd.run(),
        }
    }
}
