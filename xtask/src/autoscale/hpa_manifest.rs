//! k8s/base/hpa.yaml generated from `deploy/scaling.toml`, so the cluster scales by the policy the
//! Compose autoscaler and the simulator run. `cargo xtask k8s hpa --write` writes it; `cargo xtask k8s
//! check` fails when the committed file differs from [`render`].
//!
//! The policy's targets are shares of the container LIMIT (what `docker stats` measures against on the
//! Compose stack), while an HPA `Utilization` target is a share of the REQUEST. So CPU and memory are
//! rendered as `AverageValue` targets — limit × target % per pod — which mean the same thing on both
//! engines whatever the requests are. Connections are a `Pods` metric on the game server's
//! `ws_connections` gauge, which the cluster serves through the custom metrics API (prometheus-adapter;
//! the rule is in the generated file's header and in docs/scaling.md).

use std::fmt::Write as _;
use std::time::Duration;

use super::policy::{Policy, Service, ServicePolicy};

/// Where the generated manifests live, relative to the repository root.
pub const PATH: &str = "k8s/base/hpa.yaml";
/// The Prometheus gauge of open Socket.IO connections per game-server instance
/// (services/websocket/src/metrics.rs).
pub const CONNECTIONS_METRIC: &str = "ws_connections";

const HEADER: &str = "\
# GENERATED from deploy/scaling.toml by `cargo xtask k8s hpa --write` — edit the policy, not this file;
# `cargo xtask k8s check` fails when the two differ (docs/scaling.md, \"Kubernetes\").
#
# CPU and memory targets are AverageValue = the policy's limit × target %, because the policy's targets
# are shares of the container limit (the Compose stack's `docker stats`) and an HPA Utilization target
# would be a share of the request. Rate limits: scaleUp takes the larger of the Pods and Percent policies
# (selectPolicy: Max), as the Compose autoscaler does.
#
# The websocket's `ws_connections` Pods metric needs the custom metrics API: Prometheus scraping the
# pods' /metrics (port http) and prometheus-adapter exposing the gauge per pod, e.g.
#   rules:
#     - seriesQuery: 'ws_connections{namespace!=\"\",pod!=\"\"}'
#       resources:
#         overrides:
#           namespace: {resource: namespace}
#           pod: {resource: pod}
#       metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
# (KEDA's prometheus scaler is the alternative; it owns its own HPA, so drop the one below if you use it.)
# Without the adapter the connections metric errors: HPA still scales UP on CPU and memory but skips
# every scale-down while a metric fails. Overlays may patch minReplicas/maxReplicas per environment.
";

/// The Deployment each service's HPA scales.
fn deployment(service: Service) -> &'static str {
    match service {
        Service::Api => "avalon-api",
        Service::Websocket => "avalon-websocket",
    }
}

pub fn render(policy: &Policy) -> String {
    let mut out = HEADER.to_owned();
    for (i, service) in Service::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        render_one(&mut out, service, policy.get(service));
    }
    out
}

fn render_one(out: &mut String, service: Service, p: &ServicePolicy) {
    let name = deployment(service);
    // `write!` to a String cannot fail.
    let _ = write!(
        out,
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: {min}
  maxReplicas: {max}
  metrics:
",
        min = p.min,
        max = p.max,
    );
    if p.target_cpu_pct > 0 {
        let millicores = u64::from(p.cpu_limit_millicores) * u64::from(p.target_cpu_pct) / 100;
        resource_metric(out, "cpu", &format!("{millicores}m"));
    }
    if p.target_memory_pct > 0 {
        let kib = u64::from(p.memory_limit_mib) * 1024 * u64::from(p.target_memory_pct) / 100;
        let quantity = if kib % 1024 == 0 {
            format!("{}Mi", kib / 1024)
        } else {
            format!("{kib}Ki")
        };
        resource_metric(out, "memory", &quantity);
    }
    if p.target_connections > 0 {
        let _ = write!(
            out,
            "    - type: Pods
      pods:
        metric:
          name: {CONNECTIONS_METRIC}
        target:
          type: AverageValue
          averageValue: \"{}\"
",
            p.target_connections
        );
    }
    let _ = write!(
        out,
        "  behavior:
    scaleUp:
      stabilizationWindowSeconds: {up_window}
      selectPolicy: Max
      policies:
",
        up_window = seconds(p.scale_up_stabilization),
    );
    if p.scale_up_max_pods > 0 {
        scaling_policy(out, "Pods", p.scale_up_max_pods, p.scale_up_period);
    }
    if p.scale_up_max_percent > 0 {
        scaling_policy(out, "Percent", p.scale_up_max_percent, p.scale_up_period);
    }
    let _ = write!(
        out,
        "    scaleDown:
      stabilizationWindowSeconds: {down_window}
      selectPolicy: Max
      policies:
",
        down_window = seconds(p.scale_down_stabilization),
    );
    scaling_policy(out, "Pods", p.scale_down_max_pods, p.scale_down_period);
    // HPA's own tolerance is a controller flag (--horizontal-pod-autoscaler-tolerance, 0.1), not part of
    // this object; sync_period likewise (--horizontal-pod-autoscaler-sync-period, 15s).
}

/// The Deployment manifest of each service, relative to the repository root.
pub fn deployment_manifest(service: Service) -> &'static str {
    match service {
        Service::Api => "k8s/base/api.yaml",
        Service::Websocket => "k8s/base/websocket.yaml",
    }
}

