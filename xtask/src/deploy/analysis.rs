//! Judging a slot from nginx's JSON access log: per-slot request counts, 5xx rate, p99 request time and
//! WebSocket handshake failures, compared against thresholds and against the stable slot; and, through
//! [`analysis_ws`](super::analysis_ws), the game server's own signals (the probe's Socket.IO sessions and
//! the game server's metrics) carried in [`SlotStats::ws`].
//!
//! No data is not a pass: too few requests or Socket.IO sessions on the judged slot gives
//! [`Verdict::Inconclusive`], unless the failures already seen would break a threshold whatever the
//! missing requests did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::analysis_ws::{self, WsStats};
use super::config::Thresholds;

/// The fields of one access-log line that a judgment uses (nginx's `avalon_json` format).
#[derive(Debug, Clone, Deserialize)]
pub struct LogLine {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub uri: String,
    pub status: u16,
    pub request_time: f64,
    pub slot: String,
    #[serde(default)]
    pub upgrade: String,
}

impl LogLine {
    /// A Socket.IO WebSocket handshake: a request under /socket.io/ asking to upgrade.
    fn is_ws_handshake(&self) -> bool {
        self.uri.starts_with("/socket.io/") && self.upgrade.eq_ignore_ascii_case("websocket")
    }
}

/// Parses the lines of `docker logs <nginx>` (error-log lines and anything else are skipped), keeping
/// those at or after `since`.
pub fn parse_log(text: &str, since: OffsetDateTime) -> Vec<LogLine> {
    text.lines()
        .filter_map(|line| {
            let start = line.find('{')?;
            serde_json::from_str::<LogLine>(&line[start..]).ok()
        })
        .filter(|line| line.time >= since)
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlotStats {
    /// HTTP requests other than WebSocket handshakes.
    pub requests: u64,
    pub errors_5xx: u64,
    pub error_rate: Option<f64>,
    /// 99th percentile of `request_time`, milliseconds.
    pub p99_ms: Option<f64>,
    pub ws_handshakes: u64,
    pub ws_handshake_failures: u64,
    /// The probe's Socket.IO sessions and the game server's own figures (empty from the log alone).
    pub ws: WsStats,
}

/// Per-slot figures for the lines given.
pub fn stats_by_slot(lines: &[LogLine]) -> BTreeMap<String, SlotStats> {
    let mut times: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut stats: BTreeMap<String, SlotStats> = BTreeMap::new();
    for line in lines {
        if line.slot.is_empty() {
            continue;
        }
        let entry = stats.entry(line.slot.clone()).or_default();
        if line.is_ws_handshake() {
            entry.ws_handshakes += 1;
            // 101 is success; a 5xx is the slot failing. 4xx (rate limits, bad tokens) are the client's.
            if line.status >= 500 {
                entry.ws_handshake_failures += 1;
            }
            continue;
        }
        entry.requests += 1;
        if line.status >= 500 {
            entry.errors_5xx += 1;
        }
        times
            .entry(line.slot.clone())
            .or_default()
            .push(line.request_time * 1000.0);
    }
    for (slot, entry) in &mut stats {
        if entry.requests > 0 {
            entry.error_rate = Some(entry.errors_5xx as f64 / entry.requests as f64);
        }
        entry.p99_ms = times
            .get_mut(slot)
            .and_then(|values| percentile(values, 0.99));
    }
    stats
}

/// Nearest-rank percentile.
pub(super) fn percentile(values: &mut [f64], quantile: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (quantile * values.len() as f64).ceil() as usize;
    values.get(rank.clamp(1, values.len()) - 1).copied()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail { reasons: Vec<String> },
    Inconclusive { reason: String },
}

impl Verdict {
    pub fn describe(&self) -> String {
        match self {
            Verdict::Pass => "pass".to_owned(),
            Verdict::Fail { reasons } => format!("FAIL: {}", reasons.join("; ")),
            Verdict::Inconclusive { reason } => format!("inconclusive: {reason}"),
        }
    }
}

/// Judges `judged` (the canary, or a freshly deployed slot) against `baseline` (the stable slot, when it
/// still takes traffic): HTTP from the access log, then the game server. A failure anywhere fails; else
/// missing data anywhere is inconclusive; else a pass.
pub fn judge(judged: &SlotStats, baseline: Option<&SlotStats>, t: &Thresholds) -> Verdict {
    let (mut reasons, http_inconclusive) = judge_http(judged, baseline, t);
    let ws = analysis_ws::judge_ws(judged, t);
    reasons.extend(ws.reasons);
    if !reasons.is_empty() {
        return Verdict::Fail { reasons };
    }
    let missing: Vec<String> = http_inconclusive
        .into_iter()
        .chain(ws.inconclusive)
        .collect();
    if missing.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Inconclusive {
            reason: missing.join("; "),
        }
    }
}

