//! The autoscaling policy engine: Kubernetes HPA v2's algorithm on one service's total demand. PURE — no
//! I/O and no clock (the caller passes `now_s`), so the live autoscaler, `autoscale simulate` and the
//! tests all run exactly this code, and a trace replays to the same decisions every time.
//!
//! One evaluation, in HPA's order (kube-controller-manager `horizontal.go`, docs/scaling.md "Semantics"):
//! 1. replicas outside `[min, max]` go straight to the nearer bound (no metric, no rate limit);
//! 2. per metric, per-instance utilisation = demand ÷ (replicas × limit) (connections: demand ÷
//!    replicas); within `tolerance` of the target that metric recommends the current count, else
//!    ceil(current × observed ÷ target); the largest recommendation wins;
//! 3. stabilisation: the result is held between the lowest recommendation of the scale-up window and the
//!    highest of the scale-down window (both windows include this one);
//! 4. rate limits, counted from the replicas at the start of the period (current − added + removed in
//!    it): up to the larger of `scale_up_max_pods` and `scale_up_max_percent` (HPA's selectPolicy Max),
//!    down by at most `scale_down_max_pods`; then clamped to `[min, max]`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deploy::config::humantime_serde_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Api,
    Websocket,
}

impl Service {
    pub const ALL: [Service; 2] = [Service::Api, Service::Websocket];

    pub fn name(self) -> &'static str {
        match self {
            Service::Api => "api",
            Service::Websocket => "websocket",
        }
    }

    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One service's table of `deploy/scaling.toml` (docs/scaling.md has the reference). A target of 0 turns
/// that metric off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    pub min: u32,
    pub max: u32,
    pub cpu_limit_millicores: u32,
    pub memory_limit_mib: u32,
    pub target_cpu_pct: u32,
    pub target_memory_pct: u32,
    pub target_connections: u32,
    pub tolerance: f64,
    #[serde(with = "humantime_serde_str")]
    pub sync_period: Duration,
    #[serde(with = "humantime_serde_str")]
    pub scale_up_stabilization: Duration,
    #[serde(with = "humantime_serde_str")]
    pub scale_down_stabilization: Duration,
    pub scale_up_max_pods: u32,
    pub scale_up_max_percent: u32,
    #[serde(with = "humantime_serde_str")]
    pub scale_up_period: Duration,
    pub scale_down_max_pods: u32,
    #[serde(with = "humantime_serde_str")]
    pub scale_down_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub api: ServicePolicy,
    pub websocket: ServicePolicy,
}

impl Policy {
    pub fn get(&self, service: Service) -> &ServicePolicy {
        match service {
            Service::Api => &self.api,
            Service::Websocket => &self.websocket,
        }
    }
}

/// A service's TOTAL demand at one instant (what the trace rows and the live metrics give).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Demand {
    pub cpu_millicores: f64,
    pub memory_mib: f64,
    pub connections: f64,
}

/// What one metric said at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricReading {
    /// "cpu" | "memory" | "connections".
    pub metric: &'static str,
    /// Per instance: % of the limit for cpu and memory, connections for connections.
    pub utilisation_pct: f64,
    pub target: f64,
    /// This metric's recommendation (the current count when within tolerance).
    pub desired: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub service: Service,
    pub from: u32,
    /// Equal to `from` when nothing changes.
    pub to: u32,
    /// Which metric drove it and which rule bound it.
    pub reason: String,
    pub metrics: Vec<MetricReading>,
}

/// An unstabilised recommendation, kept for the stabilisation windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Recommendation {
    t: f64,
    replicas: u32,
}

/// A change this scaler decided, kept for the per-period rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct ScaleEvent {
    t: f64,
    /// Replicas added (scale-up list) or removed (scale-down list).
    change: u32,
}

/// Per-service memory of recommendations and scale events; Serialize + Deserialize so the live
/// autoscaler can persist it between `--once` runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    service: Service,
    policy: ServicePolicy,
    recommendations: Vec<Recommendation>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

impl Scaler {
    pub fn new(service: Service, policy: ServicePolicy) -> Self {
        Scaler {
            service,
            policy,
            recommendations: Vec::new(),
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
        }
    }

    /// A persisted scaler picks up an edited policy file; its memory stays.
    #[allow(dead_code)] // for the live autoscaler (live.rs), which persists scalers between runs
    pub fn set_policy(&mut self, policy: ServicePolicy) {
        self.policy = policy;
    }

    /// For a caller that decided a change but could not apply it (dry run, failed scale): forget the
    /// event, so the rate limits count only what really happened.
    #[allow(dead_code)] // for the live autoscaler (live.rs): --dry-run, or a scale that failed
    pub fn not_applied(&mut self, decision: &Decision) {
        let events = if decision.to > decision.from {
            &mut self.scale_up_events
        } else {
            &mut self.scale_down_events
        };
        let change = decision.to.abs_diff(decision.from);
        if change > 0
            && let Some(at) = events.iter().rposition(|e| e.change == change)
        {
            events.remove(at);
        }
    }