/// Where a Deployment's container limits are not the policy's: the AverageValue targets are computed
/// from the policy's limits, so the two must agree. `manifest` is the text of
/// [`deployment_manifest`].
pub fn limit_mismatches(service: Service, p: &ServicePolicy, manifest: &str) -> Vec<String> {
    let file = deployment_manifest(service);
    let docs = match yaml_rust2::YamlLoader::load_from_str(manifest) {
        Ok(docs) => docs,
        Err(err) => return vec![format!("{file}: not YAML: {err}")],
    };
    let Some(deployment) = docs
        .iter()
        .find(|doc| doc["kind"].as_str() == Some("Deployment"))
    else {
        return vec![format!("{file}: no Deployment")];
    };
    let limits = &deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"];
    let mut mismatches = Vec::new();
    for (resource, expected, key) in [
        (
            "cpu",
            format!("{}m", p.cpu_limit_millicores),
            "cpu_limit_millicores",
        ),
        (
            "memory",
            format!("{}Mi", p.memory_limit_mib),
            "memory_limit_mib",
        ),
    ] {
        let found = limits[resource].as_str().unwrap_or("(none)");
        if found != expected {
            mismatches.push(format!(
                "{file}: the {resource} limit is {found}, but scaling.toml [{service}] {key} says {expected}"
            ));
        }
    }
    mismatches
}

fn resource_metric(out: &mut String, name: &str, average: &str) {
    let _ = write!(
        out,
        "    - type: Resource
      resource:
        name: {name}
        target:
          type: AverageValue
          averageValue: {average}
"
    );
}

fn scaling_policy(out: &mut String, kind: &str, value: u32, period: Duration) {
    let _ = write!(
        out,
        "        - type: {kind}
          value: {value}
          periodSeconds: {}
",
        seconds(period)
    );
}

fn seconds(duration: Duration) -> u64 {
    duration.as_secs()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::autoscale::policy_file;

    fn committed_policy() -> Policy {
        policy_file::load(&crate::project::root().join(policy_file::DEFAULT_POLICY)).unwrap()
    }

    #[test]
    fn the_committed_manifests_are_what_the_policy_generates() {
        let committed = std::fs::read_to_string(crate::project::root().join(PATH)).unwrap();
        assert!(
            committed == render(&committed_policy()),
            "{PATH} is stale: run `cargo xtask k8s hpa --write`"
        );
    }

    #[test]
    fn targets_are_shares_of_the_limit_and_connections_a_pods_metric() {
        let text = render(&committed_policy());
        let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
        assert_eq!(docs.len(), 2);
        let ws = &docs[1];
        assert_eq!(ws["metadata"]["name"].as_str(), Some("avalon-websocket"));
        let metrics = ws["spec"]["metrics"].as_vec().unwrap();
        assert_eq!(metrics[0]["resource"]["name"].as_str(), Some("cpu"));
        assert_eq!(
            metrics[0]["resource"]["target"]["averageValue"].as_str(),
            Some("350m")
        );
        assert_eq!(
            metrics[1]["resource"]["target"]["averageValue"].as_str(),
            Some("400Mi")
        );
        assert_eq!(
            metrics[2]["pods"]["metric"]["name"].as_str(),
            Some(CONNECTIONS_METRIC)
        );
        assert_eq!(
            metrics[2]["pods"]["target"]["averageValue"].as_str(),
            Some("30000")
        );
        let down = &ws["spec"]["behavior"]["scaleDown"];
        assert_eq!(down["stabilizationWindowSeconds"].as_i64(), Some(300));
        assert_eq!(down["policies"][0]["value"].as_i64(), Some(1));
        let up = &ws["spec"]["behavior"]["scaleUp"]["policies"];
        assert_eq!(up[0]["type"].as_str(), Some("Pods"));
        assert_eq!(up[1]["type"].as_str(), Some("Percent"));
        assert_eq!(up[1]["periodSeconds"].as_i64(), Some(60));
        // The api has no connections metric (target 0 = off).
        let api_metrics = docs[0]["spec"]["metrics"].as_vec().unwrap();
        assert_eq!(api_metrics.len(), 2);
    }

    #[test]
    fn the_deployments_limits_are_the_policys() {
        let policy = committed_policy();
        for service in Service::ALL {
            let text =
                std::fs::read_to_string(crate::project::root().join(deployment_manifest(service)))
                    .unwrap();
            assert_eq!(
                limit_mismatches(service, policy.get(service), &text),
                Vec::<String>::new()
            );
            let changed = text.replacen("cpu: 500m", "cpu: 750m", 1);
            assert_eq!(
                limit_mismatches(service, policy.get(service), &changed),
                [format!(
                    "{}: the cpu limit is 750m, but scaling.toml [{service}] cpu_limit_millicores says 500m",
                    deployment_manifest(service)
                )]
            );
        }
    }

    #[test]
    fn a_metric_or_policy_set_to_zero_is_left_out_and_odd_memory_is_in_kib() {
        let mut policy = committed_policy();
        policy.api.target_memory_pct = 75;
        policy.api.memory_limit_mib = 333;
        policy.api.target_cpu_pct = 0;
        policy.api.scale_up_max_pods = 0;
        let text = render(&policy);
        let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
        let metrics = docs[0]["spec"]["metrics"].as_vec().unwrap();
        assert_eq!(metrics.len(), 1);
        // 333 MiB × 75 % = 255744 KiB (249.75 MiB).
        assert_eq!(
            metrics[0]["resource"]["target"]["averageValue"].as_str(),
            Some("255744Ki")
        );
        let up = docs[0]["spec"]["behavior"]["scaleUp"]["policies"]
            .as_vec()
            .unwrap();
        assert_eq!(up.len(), 1);
        assert_eq!(up[0]["type"].as_str(), Some("Percent"));
    }
}
