//! The game-server half of a judgment: a slot's Socket.IO figures from the probe's sessions and from the
//! game server's own /metrics, judged beside the edge log's WebSocket handshakes.
//!
//! Handshake failures are judged on each source that has enough sessions (or already enough failures to
//! break the threshold whatever the missing sessions would do): the edge log (upgrades answered 5xx), the
//! probe (any step of its sessions failing) and the game server (handshakes it refused for its own
//! reasons). A slot with fewer Socket.IO sessions than `min_ws_sessions` in every source is inconclusive.

use std::collections::BTreeMap;

use serde::Serialize;

use super::analysis::SlotStats;
use super::config::Thresholds;
use super::game_metrics::ServerSignals;
use super::probe::WsProbeCounts;

/// A slot's Socket.IO figures beyond the edge log's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WsStats {
    /// Sessions the probe opened on the slot, and those that failed at any step.
    pub probe_sessions: u64,
    pub probe_failed: u64,
    /// Failed probe sessions by step and reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub probe_failures: BTreeMap<String, u64>,
    /// 95th percentile of the passed sessions' connect time, ms.
    pub connect_p95_ms: Option<f64>,
    /// The game server's own counts over the window (`None`: not scraped, e.g. `canary status`).
    pub server: Option<ServerSignals>,
}

impl WsStats {
    pub fn from_probe(probe: &WsProbeCounts) -> Self {
        let mut connect = probe.connect_ms.clone();
        Self {
            probe_sessions: probe.sessions,
            probe_failed: probe.failed,
            probe_failures: probe.failures.clone(),
            connect_p95_ms: super::analysis::percentile(&mut connect, 0.95),
            server: None,
        }
    }
}

/// What the WebSocket rules found: failures, and why the data does not suffice when it does not.
#[derive(Debug, Default, PartialEq)]
pub struct WsFindings {
    pub reasons: Vec<String>,
    pub inconclusive: Option<String>,
}

/// One source's failed / total handshakes, judged against the threshold.
struct Rate<'a> {
    source: &'a str,
    failed: u64,
    total: u64,
    detail: String,
}

pub fn judge_ws(judged: &SlotStats, t: &Thresholds) -> WsFindings {
    let ws = &judged.ws;
    let min = t.min_ws_sessions;
    let mut findings = WsFindings::default();
    let server_handshakes = ws
        .server
        .as_ref()
        .and_then(ServerSignals::handshakes)
        .unwrap_or(0);
    let mut rates = vec![
        Rate {
            source: "edge log",
            failed: judged.ws_handshake_failures,
            total: judged.ws_handshakes,
            detail: "upgrades answered 5xx".to_owned(),
        },
        Rate {
            source: "probe",
            failed: ws.probe_failed,
            total: ws.probe_sessions,
            detail: describe_counts(&ws.probe_failures),
        },
    ];
    if let Some(server) = &ws.server {
        let refused: BTreeMap<String, u64> = server
            .handshakes_refused
            .iter()
            .filter(|(code, _)| !super::game_metrics::CLIENT_REFUSALS.contains(&code.as_str()))
            .map(|(code, count)| (code.clone(), *count))
            .collect();
        rates.push(Rate {
            source: "game server",
            failed: server.server_refusals(),
            total: server_handshakes,
            detail: format!("refused {}", describe_counts(&refused)),
        });
    }
    let mut conclusive = false;
    for rate in &rates {
        // Failures already seen that break the threshold even if every missing session had passed.
        let already =
            rate.failed as f64 / rate.total.max(min) as f64 > t.max_ws_handshake_failure_rate;
        if rate.total >= min {
            conclusive = true;
        }
        if rate.total == 0 || (rate.total < min && !already) {
            continue;
        }
        let share = rate.failed as f64 / rate.total as f64;
        if share > t.max_ws_handshake_failure_rate {
            findings.reasons.push(format!(
                "WebSocket handshake failures ({}) {:.2} % ({} of {}{}) above {:.2} %",
                rate.source,
                share * 100.0,
                rate.failed,
                rate.total,
                if rate.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", rate.detail)
                },
                t.max_ws_handshake_failure_rate * 100.0
            ));
        }
    }
    if let Some(p95) = ws.connect_p95_ms
        && ws.probe_sessions >= min
        && p95 > t.max_ws_connect_p95_ms
    {
        findings.reasons.push(format!(
            "WebSocket connect p95 {p95:.0} ms above {:.0} ms",
            t.max_ws_connect_p95_ms
        ));
    }
    if let Some(server) = &ws.server {
        let already =
            server.event_errors as f64 / server.events.max(min) as f64 > t.max_ws_error_rate;
        if server.events >= min || already {
            let share = server.event_errors as f64 / server.events.max(1) as f64;
            if share > t.max_ws_error_rate {
                findings.reasons.push(format!(
                    "game-server errors {:.2} % of events ({} of {} answered INTERNAL/UNAVAILABLE/BUSY) above {:.2} %",
                    share * 100.0,
                    server.event_errors,
                    server.events,
                    t.max_ws_error_rate * 100.0
                ));
            }
        }
        if server.instances == 0 && !server.unreadable.is_empty() {
            findings.inconclusive = Some(format!(
                "the game server's metrics could not be read ({})",
                server.unreadable.join("; ")
            ));
        }
    }
    if !conclusive && findings.inconclusive.is_none() {
        let seen = rates.iter().map(|rate| rate.total).max().unwrap_or(0);
        findings.inconclusive = Some(format!(
            "{seen} WebSocket sessions on the slot, fewer than thresholds.min_ws_sessions = {min}"
        ));
    }
    findings
}

