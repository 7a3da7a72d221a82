//! Properties of the engine over arbitrary policies and traces (proptest): the count never leaves
//! [min, max], nothing changes within the tolerance, a scale-down never goes below the highest
//! recommendation of its window, and the per-period rate limits hold over the whole trace. Each is
//! checked against bookkeeping kept here, from the decisions alone.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn policies() -> impl Strategy<Value = ServicePolicy> {
    (
        (1u32..5, 0u32..15, 100u32..2000, 100u32..2000),
        (0u32..=100, 0u32..=100, 0u32..3000, 0.0f64..0.5),
        (0u64..600, 0u64..600, 1u64..300, 1u64..300),
        (0u32..5, 0u32..200, 1u32..5),
    )
        .prop_filter(
            "some metric on, some way up",
            |((..), (cpu, mem, conn, _), _, (up_pods, up_pct, _))| {
                (*cpu > 0 || *mem > 0 || *conn > 0) && (*up_pods > 0 || *up_pct > 0)
            },
        )
        .prop_map(
            |(
                (min, extra, cpu_limit, mem_limit),
                (target_cpu, target_mem, target_conn, tolerance),
                (up_window, down_window, up_period, down_period),
                (up_pods, up_pct, down_pods),
            )| ServicePolicy {
                min,
                max: min + extra,
                cpu_limit_millicores: cpu_limit,
                memory_limit_mib: mem_limit,
                target_cpu_pct: target_cpu,
                target_memory_pct: target_mem,
                target_connections: target_conn,
                tolerance,
                sync_period: Duration::from_secs(15),
                scale_up_stabilization: Duration::from_secs(up_window),
                scale_down_stabilization: Duration::from_secs(down_window),
                scale_up_max_pods: up_pods,
                scale_up_max_percent: up_pct,
                scale_up_period: Duration::from_secs(up_period),
                scale_down_max_pods: down_pods,
                scale_down_period: Duration::from_secs(down_period),
            },
        )
}

/// (seconds since the previous row, demand): steps of 0–90 s, demand from idle to far past any target.
fn traces() -> impl Strategy<Value = Vec<(u32, Demand)>> {
    prop::collection::vec(
        (
            0u32..90,
            0.0f64..40_000.0,
            0.0f64..40_000.0,
            0.0f64..60_000.0,
        )
            .prop_map(|(dt, cpu, mem, conn)| {
                (
                    dt,
                    Demand {
                        cpu_millicores: cpu,
                        memory_mib: mem,
                        connections: conn,
                    },
                )
            }),
        1..80,
    )
}

struct Step {
    t: f64,
    decision: Decision,
}

/// Replays the trace, applying every decision, from `start` replicas.
fn replay(policy: &ServicePolicy, start: u32, trace: &[(u32, Demand)]) -> Vec<Step> {
    let mut scaler = Scaler::new(Service::Api, policy.clone());
    let mut current = start;
    let mut t = 0.0;
    trace
        .iter()
        .map(|(dt, demand)| {
            t += f64::from(*dt);
            let decision = scaler.evaluate(t, current, demand);
            current = decision.to;
            Step { t, decision }
        })
        .collect()
}

fn in_range(policy: &ServicePolicy, replicas: u32) -> bool {
    (policy.min..=policy.max).contains(&replicas)
}

/// Replicas added (positive) or removed (negative) by the steps strictly after `cutoff` and before
/// step `i`.
fn net_change_since(steps: &[Step], i: usize, cutoff: f64) -> (i64, i64) {
    let mut added = 0;
    let mut removed = 0;
    for step in steps[..i].iter().filter(|s| s.t > cutoff) {
        let (from, to) = (i64::from(step.decision.from), i64::from(step.decision.to));
        if to > from {
            added += to - from;
        } else {
            removed += from - to;
        }
    }
    (added, removed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replicas_never_leave_min_max(policy in policies(), start in 0u32..30, trace in traces()) {
        for step in replay(&policy, start, &trace) {
            prop_assert!(in_range(&policy, step.decision.to), "{:?}", step.decision);
        }
    }

    #[test]
    fn nothing_changes_within_the_tolerance(
        policy in policies(),
        replicas in 1u32..20,
        factors in prop::collection::vec(-0.99f64..0.99, 3),
        t in 0.0f64..10_000.0,
    ) {
        let current = replicas.clamp(policy.min, policy.max);
        let n = f64::from(current);
        // Every metric within tolerance × 0.99 of its target, per instance.
        let at = |target: f64, factor: f64| target * n * (1.0 + factor * policy.tolerance);
        let demand = Demand {
            cpu_millicores: at(f64::from(policy.target_cpu_pct) / 100.0 * f64::from(policy.cpu_limit_millicores), factors[0]),
            memory_mib: at(f64::from(policy.target_memory_pct) / 100.0 * f64::from(policy.memory_limit_mib), factors[1]),
            connections: at(f64::from(policy.target_connections), factors[2]),
        };
        let decision = Scaler::new(Service::Api, policy.clone()).evaluate(t, current, &demand);
        prop_assert_eq!(decision.to, current, "{}", decision.reason);
    }

    #[test]
    fn a_scale_down_never_goes_below_the_windows_highest_recommendation(
        policy in policies(), start in 0u32..30, trace in traces(),
    ) {
        let steps = replay(&policy, start, &trace);
        let window = policy.scale_down_stabilization.as_secs_f64();
        // The unstabilised recommendation of each in-range step: its largest metric recommendation.
        let recommendation = |s: &Step| -> Option<u32> {
            if !in_range(&policy, s.decision.from) {
                return None;
            }
            s.decision.metrics.iter().map(|m| m.desired).max()
        };
        for (i, step) in steps.iter().enumerate() {
            let d = &step.decision;
            if !(d.to < d.from && in_range(&policy, d.from)) {
                continue;
            }
            let highest = steps[..=i]
                .iter()
                .filter(|s| s.t > step.t - window || std::ptr::eq(*s, step))
                .filter_map(recommendation)
                .max()
                .unwrap();
            prop_assert!(d.to >= highest.min(policy.max), "{d:?} below {highest}");
        }
    }

    #[test]
    fn the_rate_limits_hold_over_any_trace(
        policy in policies(), start in 0u32..30, trace in traces(),
    ) {
        let steps = replay(&policy, start, &trace);
        for (i, step) in steps.iter().enumerate() {
            let d = &step.decision;
            if !in_range(&policy, d.from) || d.to == d.from {
                continue; // corrections into [min, max] are not rate limited (HPA neither)
            }
            let from = i64::from(d.from);
            let to = i64::from(d.to);
            if to > from {
                let (added, removed) = net_change_since(&steps, i, step.t - policy.scale_up_period.as_secs_f64());
                let period_start = (from - added + removed).max(0);
                let by_pods = if policy.scale_up_max_pods > 0 { period_start + i64::from(policy.scale_up_max_pods) } else { 0 };
                let by_percent = (period_start * (100 + i64::from(policy.scale_up_max_percent)) + 99) / 100;
                let by_percent = if policy.scale_up_max_percent > 0 { by_percent } else { 0 };
                prop_assert!(to <= by_pods.max(by_percent), "{d:?}: period began at {period_start}");
            } else {
                let (added, removed) = net_change_since(&steps, i, step.t - policy.scale_down_period.as_secs_f64());
                let period_start = from - added + removed;
                prop_assert!(
                    to >= period_start - i64::from(policy.scale_down_max_pods),
                    "{d:?}: period began at {period_start}"
                );
            }
        }
    }
}
