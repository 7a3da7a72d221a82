//! What `bench ws` reports (the JSON of `--json`), the targets judged from it, and its table for people.

use serde::Serialize;

use super::connections::{Series, Step};
use super::{
    RSS_BUDGET_MIB, TARGET_CONNECTIONS, TARGET_FLOOR_RATIO, TARGET_KIB_PER_CONNECTION,
    TARGET_P99_MS, ratio,
};

pub const NOTES: &[&str] = &[
    "servers, redis-server and the load generator share this machine's cores over loopback",
    "connection memory is the RSS growth of the server process while holding idle, JWT-authenticated sockets \
     (python-socketio: token required, not verified; floor: none)",
    "floor: a bare tokio-tungstenite server answering the same Engine.IO open, Socket.IO CONNECT and pings, \
     with avalon-ws's read buffer and message limit",
    "avalon-ws fan-out events are real game moves (Redis CAS write, per-player views); the baseline only \
     re-broadcasts a payload of the same size through its Redis manager",
];

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub connections: ConnectionsReport,
    /// Null with `--skip-fanout`.
    pub fanout: Option<FanoutReport>,
    pub targets: Targets,
    pub notes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub loopback_only: bool,
    /// RLIMIT_NOFILE of the load generator and the servers it started.
    pub open_files_limit: u64,
}

/// Three columns per connection count: ours, python-socketio and the floor.
#[derive(Debug, Serialize)]
pub struct ConnectionsReport {
    pub rss_budget_mib: f64,
    pub rss_idle_mib: Columns<f64>,
    pub counts: Vec<Count>,
}

#[derive(Debug, Serialize)]
pub struct Columns<T> {
    pub avalon_ws: T,
    pub python_socketio: T,
    pub floor: T,
}

#[derive(Debug, Serialize)]
pub struct Count {
    pub connections: usize,
    pub avalon_ws: Step,
    pub python_socketio: Step,
    pub floor: Step,
    /// KiB per connection, avalon-ws ÷ floor (null when either did not hold this count).
    pub ratio_ours_to_floor: f64,
    /// KiB per connection, avalon-ws ÷ python-socketio (below 1: avalon-ws is leaner).
    pub ratio_ours_to_python: f64,
}

impl ConnectionsReport {
    pub fn new(avalon: Series, python: Series, floor: Series) -> ConnectionsReport {
        let counts = avalon
            .steps
            .iter()
            .zip(&python.steps)
            .zip(&floor.steps)
            .map(|((ours, theirs), bare)| Count {
                connections: ours.attempted,
                ratio_ours_to_floor: per_connection_ratio(ours, bare),
                ratio_ours_to_python: per_connection_ratio(ours, theirs),
                avalon_ws: ours.clone(),
                python_socketio: theirs.clone(),
                floor: bare.clone(),
            })
            .collect();
        ConnectionsReport {
            rss_budget_mib: RSS_BUDGET_MIB,
            rss_idle_mib: Columns {
                avalon_ws: avalon.rss_idle_mib,
                python_socketio: python.rss_idle_mib,
                floor: floor.rss_idle_mib,
            },
            counts,
        }
    }
}

/// Compared only where both held every connection of the count: a partial fill is another load.
fn per_connection_ratio(ours: &Step, other: &Step) -> f64 {
    if ours.held == ours.attempted && other.held == other.attempted {
        ratio(ours.kib_per_connection, other.kib_per_connection)
    } else {
        f64::NAN
    }
}

