//! One test per rule of HPA v2's algorithm (docs/scaling.md, "Semantics").

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;

/// Two to ten replicas on CPU only (70 % of 500 m = 350 m each), no stabilisation, generous scale-up
/// (4 pods or 100 % per minute), one pod down per minute.
fn cpu_policy() -> ServicePolicy {
    ServicePolicy {
        min: 2,
        max: 10,
        cpu_limit_millicores: 500,
        memory_limit_mib: 500,
        target_cpu_pct: 70,
        target_memory_pct: 0,
        target_connections: 0,
        tolerance: 0.1,
        sync_period: Duration::from_secs(15),
        scale_up_stabilization: Duration::ZERO,
        scale_down_stabilization: Duration::ZERO,
        scale_up_max_pods: 4,
        scale_up_max_percent: 100,
        scale_up_period: Duration::from_secs(60),
        scale_down_max_pods: 1,
        scale_down_period: Duration::from_secs(60),
    }
}

fn cpu(millicores: f64) -> Demand {
    Demand {
        cpu_millicores: millicores,
        ..Demand::default()
    }
}

fn scaler(policy: ServicePolicy) -> Scaler {
    Scaler::new(Service::Websocket, policy)
}

#[test]
fn desired_is_ceil_of_current_times_observed_over_target() {
    // 3 replicas using 1575 m: 105 % of the limit each, 1.5 × the 70 % target → ceil(4.5) = 5.
    let decision = scaler(cpu_policy()).evaluate(0.0, 3, &cpu(1575.0));
    assert_eq!((decision.from, decision.to), (3, 5));
    assert_eq!(decision.reason, "cpu 105%/instance > target 70%: desired 5");
    assert_eq!(decision.metrics.len(), 1);
    assert_eq!(decision.metrics[0].metric, "cpu");
    assert!((decision.metrics[0].utilisation_pct - 105.0).abs() < 1e-9);
    assert_eq!(decision.metrics[0].desired, 5);
}

#[test]
fn an_exact_multiple_of_the_target_is_not_rounded_up_by_float_noise() {
    // 1400 m over 2 replicas = 140 % = exactly 2 × 70 %: 4 replicas, not 5.
    let decision = scaler(cpu_policy()).evaluate(0.0, 2, &cpu(1400.0));
    assert_eq!(decision.to, 4);
}

#[test]
fn no_change_within_the_tolerance() {
    // 2 replicas at 76 % (ratio 1.086) and at 64 % (0.914): both within 0.1 of the target.
    for demand in [760.0, 640.0] {
        let decision = scaler(cpu_policy()).evaluate(0.0, 2, &cpu(demand));
        assert_eq!(decision.to, 2, "{}", decision.reason);
        assert!(
            decision
                .reason
                .contains("within tolerance 0.1 of target 70%"),
            "{}",
            decision.reason
        );
    }
    // Just outside: 78.4 % is 1.12 × the target → ceil(2.24) = 3.
    assert_eq!(scaler(cpu_policy()).evaluate(0.0, 2, &cpu(784.0)).to, 3);
}

#[test]
fn the_largest_recommendation_across_metrics_wins_and_is_named() {
    let mut policy = cpu_policy();
    policy.target_connections = 1000;
    policy.target_memory_pct = 80;
    let demand = Demand {
        cpu_millicores: 1000.0, // 100 % each of 2 → ceil(2 × 1.43) = 3
        memory_mib: 400.0,      // 40 % each → 1
        connections: 4500.0,    // 2250 each → ceil(4.5) = 5
    };
    let decision = scaler(policy).evaluate(0.0, 2, &demand);
    assert_eq!(decision.to, 5);
    let desired: Vec<(&str, u32)> = decision
        .metrics
        .iter()
        .map(|m| (m.metric, m.desired))
        .collect();
    assert_eq!(desired, [("cpu", 3), ("memory", 1), ("connections", 5)]);
    assert!(
        decision
            .reason
            .starts_with("connections 2250/instance > target 1000: desired 5"),
        "{}",
        decision.reason
    );
}

#[test]
fn a_metric_within_tolerance_still_holds_the_count_against_a_lower_one() {
    // HPA: a metric within tolerance recommends the current count, and the largest wins, so a quiet
    // memory reading cannot scale down a service whose CPU is on target.
    let mut policy = cpu_policy();
    policy.target_memory_pct = 80;
    let demand = Demand {
        cpu_millicores: 1050.0, // 70 % each of 3: on target
        memory_mib: 100.0,
        connections: 0.0,
    };
    assert_eq!(scaler(policy).evaluate(0.0, 3, &demand).to, 3);
}

