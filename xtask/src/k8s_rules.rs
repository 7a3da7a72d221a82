//! The house rules a rendered overlay must keep beyond its schema — the guarantees the Compose edge gives,
//! held on Kubernetes too:
//! - the Ingress exposes only what players use (`/api/`, `/socket.io/`, `/health`): `/metrics`, `/livez`,
//!   `/readyz` stay inside the cluster, as the Compose edge keeps `/metrics` internal;
//! - every Ingress terminates TLS (staging included: WeChat mini-programs only talk HTTPS);
//! - every avalon tier has a NetworkPolicy selecting its pods;
//! - a pod's grace period covers its preStop pause and the runtime's drain (SHUTDOWN_DRAIN_DELAY +
//!   SHUTDOWN_TIMEOUT), or the kubelet kills a draining game server mid-drain;
//! - a non-root container can read the secret files it mounts: the kubelet writes them as root, group
//!   `fsGroup` (root without one), with the volume's mode — a 0440 Secret without `fsGroup` is unreadable,
//!   and the service exits at start-up on a cluster though every schema and validator passes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use yaml_rust2::{Yaml, YamlLoader};

/// The only paths the Ingress may route: the public API, the game's Socket.IO endpoint and the health alias.
pub const PUBLIC_PATHS: [&str; 3] = ["/api/", "/socket.io/", "/health"];

/// Every broken rule of one rendered overlay, each naming the resource.
pub fn check_rendered(rendered: &str) -> anyhow::Result<Vec<String>> {
    let documents =
        YamlLoader::load_from_str(rendered).context("the rendered overlay is not YAML")?;
    let mut problems = Vec::new();
    let config = config_values(&documents);
    let mut tiers = Vec::new();
    let mut selected = Vec::new();
    for document in &documents {
        let name = document["metadata"]["name"].as_str().unwrap_or("(unnamed)");
        match document["kind"].as_str() {
            Some("Ingress") => problems.extend(ingress_problems(name, document)),
            Some("NetworkPolicy") => {
                if let Some(labels) = document["spec"]["podSelector"]["matchLabels"].as_hash() {
                    selected.push(labels.clone());
                }
            }
            Some("Deployment" | "StatefulSet") => {
                let template = &document["spec"]["template"];
                if let Some(labels) = template["metadata"]["labels"].as_hash() {
                    tiers.push((name.to_owned(), labels.clone()));
                }
                problems.extend(grace_problems(name, &template["spec"], &config));
                problems.extend(secret_read_problems(name, &template["spec"]));
            }
            _ => {}
        }
    }
    for (name, labels) in &tiers {
        let covered = selected.iter().any(|selector| {
            selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
        });
        if !covered {
            problems.push(format!(
                "{name}: no NetworkPolicy selects its pods (every tier needs one)"
            ));
        }
    }
    Ok(problems)
}

fn ingress_problems(name: &str, ingress: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    if ingress["spec"]["tls"].as_vec().is_none_or(Vec::is_empty) {
        problems.push(format!("Ingress {name}: no TLS (spec.tls is empty)"));
    }
    for rule in ingress["spec"]["rules"].as_vec().into_iter().flatten() {
        for path in rule["http"]["paths"].as_vec().into_iter().flatten() {
            let value = path["path"].as_str().unwrap_or("(none)");
            if !PUBLIC_PATHS.contains(&value) {
                problems.push(format!(
                    "Ingress {name}: routes {value:?}; only {} may be public (it would expose /metrics, /livez, /readyz)",
                    PUBLIC_PATHS.join(", ")
                ));
            }
        }
    }
    problems
}