#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub rooms: usize,
    pub players_per_room: usize,
    pub instances: usize,
    pub rate_per_second: u32,
    pub seconds: u64,
    pub avalon_ws: Latency,
    /// Null when the baseline could not run (`python_socketio_error` says why).
    pub python_socketio: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python_socketio_error: Option<String>,
    /// python-socketio ÷ avalon-ws (above 1: avalon-ws is faster).
    pub ratio_p50: f64,
    pub ratio_p99: f64,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub events: u64,
    /// Events per second actually achieved (below the requested rate if the rooms could not keep up).
    pub achieved_rate: f64,
    pub deliveries: usize,
    pub lost: u64,
    pub refused: u64,
    pub mean_payload_bytes: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Each target as judged from this run; null where this run did not measure it (fewer connections asked
/// for, `--skip-fanout`).
#[derive(Debug, Serialize)]
pub struct Targets {
    /// avalon-ws at its largest count held: ≤ 12 KiB per connection.
    pub kib_per_connection_at_most_12: Option<bool>,
    /// avalon-ws held 40,000 connections within 500 MiB RSS.
    pub connections_40000_within_500_mib: Option<bool>,
    /// avalon-ws ÷ floor ≤ 2 at every count both held.
    pub ours_to_floor_at_most_2: Option<bool>,
    /// Fan-out p99 ≤ 5 ms with no delivery lost.
    pub fanout_p99_at_most_5_ms_none_lost: Option<bool>,
}

impl Targets {
    pub fn judge(connections: &ConnectionsReport, fanout: Option<&FanoutReport>) -> Targets {
        let held_all = |count: &&Count| count.avalon_ws.held == count.connections;
        let largest = connections.counts.iter().rev().find(held_all);
        // A count this machine could not attempt (open-file limit) leaves the target unmeasured, not missed.
        let at_target = connections.counts.iter().find(|count| {
            count.connections >= TARGET_CONNECTIONS && count.avalon_ws.skipped.is_none()
        });
        let ratios: Vec<f64> = connections
            .counts
            .iter()
            .map(|count| count.ratio_ours_to_floor)
            .filter(|ratio| ratio.is_finite())
            .collect();
        Targets {
            kib_per_connection_at_most_12: Some(largest.is_some_and(|count| {
                count.avalon_ws.kib_per_connection <= TARGET_KIB_PER_CONNECTION
            })),
            connections_40000_within_500_mib: at_target.map(|count| {
                count.avalon_ws.held >= TARGET_CONNECTIONS
                    && count.avalon_ws.rss_mib <= RSS_BUDGET_MIB
            }),
            ours_to_floor_at_most_2: (!ratios.is_empty())
                .then(|| ratios.iter().all(|ratio| *ratio <= TARGET_FLOOR_RATIO)),
            fanout_p99_at_most_5_ms_none_lost: fanout.map(|fanout| {
                fanout.avalon_ws.p99_ms <= TARGET_P99_MS && fanout.avalon_ws.lost == 0
            }),
        }
    }

    /// The targets this run measured and missed, for the error message.
    pub fn missed(&self) -> Vec<&'static str> {
        [
            (
                self.kib_per_connection_at_most_12,
                "≤ 12 KiB per idle connection",
            ),
            (
                self.connections_40000_within_500_mib,
                "40,000 connections within 500 MiB",
            ),
            (self.ours_to_floor_at_most_2, "avalon-ws ÷ floor ≤ 2"),
            (
                self.fanout_p99_at_most_5_ms_none_lost,
                "fan-out p99 ≤ 5 ms, nothing lost",
            ),
        ]
        .into_iter()
        .filter(|(met, _)| *met == Some(false))
        .map(|(_, name)| name)
        .collect()
    }
}