#[test]
fn a_target_of_zero_turns_the_metric_off() {
    let demand = Demand {
        cpu_millicores: 700.0,
        memory_mib: 5000.0,
        connections: 1e6,
    };
    let decision = scaler(cpu_policy()).evaluate(0.0, 2, &demand);
    assert_eq!(decision.to, 2);
    assert_eq!(decision.metrics.len(), 1, "only cpu is on");
}

#[test]
fn scale_up_takes_the_larger_of_the_pods_and_percent_allowances() {
    let mut policy = cpu_policy();
    policy.scale_up_max_pods = 2;
    // From 2: pods allow 4, 100 % allows 4 — a tie is reported as the pods rule.
    let decision = scaler(policy.clone()).evaluate(0.0, 2, &cpu(3500.0));
    assert_eq!(decision.to, 4);
    assert!(
        decision
            .reason
            .ends_with("desired 10, limited to 4 by scale_up_max_pods=2 per 60s"),
        "{}",
        decision.reason
    );
    // From 3: pods allow 5, 100 % allows 6.
    let decision = scaler(policy.clone()).evaluate(0.0, 3, &cpu(3500.0));
    assert_eq!(decision.to, 6);
    assert!(
        decision
            .reason
            .ends_with("limited to 6 by scale_up_max_percent=100 per 60s"),
        "{}",
        decision.reason
    );
    // The percent allowance is rounded up: 3 × 110 % = 3.3 → 4.
    policy.scale_up_max_pods = 0;
    policy.scale_up_max_percent = 10;
    assert_eq!(scaler(policy.clone()).evaluate(0.0, 3, &cpu(3500.0)).to, 4);
    // … in integers: 10 × 110 % is 11, not 12.
    policy.max = 20;
    assert_eq!(scaler(policy).evaluate(0.0, 10, &cpu(7000.0)).to, 11);
}

#[test]
fn scale_up_is_counted_from_the_replicas_at_the_start_of_the_period() {
    let mut policy = cpu_policy();
    policy.scale_up_max_pods = 2;
    policy.scale_up_max_percent = 0;
    let mut s = scaler(policy);
    assert_eq!(s.evaluate(0.0, 2, &cpu(3500.0)).to, 4);
    // Still within the minute that started at 2 replicas: nothing more.
    let held = s.evaluate(30.0, 4, &cpu(3500.0));
    assert_eq!(held.to, 4);
    assert!(
        held.reason
            .ends_with("limited to 4 by scale_up_max_pods=2 per 60s"),
        "{}",
        held.reason
    );
    // An event exactly one period old no longer counts (HPA: strictly after the cutoff).
    assert_eq!(s.evaluate(60.0, 4, &cpu(3500.0)).to, 6);
}

#[test]
fn the_reason_names_the_metric_and_the_limit() {
    let mut policy = cpu_policy();
    policy.target_cpu_pct = 0;
    policy.target_connections = 1000;
    policy.scale_up_max_pods = 2;
    let mut s = scaler(policy);
    assert_eq!(
        s.evaluate(
            0.0,
            2,
            &Demand {
                connections: 2900.0,
                ..Demand::default()
            }
        )
        .to,
        3
    );
    let decision = s.evaluate(
        15.0,
        3,
        &Demand {
            connections: 4350.0,
            ..Demand::default()
        },
    );
    assert_eq!(
        decision.reason,
        "connections 1450/instance > target 1000: desired 5, limited to 4 by scale_up_max_pods=2 per 60s"
    );
}

#[test]
fn scale_down_is_limited_to_its_pods_allowance_per_period() {
    let mut s = scaler(cpu_policy());
    let first = s.evaluate(0.0, 6, &cpu(100.0));
    assert_eq!(first.to, 5);
    assert!(
        first
            .reason
            .ends_with("desired 1, limited to 5 by scale_down_max_pods=1 per 60s"),
        "{}",
        first.reason
    );
    assert_eq!(s.evaluate(30.0, 5, &cpu(100.0)).to, 5);
    assert_eq!(s.evaluate(60.0, 5, &cpu(100.0)).to, 4);
}

#[test]
fn scale_down_goes_only_to_the_highest_recommendation_of_the_window() {
    let mut policy = cpu_policy();
    policy.scale_down_stabilization = Duration::from_secs(300);
    policy.scale_down_max_pods = 10;
    let mut s = scaler(policy);
    // At t=0 the load wants 5; then it drops to wanting 2.
    assert_eq!(s.evaluate(0.0, 5, &cpu(1750.0)).to, 5);
    let held = s.evaluate(15.0, 5, &cpu(600.0));
    assert_eq!(held.to, 5);
    assert!(
        held.reason.ends_with(
            "desired 2, held at 5 by scale_down_stabilization=300s (highest recommendation in window)"
        ),
        "{}",
        held.reason
    );
    // A middling recommendation at t=100 (3) outlives the one of t=0.
    assert_eq!(s.evaluate(100.0, 5, &cpu(1000.0)).to, 5);
    assert_eq!(s.evaluate(299.0, 5, &cpu(600.0)).to, 5);
    let down = s.evaluate(300.0, 5, &cpu(600.0));
    assert_eq!(down.to, 3, "{}", down.reason);
    assert_eq!(s.evaluate(400.0, 3, &cpu(600.0)).to, 2);
}