    /// `now_s`: seconds on any monotonic-ish clock the caller keeps (trace `t`, or unix seconds live).
    pub fn evaluate(&mut self, now_s: f64, current: u32, demand: &Demand) -> Decision {
        // A copy, so the evaluation may update the memory while it reads the policy.
        let p = self.policy.clone();
        let service = self.service;
        let metrics = readings(&p, current, demand);
        let decide = |to: u32, reason: String, metrics: Vec<MetricReading>| Decision {
            service,
            from: current,
            to,
            reason,
            metrics,
        };
        // HPA: out-of-range replicas are corrected before any metric is read, and no limit applies.
        let out_of_range = if current < p.min {
            Some((p.min, format!("current {current} below min={}", p.min)))
        } else if current > p.max {
            Some((p.max, format!("current {current} above max={}", p.max)))
        } else {
            None
        };
        if let Some((to, reason)) = out_of_range {
            let decision = decide(to, reason, metrics);
            self.record_event(now_s, current, to);
            return decision;
        }
        let Some(driver) = driving_metric(&metrics) else {
            return decide(
                current,
                "no usable metric: replicas unchanged".to_owned(),
                metrics,
            );
        };
        let desired = driver.desired;
        let mut reason = format!("{}: desired {desired}", describe(driver, p.tolerance));
        let stabilised = self.stabilise(now_s, current, desired);
        if stabilised != desired {
            let (window, which, extreme) = if stabilised < desired {
                ("scale_up_stabilization", p.scale_up_stabilization, "lowest")
            } else {
                (
                    "scale_down_stabilization",
                    p.scale_down_stabilization,
                    "highest",
                )
            };
            reason.push_str(&format!(
                ", held at {stabilised} by {window}={} ({extreme} recommendation in window)",
                seconds(which)
            ));
        }
        let (to, limit) = self.rate_limit(now_s, current, stabilised);
        if let Some(limit) = limit {
            reason.push_str(&format!(", limited to {to} by {limit}"));
        }
        self.record_event(now_s, current, to);
        decide(to, reason, metrics)
    }

    /// HPA's `stabilizeRecommendationWithBehaviors`: records `desired`, then holds the current count
    /// between the lowest recommendation of the scale-up window and the highest of the scale-down one.
    fn stabilise(&mut self, now_s: f64, current: u32, desired: u32) -> u32 {
        let up_cutoff = now_s - self.policy.scale_up_stabilization.as_secs_f64();
        let down_cutoff = now_s - self.policy.scale_down_stabilization.as_secs_f64();
        let mut up = desired;
        let mut down = desired;
        for rec in &self.recommendations {
            if rec.t > up_cutoff {
                up = up.min(rec.replicas);
            }
            if rec.t > down_cutoff {
                down = down.max(rec.replicas);
            }
        }
        let oldest = up_cutoff.min(down_cutoff);
        self.recommendations.retain(|rec| rec.t > oldest);
        self.recommendations.push(Recommendation {
            t: now_s,
            replicas: desired,
        });
        current.max(up).min(down)
    }

    /// HPA's `convertDesiredReplicasWithBehaviorRate`: the stabilised count bounded by the rate limits
    /// and by min/max, with the name of the rule that bound it.
    fn rate_limit(&self, now_s: f64, current: u32, wanted: u32) -> (u32, Option<String>) {
        let p = &self.policy;
        if wanted > current {
            let start = self.period_start(now_s, current, p.scale_up_period);
            let by_pods = (p.scale_up_max_pods > 0).then(|| start + i64::from(p.scale_up_max_pods));
            // Rounded up, as HPA does, so a small service can always grow by one; in integers, so
            // 10 × 110 % is 11 (HPA's float64 makes it 11.000000000000002 and then 12).
            let by_percent = (p.scale_up_max_percent > 0).then(|| {
                let grown = start * (100 + i64::from(p.scale_up_max_percent));
                (grown + 99) / 100
            });
            let period = seconds(p.scale_up_period);
            let (limit, rule) = match (by_pods, by_percent) {
                (Some(pods), Some(pct)) if pct > pods => (
                    pct,
                    format!(
                        "scale_up_max_percent={} per {period}",
                        p.scale_up_max_percent
                    ),
                ),
                (Some(pods), _) => (
                    pods,
                    format!("scale_up_max_pods={} per {period}", p.scale_up_max_pods),
                ),
                (None, Some(pct)) => (
                    pct,
                    format!(
                        "scale_up_max_percent={} per {period}",
                        p.scale_up_max_percent
                    ),
                ),
                // Validation refuses both off; this only keeps the count where it is.
                (None, None) => (i64::from(current), "scale-up disabled".to_owned()),
            };
            let limit = clamp_u32(limit.max(i64::from(current)));
            let (allowed, rule) = if p.max <= limit {
                (p.max, format!("max={}", p.max))
            } else {
                (limit, rule)
            };
            if wanted > allowed {
                return (allowed, Some(rule));
            }
        } else if wanted < current {
            let start = self.period_start(now_s, current, p.scale_down_period);
            let limit =
                clamp_u32((start - i64::from(p.scale_down_max_pods)).min(i64::from(current)));
            let (allowed, rule) = if p.min >= limit {
                (p.min, format!("min={}", p.min))
            } else {
                (
                    limit,
                    format!(
                        "scale_down_max_pods={} per {}",
                        p.scale_down_max_pods,
                        seconds(p.scale_down_period)
                    ),
                )
            };
            if wanted < allowed {
                return (allowed, Some(rule));
            }
        }
        (wanted, None)
    }