pub fn print(report: &Report) {
    let held = &report.connections;
    println!(
        "\nbench ws — {} cores, loopback only, RLIMIT_NOFILE {}",
        report.machine.cores, report.machine.open_files_limit
    );
    println!(
        "idle connections on one instance (RSS before: avalon-ws {:.1}, python-socketio {:.1}, floor {:.1} MiB):",
        held.rss_idle_mib.avalon_ws, held.rss_idle_mib.python_socketio, held.rss_idle_mib.floor
    );
    println!(
        "  {:>8}  {:>26}  {:>26}  {:>26}  {:>7}  {:>8}",
        "count", "avalon-ws", "python-socketio", "floor", "÷floor", "÷python"
    );
    for count in &held.counts {
        println!(
            "  {:>8}  {}  {}  {}  {:>7}  {:>8}",
            count.connections,
            cell(&count.avalon_ws),
            cell(&count.python_socketio),
            cell(&count.floor),
            shown(count.ratio_ours_to_floor),
            shown(count.ratio_ours_to_python)
        );
        for (name, step) in [
            ("avalon-ws", &count.avalon_ws),
            ("python-socketio", &count.python_socketio),
            ("floor", &count.floor),
        ] {
            if let Some(reason) = &step.skipped {
                println!("            {name} not measured at this count: {reason}");
            }
        }
    }
    if let Some(fanout) = &report.fanout {
        print_fanout(fanout);
    }
    let targets = &report.targets;
    println!(
        "targets: ≤ {TARGET_KIB_PER_CONNECTION} KiB/conn: {}; {TARGET_CONNECTIONS} within {RSS_BUDGET_MIB:.0} MiB: {}; \
         ÷floor ≤ {TARGET_FLOOR_RATIO}: {}; fan-out p99 ≤ {TARGET_P99_MS} ms, 0 lost: {}",
        pass(targets.kib_per_connection_at_most_12),
        pass(targets.connections_40000_within_500_mib),
        pass(targets.ours_to_floor_at_most_2),
        pass(targets.fanout_p99_at_most_5_ms_none_lost)
    );
    for note in &report.notes {
        println!("note: {note}");
    }
}

fn print_fanout(fanout: &FanoutReport) {
    println!(
        "fan-out: {} rooms × {} players over {} instances, {} events/s for {}s:",
        fanout.rooms,
        fanout.players_per_room,
        fanout.instances,
        fanout.rate_per_second,
        fanout.seconds
    );
    for (name, side) in [
        ("avalon-ws", Some(&fanout.avalon_ws)),
        ("python-socketio", fanout.python_socketio.as_ref()),
    ] {
        let Some(side) = side else {
            let reason = fanout
                .python_socketio_error
                .as_deref()
                .unwrap_or("no samples");
            println!("  {name:<16} not measured: {reason}");
            continue;
        };
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
}

/// `held/attempted  RSS MiB  KiB/conn`, or why the count was not measured.
fn cell(step: &Step) -> String {
    if step.skipped.is_some() {
        return format!("{:>26}", "not measured");
    }
    format!(
        "{:>6}/{:<6} {:>6.1} MiB {:>5.1} K",
        step.held, step.attempted, step.rss_mib, step.kib_per_connection
    )
}

fn shown(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}")
    } else {
        "—".to_owned()
    }
}

fn pass(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(attempted: usize, held: usize, kib: f64, skipped: bool) -> Step {
        Step {
            attempted,
            held,
            failed: attempted - held,
            seconds_to_open: 1.0,
            rss_mib: 7.0 + kib * held as f64 / 1024.0,
            kib_per_connection: kib,
            skipped: skipped.then(|| "RLIMIT_NOFILE".to_owned()),
        }
    }

    fn series(steps: Vec<Step>) -> Series {
        Series {
            rss_idle_mib: 7.0,
            steps,
        }
    }

    #[test]
    fn ratios_and_targets_come_from_the_counts_each_server_held() {
        let report = ConnectionsReport::new(
            series(vec![
                step(10_000, 10_000, 20.0, false),
                step(40_000, 0, 0.0, true),
            ]),
            series(vec![
                step(10_000, 9_000, 30.0, false),
                step(40_000, 0, 0.0, true),
            ]),
            series(vec![
                step(10_000, 10_000, 5.0, false),
                step(40_000, 0, 0.0, true),
            ]),
        );
        assert_eq!(report.counts[0].ratio_ours_to_floor, 4.0);
        assert!(
            report.counts[0].ratio_ours_to_python.is_nan(),
            "python held only part of the count"
        );
        let targets = Targets::judge(&report, None);
        assert_eq!(targets.kib_per_connection_at_most_12, Some(false));
        assert_eq!(targets.ours_to_floor_at_most_2, Some(false));
        assert_eq!(
            targets.connections_40000_within_500_mib, None,
            "a count the machine could not attempt is not a miss"
        );
        assert_eq!(targets.fanout_p99_at_most_5_ms_none_lost, None);
        assert_eq!(
            targets.missed(),
            ["≤ 12 KiB per idle connection", "avalon-ws ÷ floor ≤ 2"]
        );
    }
}