#[test]
fn scale_up_goes_only_to_the_lowest_recommendation_of_its_window() {
    let mut policy = cpu_policy();
    policy.scale_up_stabilization = Duration::from_secs(60);
    let mut s = scaler(policy.clone());
    assert_eq!(s.evaluate(0.0, 2, &cpu(700.0)).to, 2);
    let held = s.evaluate(15.0, 2, &cpu(1750.0));
    assert_eq!(held.to, 2);
    assert!(
        held.reason.ends_with(
            "desired 5, held at 2 by scale_up_stabilization=60s (lowest recommendation in window)"
        ),
        "{}",
        held.reason
    );
    assert_eq!(s.evaluate(60.0, 2, &cpu(1750.0)).to, 5);
    // 0 s: immediate.
    policy.scale_up_stabilization = Duration::ZERO;
    let mut s = scaler(policy);
    assert_eq!(s.evaluate(0.0, 2, &cpu(700.0)).to, 2);
    assert_eq!(s.evaluate(15.0, 2, &cpu(1750.0)).to, 5);
}

#[test]
fn the_result_is_clamped_to_min_and_max() {
    let mut policy = cpu_policy();
    policy.scale_up_max_percent = 1000;
    let up = scaler(policy.clone()).evaluate(0.0, 4, &cpu(50_000.0));
    assert_eq!(up.to, 10);
    assert!(
        up.reason.ends_with("limited to 10 by max=10"),
        "{}",
        up.reason
    );
    policy.scale_down_max_pods = 10;
    let down = scaler(policy).evaluate(0.0, 4, &cpu(0.0));
    assert_eq!(down.to, 2);
    assert!(
        down.reason.ends_with("desired 0, limited to 2 by min=2"),
        "{}",
        down.reason
    );
}

#[test]
fn replicas_outside_min_and_max_go_to_the_bound_at_once() {
    let below = scaler(cpu_policy()).evaluate(0.0, 0, &cpu(0.0));
    assert_eq!(
        (below.to, below.reason.as_str()),
        (2, "current 0 below min=2")
    );
    assert!(below.metrics.is_empty(), "no replicas to divide by");
    // Above max: straight to max, whatever the rate limit (HPA applies none here).
    let above = scaler(cpu_policy()).evaluate(0.0, 14, &cpu(100_000.0));
    assert_eq!(
        (above.to, above.reason.as_str()),
        (10, "current 14 above max=10")
    );
}

#[test]
fn an_unusable_figure_leaves_the_count_alone() {
    let decision = scaler(cpu_policy()).evaluate(0.0, 3, &cpu(f64::NAN));
    assert_eq!(decision.to, 3);
    assert_eq!(decision.reason, "no usable metric: replicas unchanged");
}

#[test]
fn a_persisted_scaler_decides_as_if_it_had_never_stopped() {
    let mut policy = cpu_policy();
    policy.scale_down_stabilization = Duration::from_secs(300);
    let demands = [1750.0, 300.0, 300.0, 2500.0, 300.0, 300.0, 300.0];
    let mut kept = scaler(policy.clone());
    let mut reloaded = scaler(policy);
    let (mut a, mut b) = (2, 2);
    for (i, demand) in demands.iter().enumerate() {
        let now = i as f64 * 100.0;
        a = kept.evaluate(now, a, &cpu(*demand)).to;
        let json = serde_json::to_string(&reloaded).unwrap();
        reloaded = serde_json::from_str(&json).unwrap();
        b = reloaded.evaluate(now, b, &cpu(*demand)).to;
        assert_eq!(a, b, "step {i}");
    }
}

#[test]
fn a_decision_not_applied_does_not_count_against_the_rate_limit() {
    let mut policy = cpu_policy();
    policy.scale_up_max_pods = 2;
    policy.scale_up_max_percent = 0;
    let mut s = scaler(policy);
    let decision = s.evaluate(0.0, 2, &cpu(3500.0));
    assert_eq!(decision.to, 4);
    s.not_applied(&decision);
    // Still 2 replicas (a dry run): the next tick may again add two, no more.
    assert_eq!(s.evaluate(15.0, 2, &cpu(3500.0)).to, 4);
}
