//! `deploy/deploy.toml`: timeouts, judgment thresholds, the synthetic probe and the canary plans.
//! Every problem is reported at once, naming the field and the rule.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const DEFAULT_PATH: &str = "deploy/deploy.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    pub deploy: Timing,
    pub thresholds: Thresholds,
    pub probe: Probe,
    /// The deploy lock's lease (see `deploy/lock.rs`).
    pub lock: LockTiming,
    pub plans: BTreeMap<String, Plan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockTiming {
    /// How long a lock holder may go without renewing before the lock counts as stale; renewed every
    /// third of it while the command runs.
    #[serde(with = "humantime_serde_str")]
    pub lease: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    #[serde(with = "humantime_serde_str")]
    pub ready_timeout: Duration,
    #[serde(with = "humantime_serde_str")]
    pub drain: Duration,
    #[serde(with = "humantime_serde_str")]
    pub verify_window: Duration,
    pub min_free_disk_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub max_error_rate: f64,
    pub max_error_rate_increase: f64,
    pub max_p99_ms: f64,
    pub max_p99_ratio: f64,
    pub max_ws_handshake_failure_rate: f64,
    /// 95th percentile of the probe's Socket.IO connect time on the judged slot, ms.
    pub max_ws_connect_p95_ms: f64,
    /// Share of the game server's events that failed on its side (INTERNAL, UNAVAILABLE, BUSY).
    pub max_ws_error_rate: f64,
    pub min_requests: u64,
    /// Fewer Socket.IO sessions than this on the judged slot: inconclusive.
    pub min_ws_sessions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub requests_per_second: u32,
    /// Socket.IO sessions (handshake, sign-in, `sync`, close) per second per slot.
    pub ws_sessions_per_second: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub weight: u8,
    #[serde(with = "humantime_serde_str")]
    pub pause: Duration,
}

