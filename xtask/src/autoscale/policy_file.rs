//! `deploy/scaling.toml`: the autoscaling policy, one table per service. Every key is required (a typo
//! must not fall back to a default) and every problem is reported at once as
//! `scaling.toml [websocket] target_connections: <rule>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::policy::{Policy, Service, ServicePolicy};

pub const DEFAULT_POLICY: &str = "deploy/scaling.toml";

/// Every key of a service table, in the order the reference lists them.
pub const KEYS: [&str; 16] = [
    "min",
    "max",
    "cpu_limit_millicores",
    "memory_limit_mib",
    "target_cpu_pct",
    "target_memory_pct",
    "target_connections",
    "tolerance",
    "sync_period",
    "scale_up_stabilization",
    "scale_down_stabilization",
    "scale_up_max_pods",
    "scale_up_max_percent",
    "scale_up_period",
    "scale_down_max_pods",
    "scale_down_period",
];

/// Above this many replicas of one service a single Docker host is the wrong tool.
const MAX_REPLICAS: u32 = 100;
/// HPA's bounds: stabilisation windows 0–3600 s, policy periods 1–1800 s.
const MAX_WINDOW: Duration = Duration::from_secs(3600);
const MAX_PERIOD: Duration = Duration::from_secs(1800);

/// A file named on the command line: as given when it exists from the current directory, else from the
/// repository root (so `--policy deploy/scaling.toml` works from any directory of the checkout).
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        path.to_path_buf()
    } else {
        crate::project::root().join(path)
    }
}

pub fn load(path: &Path) -> anyhow::Result<Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scaling.toml".to_owned());
    parse(&name, &text).with_context(|| format!("{} is not a valid scaling policy", path.display()))
}

