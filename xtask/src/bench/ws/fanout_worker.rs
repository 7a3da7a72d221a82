//! The fan-out's load generators as child processes: 5,000 rooms are 25,000 client sockets, more than one
//! process may open where the hard RLIMIT_NOFILE is 20,000. The rooms are shared out over enough
//! `cargo xtask bench ws-fanout-worker` processes (this binary), each seating its share; once all are seated
//! they are told to go together, each feeding its share of the rate, and their samples are merged.
//!
//! A worker speaks on stdout: `seated` once its rooms are ready, then one JSON line of [`Samples`]. It
//! starts measuring when a line arrives on stdin, and closes its connections and exits at the next line
//! (or end of input), sent once every worker has reported: no worker's disconnects fall inside another's
//! measurement.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use avalon_runtime::auth::issue_access_token;
use avalon_runtime::config::Secret;
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::JWT_SECRET;
use super::fanout::{self, PLAYERS, Plan, Samples};
use super::processes::raise_open_files;

const SEATED: &str = "seated";
/// Seating thousands of rooms is bounded inside the worker (300 s); this covers its start-up too.
const SEATING_LIMIT: Duration = Duration::from_secs(360);
/// The measurement plus the time to count late deliveries as lost.
const RESULT_SLACK: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct WsFanoutWorker {
    /// The plan as JSON (written by `bench ws`).
    #[arg(long)]
    plan: String,
    /// Play real games against avalon-ws (otherwise broadcast through the python-socketio baseline).
    #[arg(long)]
    avalon: bool,
}

impl WsFanoutWorker {
    pub fn run(self) -> anyhow::Result<()> {
        let plan: Plan =
            serde_json::from_str(&self.plan).context("--plan is not a fan-out plan")?;
        raise_open_files(u64::try_from(plan.rooms * PLAYERS).unwrap_or(u64::MAX) + 1_000)?;
        let secret = Secret::new(JWT_SECRET);
        let tokens: fanout::Tokens = Arc::new(move |room, player| {
            let user = format!("bench-r{room}-p{player}");
            issue_access_token(&secret, &user, &user, "bench", Duration::from_secs(3600))
                .map(|(token, _)| token)
                .unwrap_or_default()
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let (samples, seated) =
            runtime.block_on(fanout::run(&plan, self.avalon, tokens, async {
                println!("{SEATED}");
                // tokio's stdin is not built here (no io-std); one blocking read is all it takes.
                tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()))
                    .await?
                    .context("no go from bench ws")?;
                Ok(())
            }))?;
        println!("{}", serde_json::to_string(&samples)?);
        // Any answer, end of input included, means every worker is done.
        let _ = std::io::stdin().read_line(&mut String::new());
        drop(seated);
        Ok(())
    }
}

/// Runs `plan` in as many worker processes (`xtask`, the release build of this binary) as
/// `sockets_per_process` requires, and merges their samples.
pub async fn run(
    plan: &Plan,
    avalon: bool,
    sockets_per_process: usize,
    xtask: &Path,
) -> anyhow::Result<Samples> {
    let rooms_per_worker = (sockets_per_process / PLAYERS).max(1);
    let workers = plan.rooms.div_ceil(rooms_per_worker).max(1);
    let mut running = Vec::with_capacity(workers);
    for index in 0..workers {
        let first = plan.first_room + index * plan.rooms / workers;
        let end = plan.first_room + (index + 1) * plan.rooms / workers;
        let share = Plan {
            first_room: first,
            rooms: end - first,
            // Each worker feeds its rooms' share of the rate.
            rate: u32::try_from(u64::from(plan.rate) * (end - first) as u64 / plan.rooms as u64)
                .unwrap_or(plan.rate)
                .max(1),
            ..plan.clone()
        };
        let mut command = Command::new(xtask);
        command
            .args(["bench", "ws-fanout-worker", "--plan"])
            .arg(serde_json::to_string(&share)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if avalon {
            command.arg("--avalon");
        }
        let mut child = command.spawn().context("cannot start a fan-out worker")?;
        let stdout = child.stdout.take().context("worker without stdout")?;
        running.push((child, BufReader::new(stdout).lines()));
    }
    for (child, lines) in &mut running {
        let line = next_line(child, lines, SEATING_LIMIT).await?;
        if line != SEATED {
            bail!("a fan-out worker said {line:?} instead of {SEATED:?}");
        }
    }
    for (child, _) in &mut running {
        let stdin = child.stdin.as_mut().context("worker without stdin")?;
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
    }
    let mut samples = Samples::default();
    for (child, lines) in &mut running {
        let line = next_line(child, lines, plan.measure + RESULT_SLACK).await?;
        samples.merge(serde_json::from_str(&line).context("unreadable worker samples")?);
    }
    for (child, _) in &mut running {
        // Closing stdin is the `done`: the worker drops its connections and exits.
        drop(child.stdin.take());
    }
    for (child, _) in &mut running {
        let status = child.wait().await?;
        if !status.success() {
            bail!("a fan-out worker exited with {status}");
        }
    }
    Ok(samples)
}

async fn next_line(
    child: &mut Child,
    lines: &mut Lines<BufReader<ChildStdout>>,
    limit: Duration,
) -> anyhow::Result<String> {
    match tokio::time::timeout(limit, lines.next_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        Ok(Ok(None)) => {
            let status = child.wait().await?;
            bail!("a fan-out worker exited ({status}) before answering; its errors are above")
        }
        Ok(Err(err)) => Err(err).context("cannot read a fan-out worker"),
        Err(_) => bail!(
            "a fan-out worker did not answer within {}s",
            limit.as_secs()
        ),
    }
}
