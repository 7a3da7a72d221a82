//! `cargo xtask bench ws`: connections one avalon-ws instance holds within a 500 MiB RSS budget, and the
//! latency of a game event fanned out to the players of a room split over two instances sharing one Redis —
//! each beside a python-socketio server (aiohttp + AsyncRedisManager) doing the same, measured in the same
//! run on the same machine with the same load-generating client.
//!
//! Everything runs on loopback on this machine: the servers, redis-server and the load generator share its
//! cores, so the figures are a floor for a real deployment, not a ceiling. Every loop is bounded in count and
//! time. Targets (issue 3): ≥ 10,000 connections per instance; p99 ≤ 20 ms with 1,000 live rooms.

mod client;
mod connections;
mod fanout;
mod processes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use avalon_runtime::auth::issue_access_token;
use avalon_runtime::config::Secret;
use clap::Args;
use serde::Serialize;
use xshell::{Shell, cmd};

use self::connections::Held;
use self::fanout::{PLAYERS, Plan, Samples};

#[derive(Args, Debug)]
pub struct WsBench {
    /// Connections to open against one instance of each server.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    connections: usize,
    /// Live rooms (of 5 players, split over two instances) during the fan-out measurement.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    rooms: usize,
    /// Game events per second across all rooms during the fan-out measurement.
    #[arg(long, value_name = "EVENTS_S", default_value_t = 200)]
    rate: u32,
    /// Seconds of each fan-out measurement.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    seconds: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Use the release avalon-ws already in the target directory instead of running `cargo build --release`.
    #[arg(long)]
    no_build: bool,
}

const RSS_BUDGET_MIB: f64 = 500.0;
const TARGET_CONNECTIONS: usize = 10_000;
const TARGET_P99_MS: f64 = 20.0;
const OPEN_TIME_BUDGET: Duration = Duration::from_secs(120);
const JWT_SECRET: &str = "bench-only-jwt-secret-0123456789abcdefghij";

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    connections: ConnectionsReport,
    fanout: FanoutReport,
    targets: Targets,
    notes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    loopback_only: bool,
}

#[derive(Debug, Serialize)]
struct ConnectionsReport {
    rss_budget_mib: f64,
    avalon_ws: Held,
    python_socketio: Held,
    /// avalon-ws ÷ python-socketio, connections projected within the budget.
    ratio_projected: f64,
    /// python-socketio ÷ avalon-ws, memory per connection.
    ratio_memory_per_connection: f64,
}