/// `name` is how errors call the file ("scaling.toml").
pub fn parse(name: &str, text: &str) -> anyhow::Result<Policy> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{name} is not valid TOML"))?;
    let mut problems = Vec::new();
    for key in table.keys() {
        if Service::from_name(key).is_none() {
            problems.push(format!(
                "{name} [{key}]: unknown table (tables: api, websocket)"
            ));
        }
    }
    let mut service_policy = |service: Service| -> Option<ServicePolicy> {
        let at = format!("{name} [{service}]");
        let Some(value) = table.get(service.name()) else {
            problems.push(format!("{at}: the table is required"));
            return None;
        };
        let Some(keys) = value.as_table() else {
            problems.push(format!("{at}: must be a table"));
            return None;
        };
        for key in keys.keys() {
            if !KEYS.contains(&key.as_str()) {
                problems.push(format!("{at} {key}: unknown key"));
            }
        }
        for key in KEYS {
            if !keys.contains_key(key) {
                problems.push(format!("{at} {key}: required"));
            }
        }
        if KEYS.iter().any(|key| !keys.contains_key(*key)) {
            return None;
        }
        // Unknown keys are reported above; the known ones are still checked, so one run names every
        // problem.
        let known: toml::Table = keys
            .iter()
            .filter(|(key, _)| KEYS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        match toml::Value::Table(known).try_into::<ServicePolicy>() {
            Ok(policy) => {
                problems.extend(
                    rule_problems(service, &policy)
                        .into_iter()
                        .map(|(key, rule)| format!("{at} {key}: {rule}")),
                );
                Some(policy)
            }
            Err(err) => {
                problems.push(format!("{at} {}", type_problem(&err.to_string())));
                None
            }
        }
    };
    let api = service_policy(Service::Api);
    let websocket = service_policy(Service::Websocket);
    match (api, websocket) {
        (Some(api), Some(websocket)) if problems.is_empty() => Ok(Policy { api, websocket }),
        _ => anyhow::bail!(
            "{}",
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Every broken rule of one service's table as (key, rule).
fn rule_problems(service: Service, p: &ServicePolicy) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let mut fail = |key: &'static str, rule: String| problems.push((key, rule));
    if p.min == 0 {
        fail(
            "min",
            "must be at least 1 (a service with no replica serves nobody)".to_owned(),
        );
    }
    if p.max < p.min || p.max > MAX_REPLICAS {
        fail(
            "max",
            format!("must be min ({})–{MAX_REPLICAS}, got {}", p.min, p.max),
        );
    }
    if p.cpu_limit_millicores == 0 {
        fail("cpu_limit_millicores", "must be at least 1".to_owned());
    }
    if p.memory_limit_mib == 0 {
        fail("memory_limit_mib", "must be at least 1".to_owned());
    }
    for (key, value) in [
        ("target_cpu_pct", p.target_cpu_pct),
        ("target_memory_pct", p.target_memory_pct),
    ] {
        // A share of the limit: a container cannot use more than all of it.
        if value > 100 {
            fail(
                key,
                format!("must be 0 (off) or 1–100 % of the limit, got {value}"),
            );
        }
    }
    if service == Service::Api && p.target_connections != 0 {
        fail(
            "target_connections",
            format!(
                "must be 0 for the api (it exports no connection count), got {}",
                p.target_connections
            ),
        );
    }
    if p.target_cpu_pct == 0 && p.target_memory_pct == 0 && p.target_connections == 0 {
        fail(
            "target_cpu_pct",
            "at least one of target_cpu_pct, target_memory_pct, target_connections must be on (non-zero)"
                .to_owned(),
        );
    }
    if !(0.0..1.0).contains(&p.tolerance) {
        fail(
            "tolerance",
            format!(
                "must be 0 ≤ tolerance < 1 (HPA's default is 0.1), got {}",
                p.tolerance
            ),
        );
    }
    if p.sync_period < Duration::from_secs(1) || p.sync_period > Duration::from_secs(600) {
        fail(
            "sync_period",
            format!("must be 1s–10m, got {}", shown(p.sync_period)),
        );
    }
    for (key, window) in [
        ("scale_up_stabilization", p.scale_up_stabilization),
        ("scale_down_stabilization", p.scale_down_stabilization),
    ] {
        if window > MAX_WINDOW {
            fail(
                key,
                format!("must be 0s–1h (HPA's bound), got {}", shown(window)),
            );
        }
    }
    for (key, period) in [
        ("scale_up_period", p.scale_up_period),
        ("scale_down_period", p.scale_down_period),
    ] {
        if period < Duration::from_secs(1) || period > MAX_PERIOD {
            fail(
                key,
                format!("must be 1s–30m (HPA's bound), got {}", shown(period)),
            );
        }
    }
    // The generated HorizontalPodAutoscaler counts in whole seconds.
    for (key, duration) in [
        ("sync_period", p.sync_period),
        ("scale_up_stabilization", p.scale_up_stabilization),
        ("scale_down_stabilization", p.scale_down_stabilization),
        ("scale_up_period", p.scale_up_period),
        ("scale_down_period", p.scale_down_period),
    ] {
        if duration.subsec_nanos() != 0 {
            fail(
                key,
                format!("must be whole seconds, got {}", shown(duration)),
            );
        }
    }
    if p.scale_up_max_pods == 0 && p.scale_up_max_percent == 0 {
        fail(
            "scale_up_max_pods",
            "scale_up_max_pods and scale_up_max_percent cannot both be 0 (nothing could scale up)"
                .to_owned(),
        );
    }
    if p.scale_up_max_percent > 1000 {
        fail(
            "scale_up_max_percent",
            format!("must be 0–1000, got {}", p.scale_up_max_percent),
        );
    }
    if p.scale_down_max_pods == 0 {
        fail(
            "scale_down_max_pods",
            "must be at least 1 (0 would never scale down)".to_owned(),
        );
    }
    problems
}

/// toml says `invalid type: string "two", expected u32\nin `min``; the report says `min: invalid type: …`.
fn type_problem(message: &str) -> String {
    let mut text = Vec::new();
    let mut key = None;
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line
            .strip_prefix("in `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            Some(name) => key = Some(name.to_owned()),
            None => text.push(line),
        }
    }
    match key {
        Some(key) => format!("{key}: {}", text.join(" ")),
        None => format!("(a value): {}", text.join(" ")),
    }
}

fn shown(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn committed() -> String {
        std::fs::read_to_string(crate::project::root().join(DEFAULT_POLICY)).unwrap()
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", parse("scaling.toml", text).unwrap_err())
    }

    #[test]
    fn the_committed_policy_is_valid() {
        let policy = load(&crate::project::root().join(DEFAULT_POLICY)).unwrap();
        assert_eq!(policy.api.min, 2);
        assert_eq!(policy.websocket.min, 2);
        assert_eq!(policy.api.target_connections, 0);
        assert!(policy.websocket.target_connections > 0);
    }

    #[test]
    fn every_rule_is_named_by_file_table_and_key() {
        let text = committed()
            .replacen("min = 2", "min = 0", 1)
            .replace(
                "target_connections = 30000",
                "target_connections = 0\ntarget_memory_pct_x = 1",
            )
            .replace("tolerance = 0.1", "tolerance = 1.5")
            .replace("scale_up_period = \"60s\"", "scale_up_period = \"0s\"")
            .replace("scale_down_max_pods = 1", "scale_down_max_pods = 0");
        let err = error_of(&text);
        for expected in [
            "scaling.toml [api] min: must be at least 1",
            "scaling.toml [api] tolerance: must be 0 ≤ tolerance < 1",
            "scaling.toml [websocket] tolerance: must be 0 ≤ tolerance < 1",
            "scaling.toml [api] scale_up_period: must be 1s–30m (HPA's bound), got 0s",
            "scaling.toml [api] scale_down_max_pods: must be at least 1",
            "scaling.toml [websocket] target_memory_pct_x: unknown key",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from\n{err}");
        }
    }

    #[test]
    fn missing_keys_unknown_tables_and_bad_values_are_named() {
        let text = committed().replacen("target_cpu_pct = 70\n", "", 1) + "\n[edge]\nmin = 1\n";
        let err = error_of(&text);
        assert!(
            err.contains("scaling.toml [api] target_cpu_pct: required"),
            "{err}"
        );
        assert!(err.contains("scaling.toml [edge]: unknown table"), "{err}");

        let err = error_of(&committed().replace("sync_period = \"15s\"", "sync_period = \"soon\""));
        assert!(
            err.contains("scaling.toml [api] sync_period: \"soon\" is not a duration"),
            "{err}"
        );
        let err = error_of(&committed().replacen("min = 2", "min = \"two\"", 1));
        assert!(
            err.contains("scaling.toml [api] min: invalid type: string \"two\", expected u32"),
            "{err}"
        );

        let err =
            error_of(&committed().replace("sync_period = \"15s\"", "sync_period = \"1500ms\""));
        assert!(
            err.contains("sync_period: must be whole seconds, got 1s 500ms"),
            "{err}"
        );

        let err =
            error_of(&committed().replacen("target_connections = 0", "target_connections = 5", 1));
        assert!(
            err.contains("scaling.toml [api] target_connections: must be 0 for the api"),
            "{err}"
        );
    }

    /// Per-instance utilisation is a share of these limits: the Compose stacks must run with them.
    #[test]
    fn the_compose_limits_are_the_policys() {
        let policy = load(&crate::project::root().join(DEFAULT_POLICY)).unwrap();
        for file in ["docker/compose.prod.yml", "docker/compose.offline.yml"] {
            let text = std::fs::read_to_string(crate::project::root().join(file)).unwrap();
            let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
            let limits = &docs[0]["x-hardening"]["deploy"]["resources"]["limits"];
            let cpus: f64 = limits["cpus"].as_str().unwrap().parse().unwrap();
            let memory = limits["memory"].as_str().unwrap();
            for service in Service::ALL {
                let p = policy.get(service);
                assert_eq!(
                    (cpus * 1000.0).round() as u32,
                    p.cpu_limit_millicores,
                    "{file} cpus vs [{service}] cpu_limit_millicores"
                );
                // Docker's `M` is MiB.
                assert_eq!(
                    memory,
                    format!("{}M", p.memory_limit_mib),
                    "{file} memory vs [{service}] memory_limit_mib"
                );
            }
        }
    }

    #[test]
    fn max_below_min_and_no_metric_at_all_are_refused() {
        let text = committed()
            .replacen("max = 10", "max = 1", 1)
            .replacen("target_cpu_pct = 70", "target_cpu_pct = 0", 1)
            .replacen("target_memory_pct = 80", "target_memory_pct = 0", 1);
        let err = error_of(&text);
        assert!(
            err.contains("[api] max: must be min (2)–100, got 1"),
            "{err}"
        );
        assert!(
            err.contains("[api] target_cpu_pct: at least one of"),
            "{err}"
        );
    }
}