    /// The replicas at the start of the period ending now: current − added + removed within it.
    fn period_start(&self, now_s: f64, current: u32, period: Duration) -> i64 {
        let cutoff = now_s - period.as_secs_f64();
        let sum = |events: &[ScaleEvent]| -> i64 {
            events
                .iter()
                .filter(|e| e.t > cutoff)
                .map(|e| i64::from(e.change))
                .sum()
        };
        // Never below 0: a count changed by hand since (or a persisted memory from another run) can
        // make the arithmetic go negative.
        (i64::from(current) - sum(&self.scale_up_events) + sum(&self.scale_down_events)).max(0)
    }

    fn record_event(&mut self, now_s: f64, from: u32, to: u32) {
        let up_cutoff = now_s - self.policy.scale_up_period.as_secs_f64();
        let down_cutoff = now_s - self.policy.scale_down_period.as_secs_f64();
        // Both limits read both lists over their own period, so keep what either may still count.
        let cutoff = up_cutoff.min(down_cutoff);
        self.scale_up_events.retain(|e| e.t > cutoff);
        self.scale_down_events.retain(|e| e.t > cutoff);
        let event = ScaleEvent {
            t: now_s,
            change: to.abs_diff(from),
        };
        if to > from {
            self.scale_up_events.push(event);
        } else if to < from {
            self.scale_down_events.push(event);
        }
    }
}

/// Every enabled metric's reading; none when there are no replicas to divide by or the figure is not a
/// usable number (HPA, too, leaves a metric it cannot read out).
fn readings(p: &ServicePolicy, current: u32, demand: &Demand) -> Vec<MetricReading> {
    if current == 0 {
        return Vec::new();
    }
    let replicas = f64::from(current);
    let candidates = [
        (
            "cpu",
            p.target_cpu_pct,
            demand.cpu_millicores / (replicas * f64::from(p.cpu_limit_millicores)) * 100.0,
        ),
        (
            "memory",
            p.target_memory_pct,
            demand.memory_mib / (replicas * f64::from(p.memory_limit_mib)) * 100.0,
        ),
        (
            "connections",
            p.target_connections,
            demand.connections / replicas,
        ),
    ];
    candidates
        .into_iter()
        .filter(|(_, target, observed)| *target > 0 && observed.is_finite() && *observed >= 0.0)
        .map(|(metric, target, observed)| {
            let target = f64::from(target);
            let ratio = observed / target;
            let desired = if (ratio - 1.0).abs() <= p.tolerance {
                current
            } else {
                // A hair below an integer is float noise of the division above, not a fraction of a
                // replica: 700 m over 2 × 500 m at 70 % must give exactly 2.
                clamp_u32(((ratio * replicas) - 1e-9).ceil() as i64)
            };
            MetricReading {
                metric,
                utilisation_pct: observed,
                target,
                desired,
            }
        })
        .collect()
}

/// The metric with the largest recommendation (the first of cpu, memory, connections on a tie).
fn driving_metric(metrics: &[MetricReading]) -> Option<&MetricReading> {
    metrics
        .iter()
        .reduce(|best, m| if m.desired > best.desired { m } else { best })
}

/// "connections 1450/instance > target 1000", "cpu 72%/instance within tolerance 0.1 of target 70%".
fn describe(m: &MetricReading, tolerance: f64) -> String {
    let unit = if m.metric == "connections" { "" } else { "%" };
    let observed = number(m.utilisation_pct);
    let target = number(m.target);
    let ratio = m.utilisation_pct / m.target;
    let relation = if (ratio - 1.0).abs() <= tolerance {
        format!("within tolerance {tolerance} of")
    } else if ratio > 1.0 {
        ">".to_owned()
    } else {
        "<".to_owned()
    };
    format!(
        "{} {observed}{unit}/instance {relation} target {target}{unit}",
        m.metric
    )
}

/// At most one decimal, none when whole: 87.5, 70, 1450.
fn number(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// Durations in reasons as seconds ("60s", "300s"), the unit of HPA's periodSeconds.
fn seconds(duration: Duration) -> String {
    format!("{}s", number(duration.as_secs_f64()))
}

fn clamp_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