#[derive(Debug, Serialize)]
struct FanoutReport {
    rooms: usize,
    players_per_room: usize,
    instances: usize,
    rate_per_second: u32,
    seconds: u64,
    avalon_ws: Latency,
    python_socketio: Latency,
    /// python-socketio ÷ avalon-ws (above 1: avalon-ws is faster).
    ratio_p50: f64,
    ratio_p99: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    events: u64,
    /// Events per second actually achieved (below the requested rate if the rooms could not keep up).
    achieved_rate: f64,
    deliveries: usize,
    lost: u64,
    refused: u64,
    mean_payload_bytes: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct Targets {
    connections_per_instance_10000: bool,
    p99_at_most_20ms: bool,
}

impl WsBench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.rooms == 0 || self.connections == 0 || self.rate == 0 || self.seconds == 0 {
            bail!("--connections, --rooms, --rate and --seconds must all be at least 1");
        }
        require_tools()?;
        if !self.no_build {
            cmd!(sh, "cargo build --release --package avalon-ws").run()?;
        }
        let binary = release_binary(sh, "avalon-ws");
        if !binary.is_file() {
            bail!("{} is missing: run without --no-build", binary.display());
        }
        let script = sh
            .current_dir()
            .join("services/websocket/bench/python_baseline_server.py");
        let dir = tempfile::tempdir()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let report = runtime.block_on(self.measure(&binary, &script, dir.path()))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        let targets = &report.targets;
        if !(targets.connections_per_instance_10000 && targets.p99_at_most_20ms) {
            bail!(
                "bench ws missed a target (>= {TARGET_CONNECTIONS} connections within {RSS_BUDGET_MIB} MiB: {}; p99 <= {TARGET_P99_MS} ms with nothing lost: {})",
                targets.connections_per_instance_10000,
                targets.p99_at_most_20ms
            );
        }
        Ok(())
    }

    async fn measure(&self, binary: &Path, script: &Path, dir: &Path) -> anyhow::Result<Report> {
        let redis = processes::redis(dir)?;
        let env = processes::WsEnv {
            binary,
            redis_port: redis.port,
            jwt_secret: JWT_SECRET,
            dir,
        };
        let ours = [
            processes::avalon_ws("avalon-ws-a", &env)?,
            processes::avalon_ws("avalon-ws-b", &env)?,
        ];
        let theirs = [
            processes::python_baseline("python-socketio-a", script, redis.port, dir)?,
            processes::python_baseline("python-socketio-b", script, redis.port, dir)?,
        ];
        let secret = Secret::new(JWT_SECRET);
        let token = |user: &str| -> anyhow::Result<String> {
            Ok(issue_access_token(&secret, user, user, "bench", Duration::from_secs(3600))?.0)
        };

        eprintln!(
            "bench ws: holding up to {} connections on one avalon-ws instance",
            self.connections
        );
        let avalon_held = connections::fill(
            &ours[0],
            self.connections,
            OPEN_TIME_BUDGET,
            RSS_BUDGET_MIB,
            &token("holder")?,
        )
        .await?;
        eprintln!(
            "bench ws: holding up to {} connections on one python-socketio instance",
            self.connections
        );
        let python_held = connections::fill(
            &theirs[0],
            self.connections,
            OPEN_TIME_BUDGET,
            RSS_BUDGET_MIB,
            &token("holder")?,
        )
        .await?;

        let tokens: Arc<dyn Fn(usize, usize) -> String + Send + Sync> = {
            let secret = Secret::new(JWT_SECRET);
            Arc::new(move |room, player| {
                let user = format!("bench-r{room}-p{player}");
                issue_access_token(&secret, &user, &user, "bench", Duration::from_secs(3600))
                    .map(|(token, _)| token)
                    .unwrap_or_default()
            })
        };
        let mut plan = Plan {
            ports: [ours[0].port, ours[1].port],
            rooms: self.rooms,
            rate: self.rate,
            measure: Duration::from_secs(self.seconds),
            padding: 0,
        };
        eprintln!(
            "bench ws: fan-out on avalon-ws, {} rooms, {} events/s for {}s",
            self.rooms, self.rate, self.seconds
        );
        let avalon_samples = fanout::run(&plan, true, Arc::clone(&tokens)).await?;
        // The baseline broadcasts a payload as large as the views avalon-ws sent.
        plan.padding =
            usize::try_from(avalon_samples.payload_bytes / avalon_samples.payloads.max(1))
                .unwrap_or(0);
        plan.ports = [theirs[0].port, theirs[1].port];
        eprintln!(
            "bench ws: fan-out on python-socketio, same rooms and rate, {} byte payloads",
            plan.padding
        );
        let python_samples = fanout::run(&plan, false, tokens).await?;

        let avalon = latency(avalon_samples, self.seconds);
        let python = latency(python_samples, self.seconds);
        let targets = Targets {
            connections_per_instance_10000: avalon_held.held >= TARGET_CONNECTIONS
                && avalon_held.rss_held_mib <= RSS_BUDGET_MIB,
            p99_at_most_20ms: avalon.p99_ms <= TARGET_P99_MS && avalon.lost == 0,
        };
        Ok(Report {
            machine: Machine {
                cores: std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(1),
                loopback_only: true,
            },
            connections: ConnectionsReport {
                rss_budget_mib: RSS_BUDGET_MIB,
                ratio_projected: ratio(
                    avalon_held.projected_within_budget as f64,
                    python_held.projected_within_budget as f64,
                ),
                ratio_memory_per_connection: ratio(
                    python_held.kib_per_connection,
                    avalon_held.kib_per_connection,
                ),
                avalon_ws: avalon_held,
                python_socketio: python_held,
            },
            fanout: FanoutReport {
                rooms: self.rooms,
                players_per_room: PLAYERS,
                instances: 2,
                rate_per_second: self.rate,
                seconds: self.seconds,
                ratio_p50: ratio(python.p50_ms, avalon.p50_ms),
                ratio_p99: ratio(python.p99_ms, avalon.p99_ms),
                avalon_ws: avalon,
                python_socketio: python,
            },
            targets,
            notes: vec![
                "servers, redis-server and the load generator share this machine's cores over loopback",
                "avalon-ws events are real game moves (JWT-authenticated sockets, Redis CAS write, per-player views); \
                 the baseline only re-broadcasts a payload of the same size through its Redis manager",
                "connection memory is the RSS growth of the server process while holding idle, authenticated sockets",
            ],
        })
    }
}