/// The pod's `terminationGracePeriodSeconds` must exceed preStop sleep + drain delay + shutdown timeout.
fn grace_problems(
    name: &str,
    pod: &Yaml,
    config: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
    let mut problems = Vec::new();
    for container in pod["containers"].as_vec().into_iter().flatten() {
        let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_i64()
            .unwrap_or(0);
        let setting = |var: &str, default: &str| -> Duration {
            let from_env = container["env"]
                .as_vec()
                .into_iter()
                .flatten()
                .find(|entry| entry["name"].as_str() == Some(var))
                .and_then(|entry| entry["value"].as_str().map(str::to_owned));
            let from_maps = container["envFrom"]
                .as_vec()
                .into_iter()
                .flatten()
                .filter_map(|source| config.get(source["configMapRef"]["name"].as_str()?))
                .find_map(|data| data.get(var).cloned());
            let text = from_env.or(from_maps).unwrap_or_else(|| default.to_owned());
            humantime::parse_duration(&text).unwrap_or_default()
        };
        let drain = setting("SHUTDOWN_DRAIN_DELAY", "5s") + setting("SHUTDOWN_TIMEOUT", "20s");
        let needed = u64::try_from(pre_stop).unwrap_or(0) + drain.as_secs();
        if u64::try_from(grace).unwrap_or(0) <= needed {
            problems.push(format!(
                "{name}: terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop}s + SHUTDOWN_DRAIN_DELAY + SHUTDOWN_TIMEOUT ({needed}s)"
            ));
        }
    }
    problems
}

/// Every secret volume a non-root container mounts must be readable by it: by others, or by the group
/// when the pod sets `fsGroup` (the kubelet gives the files that group).
fn secret_read_problems(name: &str, pod: &Yaml) -> Vec<String> {
    let pod_context = &pod["securityContext"];
    let fs_group = pod_context["fsGroup"].as_i64();
    let mut problems = Vec::new();
    for volume in pod["volumes"].as_vec().into_iter().flatten() {
        let secret = &volume["secret"];
        if secret.is_badvalue() {
            continue;
        }
        let volume_name = volume["name"].as_str().unwrap_or("(unnamed)");
        // The API's default mode is 0644; an item's own mode wins for that file.
        let default_mode = secret["defaultMode"].as_i64().unwrap_or(0o644);
        let modes: Vec<i64> = std::iter::once(default_mode)
            .chain(
                secret["items"]
                    .as_vec()
                    .into_iter()
                    .flatten()
                    .filter_map(|item| item["mode"].as_i64()),
            )
            .collect();
        for container in pod["containers"].as_vec().into_iter().flatten() {
            let mounts = container["volumeMounts"]
                .as_vec()
                .into_iter()
                .flatten()
                .any(|mount| mount["name"].as_str() == Some(volume_name));
            let context = &container["securityContext"];
            let uid = context["runAsUser"]
                .as_i64()
                .or_else(|| pod_context["runAsUser"].as_i64());
            let gid = context["runAsGroup"]
                .as_i64()
                .or_else(|| pod_context["runAsGroup"].as_i64());
            if !mounts || uid == Some(0) {
                continue;
            }
            // Files are root:<fsGroup>, or root:root without one.
            let owning_group = fs_group.unwrap_or(0);
            let in_group = fs_group.is_some() || gid == Some(0);
            let unreadable = modes
                .iter()
                .any(|mode| mode & 0o004 == 0 && !(in_group && mode & 0o040 != 0));
            if unreadable {
                let container_name = container["name"].as_str().unwrap_or("(unnamed)");
                problems.push(format!(
                    "{name}: container {container_name} (uid {}) cannot read secret volume {volume_name} \
                     (mode {default_mode:o}, files owned by root:{owning_group}): set the pod's fsGroup to its \
                     group, or make the mode readable",
                    uid.map_or_else(|| "from the image".to_owned(), |uid| uid.to_string())
                ));
            }
        }
    }
    problems
}