impl DeployConfig {
    #[cfg(test)]
    pub fn default_path() -> std::path::PathBuf {
        crate::project::root().join(DEFAULT_PATH)
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text)
            .with_context(|| format!("{} is not a valid deploy config", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        let problems = config.problems();
        if !problems.is_empty() {
            anyhow::bail!(
                "{}",
                problems
                    .iter()
                    .map(|p| format!("  - {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        Ok(config)
    }

    pub fn plan(&self, name: &str) -> anyhow::Result<&Plan> {
        self.plans.get(name).with_context(|| {
            format!(
                "no canary plan named {name:?} in {DEFAULT_PATH}; plans: {}",
                self.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Every broken rule as `field: rule`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut fail = |field: &str, rule: String| problems.push(format!("{field}: {rule}"));
        let t = &self.deploy;
        if t.ready_timeout < Duration::from_secs(5) {
            fail("deploy.ready_timeout", "must be at least 5s".to_owned());
        }
        if t.drain > Duration::from_secs(600) {
            fail("deploy.drain", "must be at most 10m".to_owned());
        }
        if self.lock.lease < Duration::from_secs(3) || self.lock.lease > Duration::from_secs(300) {
            fail(
                "lock.lease",
                format!(
                    "must be 3s–5m (renewed every third of it; an interrupted holder counts as stale after it), got {}",
                    humantime::format_duration(self.lock.lease)
                ),
            );
        }
        let th = &self.thresholds;
        for (field, value) in [
            ("thresholds.max_error_rate", th.max_error_rate),
            (
                "thresholds.max_error_rate_increase",
                th.max_error_rate_increase,
            ),
            (
                "thresholds.max_ws_handshake_failure_rate",
                th.max_ws_handshake_failure_rate,
            ),
            ("thresholds.max_ws_error_rate", th.max_ws_error_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                fail(field, format!("must be a fraction 0–1, got {value}"));
            }
        }
        if th.max_p99_ms.is_nan() || th.max_p99_ms <= 0.0 {
            fail(
                "thresholds.max_p99_ms",
                format!("must be positive, got {}", th.max_p99_ms),
            );
        }
        if th.max_ws_connect_p95_ms.is_nan() || th.max_ws_connect_p95_ms <= 0.0 {
            fail(
                "thresholds.max_ws_connect_p95_ms",
                format!("must be positive, got {}", th.max_ws_connect_p95_ms),
            );
        }
        if th.max_p99_ratio.is_nan() || th.max_p99_ratio < 1.0 {
            fail(
                "thresholds.max_p99_ratio",
                format!("must be at least 1.0, got {}", th.max_p99_ratio),
            );
        }
        if th.min_requests == 0 {
            fail(
                "thresholds.min_requests",
                "must be at least 1 (no data is not a pass)".to_owned(),
            );
        }
        if th.min_ws_sessions == 0 {
            fail(
                "thresholds.min_ws_sessions",
                "must be at least 1 (no data is not a pass)".to_owned(),
            );
        }
        if self.probe.requests_per_second > 1000 {
            fail(
                "probe.requests_per_second",
                format!("must be 0–1000, got {}", self.probe.requests_per_second),
            );
        }
        // Each session is a TCP connection, an upgrade and a sign-in: more than this per slot would be
        // load, not a probe.
        if self.probe.ws_sessions_per_second > 50 {
            fail(
                "probe.ws_sessions_per_second",
                format!("must be 0–50, got {}", self.probe.ws_sessions_per_second),
            );
        }
        if self.plans.is_empty() {
            fail("plans", "at least one plan is required".to_owned());
        }
        for (name, plan) in &self.plans {
            let field = format!("plans.{name}.steps");
            if plan.steps.is_empty() {
                fail(&field, "at least one step is required".to_owned());
                continue;
            }
            let mut previous = 0;
            for (i, step) in plan.steps.iter().enumerate() {
                if step.weight == 0 || step.weight > 100 {
                    fail(
                        &format!("{field}[{i}].weight"),
                        format!("must be 1–100, got {}", step.weight),
                    );
                } else if step.weight <= previous {
                    fail(
                        &format!("{field}[{i}].weight"),
                        format!(
                            "must be greater than the step before ({previous}), got {}",
                            step.weight
                        ),
                    );
                }
                previous = step.weight;
            }
            if plan.steps.last().is_some_and(|step| step.weight != 100) {
                fail(
                    &field,
                    "the last step must have weight 100 (the promotion)".to_owned(),
                );
            }
        }
        problems
    }
}

/// Durations as humantime strings ("90s", "2m").
pub(crate) mod humantime_serde_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|err| {
            serde::de::Error::custom(format!("{text:?} is not a duration such as \"90s\": {err}"))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_repository_config_is_valid_and_has_the_default_plan() {
        let config = DeployConfig::load(&DeployConfig::default_path()).unwrap();
        let weights: Vec<u8> = config
            .plan("default")
            .unwrap()
            .steps
            .iter()
            .map(|s| s.weight)
            .collect();
        assert_eq!(weights, [5, 25, 50, 100]);
        assert!(
            config
                .plan("nope")
                .unwrap_err()
                .to_string()
                .contains("plans: default, quick")
        );
    }

    #[test]
    fn every_problem_is_named_by_field() {
        let text = std::fs::read_to_string(DeployConfig::default_path()).unwrap();
        let broken = text
            .replace("max_error_rate = 0.01", "max_error_rate = 1.5")
            .replace("min_requests = 50", "min_requests = 0")
            .replace("lease = \"15s\"", "lease = \"1s\"")
            .replace("min_ws_sessions = 10", "min_ws_sessions = 0")
            .replace("max_ws_error_rate = 0.01", "max_ws_error_rate = -1")
            .replace("max_ws_connect_p95_ms = 1000", "max_ws_connect_p95_ms = 0")
            .replace("ws_sessions_per_second = 2", "ws_sessions_per_second = 51")
            .replace(
                "{ weight = 25, pause = \"120s\" }",
                "{ weight = 4, pause = \"120s\" }",
            )
            .replace(
                "{ weight = 100, pause = \"5s\" }",
                "{ weight = 90, pause = \"5s\" }",
            );
        let err = format!("{:#}", DeployConfig::parse(&broken).unwrap_err());
        for expected in [
            "thresholds.max_error_rate: must be a fraction 0–1, got 1.5",
            "thresholds.min_requests: must be at least 1",
            "lock.lease: must be 3s–5m",
            "thresholds.min_ws_sessions: must be at least 1 (no data is not a pass)",
            "thresholds.max_ws_error_rate: must be a fraction 0–1, got -1",
            "thresholds.max_ws_connect_p95_ms: must be positive, got 0",
            "probe.ws_sessions_per_second: must be 0–50, got 51",
            "plans.default.steps[1].weight: must be greater than the step before (5), got 4",
            "plans.quick.steps: the last step must have weight 100",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from {err}");
        }
    }

    #[test]
    fn bad_durations_and_unknown_fields_are_rejected() {
        let text = std::fs::read_to_string(DeployConfig::default_path()).unwrap();
        let err = format!(
            "{:#}",
            DeployConfig::parse(&text.replace("\"120s\"", "\"soon\"")).unwrap_err()
        );
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
        let err = format!(
            "{:#}",
            DeployConfig::parse(&text.replace("drain =", "drian =")).unwrap_err()
        );
        assert!(err.contains("drian"), "{err}");
    }
}
