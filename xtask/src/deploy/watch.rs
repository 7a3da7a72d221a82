//! Watching a slot for an interval and judging it: probe traffic on, wait, read the edge's access log
//! for the interval, per-slot figures, verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::analysis::{self, SlotStats, Verdict};
use super::config::DeployConfig;
use super::probe::{Probe, ProbeCounts};
use super::slots::Slot;
use super::target::{Edge, Target};

#[derive(Debug, Clone, Serialize)]
pub struct Judgment {
    pub slot: Slot,
    pub baseline: Option<Slot>,
    pub window_seconds: u64,
    pub stats: BTreeMap<String, SlotStats>,
    pub probe: ProbeCounts,
    pub verdict: Verdict,
}

impl Judgment {
    pub fn print(&self) {
        for (slot, s) in &self.stats {
            println!(
                "  {slot:<6} requests {:>6}  5xx {:>4} ({:>6})  p99 {:>8}  ws handshakes {:>4} failed {:>3}",
                s.requests,
                s.errors_5xx,
                s.error_rate
                    .map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0)),
                s.p99_ms.map_or("-".to_owned(), |p| format!("{p:.0} ms")),
                s.ws_handshakes,
                s.ws_handshake_failures
            );
        }
        println!(
            "  probe: {} sent, {} failed",
            self.probe.sent, self.probe.failed
        );
        println!("  verdict for {}: {}", self.slot, self.verdict.describe());
    }
}

/// Sends probe traffic to `slot` (and `baseline`), waits `window`, then judges `slot` from the log.
pub fn watch(
    target: &Target,
    edge: &Edge,
    config: &DeployConfig,
    slot: Slot,
    baseline: Option<Slot>,
    window: Duration,
) -> anyhow::Result<Judgment> {
    // nginx's $time_iso8601 has whole seconds; so must the start of the interval.
    let now = time::OffsetDateTime::now_utc();
    let since = now.replace_nanosecond(0).unwrap_or(now);
    let override_cookie = edge.model()?.canary.override_cookie;
    let probed: Vec<String> = std::iter::once(slot)
        .chain(baseline)
        .map(|s| s.name().to_owned())
        .collect();
    println!(
        "watching slot {slot} for {}s (probe {} req/s per slot)",
        window.as_secs(),
        config.probe.requests_per_second
    );
    let probe = Probe::start(
        &edge.base_url()?,
        &override_cookie,
        &probed,
        config.probe.requests_per_second,
    );
    std::thread::sleep(window);
    let probe = probe.finish();
    // nginx writes a line when a request completes; give the last ones a moment to reach the log.
    std::thread::sleep(Duration::from_millis(500));
    let log = target.access_log(edge, since)?;
    let stats = analysis::stats_by_slot(&analysis::parse_log(&log, since));
    let judged = stats.get(slot.name()).cloned().unwrap_or_default();
    let base = baseline.and_then(|b| stats.get(b.name()));
    let verdict = analysis::judge(&judged, base, &config.thresholds);
    Ok(Judgment {
        slot,
        baseline,
        window_seconds: window.as_secs(),
        stats,
        probe,
        verdict,
    })
}