/// `FAULT_INJECTED 7, DRAINING 1` (most first).
fn describe_counts(counts: &BTreeMap<String, u64>) -> String {
    let mut sorted: Vec<(&String, &u64)> = counts.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    sorted
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line of the judgment printout for a slot's Socket.IO figures.
pub fn describe(stats: &SlotStats) -> String {
    let ws = &stats.ws;
    let mut line = format!(
        "ws sessions {:>4} failed {:>3}  connect p95 {:>7}",
        ws.probe_sessions,
        ws.probe_failed,
        ws.connect_p95_ms
            .map_or("-".to_owned(), |p| format!("{p:.0} ms")),
    );
    match &ws.server {
        Some(server) => {
            line.push_str(&format!(
                "  game server: {} instance(s), handshakes {} refused {} ({}), events {} errors {}, redis errors {}",
                server.instances,
                server
                    .handshakes()
                    .map_or("?".to_owned(), |n| n.to_string()),
                server.handshakes_refused.values().sum::<u64>(),
                if server.handshakes_refused.is_empty() {
                    "-".to_owned()
                } else {
                    describe_counts(&server.handshakes_refused)
                },
                server.events,
                server.event_errors,
                server.redis_errors
            ));
            for unreadable in &server.unreadable {
                line.push_str(&format!("\n           unreadable: {unreadable}"));
            }
        }
        None => line.push_str("  game server: not scraped"),
    }
    if !ws.probe_failures.is_empty() {
        line.push_str(&format!(
            "\n           probe failures: {}",
            describe_counts(&ws.probe_failures)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    pub fn thresholds() -> Thresholds {
        Thresholds {
            max_error_rate: 0.01,
            max_error_rate_increase: 0.005,
            max_p99_ms: 1000.0,
            max_p99_ratio: 2.0,
            max_ws_handshake_failure_rate: 0.02,
            max_ws_connect_p95_ms: 500.0,
            max_ws_error_rate: 0.01,
            min_requests: 50,
            min_ws_sessions: 10,
        }
    }

    fn slot(probe_sessions: u64, probe_failed: u64, server: Option<ServerSignals>) -> SlotStats {
        let mut failures = BTreeMap::new();
        if probe_failed > 0 {
            failures.insert("connect: refused FAULT_INJECTED".to_owned(), probe_failed);
        }
        SlotStats {
            ws: WsStats {
                probe_sessions,
                probe_failed,
                probe_failures: failures,
                connect_p95_ms: (probe_sessions > probe_failed).then_some(20.0),
                server,
            },
            ..SlotStats::default()
        }
    }

    fn server(accepted: u64, refused: &[(&str, u64)], events: u64, errors: u64) -> ServerSignals {
        ServerSignals {
            instances: 2,
            handshakes_accepted: Some(accepted),
            handshakes_refused: refused
                .iter()
                .map(|(code, n)| ((*code).to_owned(), *n))
                .collect(),
            events,
            event_errors: errors,
            ..ServerSignals::default()
        }
    }

    #[test]
    fn healthy_sessions_and_a_quiet_server_pass() {
        let judged = slot(20, 0, Some(server(20, &[("TOKEN_EXPIRED", 3)], 20, 0)));
        assert_eq!(judge_ws(&judged, &thresholds()), WsFindings::default());
    }

    #[test]
    fn refused_handshakes_fail_on_the_probe_and_on_the_servers_count() {
        let judged = slot(20, 9, Some(server(11, &[("FAULT_INJECTED", 9)], 11, 0)));
        let findings = judge_ws(&judged, &thresholds());
        assert_eq!(findings.inconclusive, None);
        assert_eq!(findings.reasons.len(), 2, "{findings:?}");
        assert!(
            findings.reasons[0].starts_with(
                "WebSocket handshake failures (probe) 45.00 % (9 of 20: connect: refused FAULT_INJECTED 9)"
            ),
            "{findings:?}"
        );
        assert!(
            findings.reasons[1]
                .contains("(game server) 45.00 % (9 of 20: refused FAULT_INJECTED 9)"),
            "{findings:?}"
        );
    }

    #[test]
    fn no_sessions_is_inconclusive_but_early_failures_are_not() {
        let findings = judge_ws(&slot(0, 0, None), &thresholds());
        assert_eq!(
            findings.inconclusive.as_deref(),
            Some("0 WebSocket sessions on the slot, fewer than thresholds.min_ws_sessions = 10")
        );
        // 4 refusals in 4 sessions already break 2 % of the 10 needed.
        let early = judge_ws(&slot(4, 4, None), &thresholds());
        assert_eq!(early.reasons.len(), 1, "{early:?}");
    }

    #[test]
    fn real_players_sessions_in_the_log_count_as_data() {
        let mut judged = slot(0, 0, None);
        judged.ws_handshakes = 30;
        assert_eq!(judge_ws(&judged, &thresholds()), WsFindings::default());
    }

    #[test]
    fn slow_connects_and_server_errors_fail() {
        let mut judged = slot(20, 0, Some(server(20, &[], 100, 5)));
        judged.ws.connect_p95_ms = Some(900.0);
        let findings = judge_ws(&judged, &thresholds());
        assert_eq!(findings.reasons.len(), 2, "{findings:?}");
        assert_eq!(
            findings.reasons[0],
            "WebSocket connect p95 900 ms above 500 ms"
        );
        assert!(
            findings.reasons[1].starts_with("game-server errors 5.00 % of events (5 of 100"),
            "{findings:?}"
        );
    }

    #[test]
    fn unreadable_metrics_are_not_a_pass() {
        let unreadable = ServerSignals {
            unreadable: vec!["ws-green-1: no answer".to_owned()],
            ..ServerSignals::default()
        };
        let findings = judge_ws(&slot(20, 0, Some(unreadable)), &thresholds());
        assert!(
            findings
                .inconclusive
                .as_deref()
                .is_some_and(|why| why.contains("ws-green-1: no answer")),
            "{findings:?}"
        );
    }
}