fn config_values(documents: &[Yaml]) -> BTreeMap<String, BTreeMap<String, String>> {
    documents
        .iter()
        .filter(|doc| doc["kind"].as_str() == Some("ConfigMap"))
        .filter_map(|doc| {
            let data = doc["data"]
                .as_hash()?
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect();
            Some((doc["metadata"]["name"].as_str()?.to_owned(), data))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const INGRESS: &str = "kind: Ingress\nmetadata: {name: avalon}\nspec:\n  tls: [{hosts: [a.example.com], secretName: t}]\n  rules:\n    - http:\n        paths:\n          - {path: /api/}\n          - {path: /socket.io/}\n          - {path: /health}\n";

    #[test]
    fn the_public_paths_pass_and_a_catch_all_is_named() {
        assert!(check_rendered(INGRESS).unwrap().is_empty());
        let open = INGRESS.replace("{path: /health}", "{path: /}");
        let problems = check_rendered(&open).unwrap();
        assert!(problems[0].contains("routes \"/\""), "{problems:?}");
    }

    #[test]
    fn an_ingress_without_tls_is_refused() {
        let plain = INGRESS.replace("  tls: [{hosts: [a.example.com], secretName: t}]\n", "");
        assert!(check_rendered(&plain).unwrap()[0].contains("no TLS"));
    }

    const DEPLOYMENT: &str = "kind: ConfigMap\nmetadata: {name: cfg}\ndata: {SHUTDOWN_DRAIN_DELAY: 5s, SHUTDOWN_TIMEOUT: 20s}\n---\nkind: Deployment\nmetadata: {name: avalon-api}\nspec:\n  template:\n    metadata: {labels: {app: api, tier: x}}\n    spec:\n      terminationGracePeriodSeconds: 40\n      containers:\n        - name: api\n          envFrom: [{configMapRef: {name: cfg}}]\n          lifecycle: {preStop: {sleep: {seconds: 5}}}\n";
    const POLICY: &str = "\n---\nkind: NetworkPolicy\nmetadata: {name: api}\nspec: {podSelector: {matchLabels: {app: api}}}\n";

    #[test]
    fn a_tier_without_a_network_policy_is_named() {
        let problems = check_rendered(DEPLOYMENT).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("no NetworkPolicy"));
        assert!(
            check_rendered(&format!("{DEPLOYMENT}{POLICY}"))
                .unwrap()
                .is_empty()
        );
    }

    const SECRET_POD: &str = "kind: Deployment\nmetadata: {name: avalon-api}\nspec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: 40\n      securityContext: {runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001}\n      containers:\n        - name: api\n          volumeMounts: [{name: secrets, mountPath: /run/secrets/avalon}]\n      volumes:\n        - {name: secrets, secret: {secretName: avalon-secrets, defaultMode: 288}}\n";

    /// Modes as kustomize renders them: decimal (`defaultMode: 0440` in a source becomes 288); a YAML 1.2
    /// reader takes a literal `0440` for decimal 440 (0o670), which would test a different mode.
    #[test]
    fn a_non_root_container_must_be_able_to_read_its_secret_files() {
        assert_eq!((0o440, 0o444, 0o400), (288, 292, 256));
        assert!(check_rendered(SECRET_POD).unwrap().is_empty());
        let no_fs_group = SECRET_POD.replace(", fsGroup: 10001", "");
        let problems = check_rendered(&no_fs_group).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("cannot read secret volume secrets")
                && problems[0].contains("fsGroup"),
            "{problems:?}"
        );
        let world_readable = no_fs_group.replace("defaultMode: 288", "defaultMode: 292");
        assert!(check_rendered(&world_readable).unwrap().is_empty());
        let as_root = no_fs_group.replace("runAsUser: 10001", "runAsUser: 0");
        assert!(check_rendered(&as_root).unwrap().is_empty());
        let owner_only = SECRET_POD.replace("defaultMode: 288", "defaultMode: 256");
        assert!(
            !check_rendered(&owner_only).unwrap().is_empty(),
            "files are root's: 0400 is unreadable to uid 10001 even with fsGroup"
        );
    }

    #[test]
    fn a_grace_period_shorter_than_the_drain_is_refused() {
        let short = format!("{DEPLOYMENT}{POLICY}").replace("Seconds: 40", "Seconds: 30");
        let problems = check_rendered(&short).unwrap();
        assert!(problems[0].contains("must exceed"), "{problems:?}");
    }
}