/// The HTTP rules: failure reasons, and why the data does not suffice when it does not.
fn judge_http(
    judged: &SlotStats,
    baseline: Option<&SlotStats>,
    t: &Thresholds,
) -> (Vec<String>, Option<String>) {
    let mut reasons = Vec::new();
    let min = t.min_requests;
    // Failures already seen that break the threshold even if every missing request had succeeded.
    let conclusive_errors =
        judged.errors_5xx as f64 / judged.requests.max(min) as f64 > t.max_error_rate;
    if judged.requests < min && !conclusive_errors {
        return (
            reasons,
            Some(format!(
                "{} requests on the slot, fewer than thresholds.min_requests = {min}",
                judged.requests
            )),
        );
    }
    let rate = judged.errors_5xx as f64 / judged.requests.max(1) as f64;
    if rate > t.max_error_rate {
        reasons.push(format!(
            "5xx rate {:.2} % ({} of {}) above {:.2} %",
            rate * 100.0,
            judged.errors_5xx,
            judged.requests,
            t.max_error_rate * 100.0
        ));
    }
    if let Some(base_rate) =
        baseline.and_then(|b| (b.requests >= min).then_some(b.error_rate).flatten())
        && rate > base_rate + t.max_error_rate_increase
    {
        reasons.push(format!(
            "5xx rate {:.2} % exceeds the stable slot's {:.2} % by more than {:.2} points",
            rate * 100.0,
            base_rate * 100.0,
            t.max_error_rate_increase * 100.0
        ));
    }
    if let Some(p99) = judged.p99_ms {
        if p99 > t.max_p99_ms {
            reasons.push(format!("p99 {p99:.0} ms above {:.0} ms", t.max_p99_ms));
        }
        let floor = t.max_p99_ms / 4.0;
        if let Some(base_p99) =
            baseline.and_then(|b| (b.requests >= min).then_some(b.p99_ms).flatten())
            && p99 > floor
            && p99 > base_p99 * t.max_p99_ratio
        {
            reasons.push(format!(
                "p99 {p99:.0} ms is more than {:.1}× the stable slot's {base_p99:.0} ms",
                t.max_p99_ratio
            ));
        }
    }
    (reasons, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn thresholds() -> Thresholds {
        Thresholds {
            max_error_rate: 0.01,
            max_error_rate_increase: 0.005,
            max_p99_ms: 1000.0,
            max_p99_ratio: 2.0,
            max_ws_handshake_failure_rate: 0.02,
            max_ws_connect_p95_ms: 1000.0,
            max_ws_error_rate: 0.01,
            min_requests: 50,
            min_ws_sessions: 10,
        }
    }

    /// A slot whose game server is healthy: the probe's sessions all passed.
    fn healthy_ws() -> WsStats {
        WsStats {
            probe_sessions: 20,
            connect_p95_ms: Some(15.0),
            ..WsStats::default()
        }
    }

    fn line(slot: &str, uri: &str, status: u16, seconds: f64, upgrade: &str) -> String {
        format!(
            r#"{{"time":"2026-11-26T01:00:10+00:00","request_id":"r","remote_addr":"1.2.3.4","method":"GET","uri":"{uri}","status":{status},"bytes_sent":1,"request_time":{seconds},"slot":"{slot}","upstream_addr":"a","upstream_status":"{status}","upstream_response_time":"{seconds}","upstream_connect_time":"0.000","upgrade":"{upgrade}","user_agent":"t"}}"#
        )
    }

    fn stats(slot: &str, ok: usize, errors: usize, seconds: f64) -> SlotStats {
        let mut text = String::new();
        for i in 0..ok + errors {
            let status = if i < errors { 500 } else { 200 };
            text.push_str(&line(slot, "/api/v1/me", status, seconds, ""));
            text.push('\n');
        }
        let since = OffsetDateTime::UNIX_EPOCH;
        let mut stats = stats_by_slot(&parse_log(&text, since))
            .remove(slot)
            .unwrap_or_default();
        stats.ws = healthy_ws();
        stats
    }

    #[test]
    fn docker_logs_lines_are_parsed_and_old_or_foreign_lines_skipped() {
        let text = format!(
            "2026/11/26 01:00:00 [notice] 1#1: signal process started\n{}\n{}\n{}\n",
            line("green", "/api/x", 503, 0.2, ""),
            line(
                "blue",
                "/socket.io/?EIO=4&transport=websocket",
                101,
                30.0,
                "websocket"
            ),
            line(
                "blue",
                "/socket.io/?EIO=4&transport=websocket",
                502,
                0.0,
                "websocket"
            ),
        );
        let all = parse_log(&text, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(all.len(), 3);
        let later = OffsetDateTime::parse(
            "2026-11-26T01:00:11Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(parse_log(&text, later).is_empty());
        let by_slot = stats_by_slot(&all);
        assert_eq!(by_slot["green"].errors_5xx, 1);
        assert_eq!(by_slot["green"].p99_ms, Some(200.0));
        // A long-lived WebSocket's request_time is its lifetime: it must not count as latency.
        assert_eq!(by_slot["blue"].requests, 0);
        assert_eq!(by_slot["blue"].p99_ms, None);
        assert_eq!(
            (
                by_slot["blue"].ws_handshakes,
                by_slot["blue"].ws_handshake_failures
            ),
            (2, 1)
        );
    }

    #[test]
    fn healthy_http_with_a_refusing_game_server_fails() {
        let mut canary = stats("green", 200, 0, 0.02);
        canary.ws.probe_failed = 10;
        canary
            .ws
            .probe_failures
            .insert("connect: refused FAULT_INJECTED".to_owned(), 10);
        let Verdict::Fail { reasons } = judge(&canary, None, &thresholds()) else {
            panic!("expected a failure");
        };
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with("WebSocket handshake failures (probe) 50.00 % (10 of 20"),
            "{reasons:?}"
        );
    }

    #[test]
    fn healthy_http_without_websocket_sessions_is_inconclusive() {
        let mut canary = stats("green", 200, 0, 0.02);
        canary.ws = WsStats::default();
        let verdict = judge(&canary, None, &thresholds());
        assert_eq!(
            verdict,
            Verdict::Inconclusive {
                reason:
                    "0 WebSocket sessions on the slot, fewer than thresholds.min_ws_sessions = 10"
                        .to_owned()
            }
        );
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut values, 0.99), Some(99.0));
        assert_eq!(percentile(&mut [5.0], 0.99), Some(5.0));
        assert_eq!(percentile(&mut [], 0.99), None);
    }

    #[test]
    fn no_traffic_is_inconclusive_not_a_pass() {
        let verdict = judge(&SlotStats::default(), None, &thresholds());
        assert!(
            matches!(verdict, Verdict::Inconclusive { .. }),
            "{verdict:?}"
        );
        let few = stats("green", 20, 0, 0.01);
        assert!(matches!(
            judge(&few, None, &thresholds()),
            Verdict::Inconclusive { .. }
        ));
    }

    #[test]
    fn failures_that_already_break_the_threshold_fail_even_on_a_small_sample() {
        let verdict = judge(&stats("green", 5, 5, 0.01), None, &thresholds());
        assert!(matches!(verdict, Verdict::Fail { .. }), "{verdict:?}");
    }

    #[test]
    fn a_healthy_canary_passes_and_a_failing_one_names_its_reasons() {
        let stable = stats("blue", 500, 0, 0.02);
        assert_eq!(
            judge(&stats("green", 200, 1, 0.02), Some(&stable), &thresholds()),
            Verdict::Pass
        );
        let Verdict::Fail { reasons } =
            judge(&stats("green", 180, 20, 0.02), Some(&stable), &thresholds())
        else {
            panic!("expected a failure");
        };
        assert!(
            reasons[0].starts_with("5xx rate 10.00 % (20 of 200) above 1.00 %"),
            "{reasons:?}"
        );
    }

    #[test]
    fn latency_fails_on_the_absolute_limit_and_on_the_ratio_to_stable() {
        let stable = stats("blue", 500, 0, 0.1);
        let Verdict::Fail { reasons } =
            judge(&stats("green", 100, 0, 0.4), Some(&stable), &thresholds())
        else {
            panic!("expected a failure");
        };
        assert!(
            reasons[0].contains("more than 2.0× the stable slot's 100 ms"),
            "{reasons:?}"
        );
        // Below a quarter of the absolute limit, a ratio alone is noise.
        let fast = stats("blue", 500, 0, 0.01);
        assert_eq!(
            judge(&stats("green", 100, 0, 0.05), Some(&fast), &thresholds()),
            Verdict::Pass
        );
        assert!(matches!(
            judge(&stats("green", 100, 0, 1.5), None, &thresholds()),
            Verdict::Fail { .. }
        ));
    }
}