fn latency(mut samples: Samples, seconds: u64) -> Latency {
    samples.latencies_ms.sort_by(f64::total_cmp);
    let pick = |quantile: f64| -> f64 {
        if samples.latencies_ms.is_empty() {
            return f64::NAN;
        }
        let index = ((samples.latencies_ms.len() as f64 - 1.0) * quantile).round() as usize;
        samples.latencies_ms[index]
    };
    Latency {
        events: samples.events,
        achieved_rate: round2(samples.events as f64 / seconds.max(1) as f64),
        deliveries: samples.latencies_ms.len(),
        lost: samples.lost,
        refused: samples.refused,
        mean_payload_bytes: samples.payload_bytes / samples.payloads.max(1),
        p50_ms: round2(pick(0.50)),
        p99_ms: round2(pick(0.99)),
        max_ms: round2(samples.latencies_ms.last().copied().unwrap_or(f64::NAN)),
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        round2(numerator / denominator)
    } else {
        f64::NAN
    }
}

fn require_tools() -> anyhow::Result<()> {
    let missing = |tool: &str| which(tool).is_none();
    if missing("redis-server") || missing("python3") {
        bail!("bench ws needs redis-server and python3: run `bash scripts/ci/install-tools.sh`");
    }
    let importable = std::process::Command::new("python3")
        .args(["-c", "import socketio, aiohttp, redis"])
        .status()
        .context("cannot run python3")?
        .success();
    if !importable {
        bail!(
            "bench ws needs python-socketio, aiohttp and redis for python3: run `bash scripts/ci/install-tools.sh`"
        );
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
}

fn release_binary(sh: &Shell, name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| sh.current_dir().join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        sh.current_dir().join(target)
    };
    target.join("release").join(name)
}

fn print_report(report: &Report) {
    let held = &report.connections;
    println!("\nbench ws — {} cores, loopback only", report.machine.cores);
    println!(
        "connections on one instance (RSS budget {:.0} MiB):",
        held.rss_budget_mib
    );
    for (name, side) in [
        ("avalon-ws", &held.avalon_ws),
        ("python-socketio", &held.python_socketio),
    ] {
        println!(
            "  {name:<16} held {:>6}/{:<6} in {:>5.1}s  RSS {:>6.1} → {:>6.1} MiB  {:>5.1} KiB/conn  ≈{} within budget",
            side.held,
            side.attempted,
            side.seconds_to_open,
            side.rss_idle_mib,
            side.rss_held_mib,
            side.kib_per_connection,
            side.projected_within_budget
        );
    }
    println!(
        "  ratio (connections within budget, avalon-ws ÷ python): {:.2}",
        held.ratio_projected
    );
    let fanout = &report.fanout;
    println!(
        "fan-out: {} rooms × {} players over {} instances, {} events/s for {}s:",
        fanout.rooms,
        fanout.players_per_room,
        fanout.instances,
        fanout.rate_per_second,
        fanout.seconds
    );
    for (name, side) in [
        ("avalon-ws", &fanout.avalon_ws),
        ("python-socketio", &fanout.python_socketio),
    ] {
        println!(
            "  {name:<16} {:>6} events ({:.0}/s) {:>7} deliveries  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  lost {}  ({} B payloads)",
            side.events,
            side.achieved_rate,
            side.deliveries,
            side.p50_ms,
            side.p99_ms,
            side.max_ms,
            side.lost,
            side.mean_payload_bytes
        );
    }
    println!(
        "  ratio (python ÷ avalon-ws): p50 {:.2}, p99 {:.2}",
        fanout.ratio_p50, fanout.ratio_p99
    );
    println!(
        "targets: ≥{TARGET_CONNECTIONS} connections within {RSS_BUDGET_MIB:.0} MiB: {}; p99 ≤ {TARGET_P99_MS} ms: {}",
        pass(report.targets.connections_per_instance_10000),
        pass(report.targets.p99_at_most_20ms)
    );
    for note in &report.notes {
        println!("note: {note}");
    }
}

fn pass(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
