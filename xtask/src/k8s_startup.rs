//! Would the rendered manifests start? Schemas cannot say: a Deployment whose container lacks `REDIS_HOST`
//! is valid YAML and a pod that exits 2. So every avalon container of a rendered overlay has its environment
//! assembled as the kubelet would (the image's `ENV`, the ConfigMaps it loads, `env` entries, secret files)
//! and judged by the services' own validator, the rules `cargo xtask config check` and service start-up apply.
//! Secrets are the one thing the manifests cannot hold (the operator creates `avalon-secrets`), so the check
//! supplies what a real cluster would: strong random values in files at the mounted paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use avalon_runtime::config::{self, Environment, ServiceKind, Sources};
use yaml_rust2::{Yaml, YamlLoader};

use crate::project;

/// One container's verdict: which overlay, which workload, and every rule its environment breaks.
#[derive(Debug)]
pub struct ContainerVerdict {
    pub workload: String,
    pub container: String,
    pub service: ServiceKind,
    pub problems: Vec<String>,
}

/// Checks every avalon container of one rendered overlay (`kubectl kustomize` output).
pub fn check_rendered(rendered: &str) -> anyhow::Result<Vec<ContainerVerdict>> {
    let documents =
        YamlLoader::load_from_str(rendered).context("the rendered overlay is not YAML")?;
    let config_maps = config_maps(&documents);
    let image_env = image_env()?;
    let mut verdicts = Vec::new();
    for document in &documents {
        if !matches!(
            document["kind"].as_str(),
            Some("Deployment" | "StatefulSet")
        ) {
            continue;
        }
        let workload = document["metadata"]["name"]
            .as_str()
            .unwrap_or("(unnamed)")
            .to_owned();
        let pod = &document["spec"]["template"]["spec"];
        let secret_mounts = secret_volumes(pod);
        for container in pod["containers"].as_vec().into_iter().flatten() {
            let Some(service) = service_of(container) else {
                continue;
            };
            let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
            let problems = match container_environment(
                container,
                &config_maps,
                &image_env,
                &secret_mounts,
                scratch.path(),
            ) {
                Ok(env) => {
                    let sources = Sources::from_env(env);
                    config::check(&sources, &[service])
                        .iter()
                        .map(ToString::to_string)
                        .collect()
                }
                Err(error) => vec![format!("{error:#}")],
            };
            verdicts.push(ContainerVerdict {
                workload: workload.clone(),
                container: container["name"].as_str().unwrap_or("(unnamed)").to_owned(),
                service,
                problems,
            });
        }
    }
    if verdicts.is_empty() {
        bail!("no avalon-api or avalon-ws container in the rendered overlay");
    }
    Ok(verdicts)
}

/// Which service a container runs, from its image name (the overlays rename the registry, not the image).
fn service_of(container: &Yaml) -> Option<ServiceKind> {
    let image = container["image"].as_str()?;
    let name = image
        .rsplit('/')
        .next()
        .unwrap_or(image)
        .split(['@', ':'])
        .next()
        .unwrap_or_default();
    match name {
        "avalon-api" => Some(ServiceKind::Api),
        "avalon-ws" => Some(ServiceKind::Ws),
        _ => None,
    }
}

fn config_maps(documents: &[Yaml]) -> BTreeMap<String, BTreeMap<String, String>> {
    documents
        .iter()
        .filter(|doc| doc["kind"].as_str() == Some("ConfigMap"))
        .filter_map(|doc| {
            let name = doc["metadata"]["name"].as_str()?.to_owned();
            let data = doc["data"]
                .as_hash()
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), scalar(value)?)))
                .collect();
            Some((name, data))
        })
        .collect()
}

/// Mount path → secret name, for the pod's secret volumes.
fn secret_volumes(pod: &Yaml) -> Vec<(String, String)> {
    let secrets: BTreeMap<&str, &str> = pod["volumes"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|volume| {
            Some((
                volume["name"].as_str()?,
                volume["secret"]["secretName"].as_str()?,
            ))
        })
        .collect();
    pod["containers"]
        .as_vec()
        .into_iter()
        .flatten()
        .flat_map(|container| container["volumeMounts"].as_vec().into_iter().flatten())
        .filter_map(|mount| {
            let secret = secrets.get(mount["name"].as_str()?)?;
            Some((
                mount["mountPath"].as_str()?.to_owned(),
                (*secret).to_owned(),
            ))
        })
        .collect()
}

/// The container's environment as the kubelet assembles it: the image's `ENV`, then `envFrom`, then `env`
/// (later entries win). Paths under a secret mount are moved into `scratch`, where the file is written.
fn container_environment(
    container: &Yaml,
    config_maps: &BTreeMap<String, BTreeMap<String, String>>,
    image_env: &[(String, String)],
    secret_mounts: &[(String, String)],
    scratch: &Path,
) -> anyhow::Result<Environment> {
    let mut env = Environment::default();
    for (name, value) in image_env {
        env.set(name, value);
    }
    for source in container["envFrom"].as_vec().into_iter().flatten() {
        let Some(name) = source["configMapRef"]["name"].as_str() else {
            if source["secretRef"].as_hash().is_some() {
                bail!("envFrom secretRef is not supported by the check: use *_FILE secrets");
            }
            continue;
        };
        let data = config_maps.get(name).with_context(|| {
            format!("envFrom names ConfigMap {name:?}, which the overlay does not render")
        })?;
        for (key, value) in data {
            env.set(key, value);
        }
    }
    for entry in container["env"].as_vec().into_iter().flatten() {
        let name = entry["name"].as_str().context("an env entry has no name")?;
        let value = env_value(name, entry, config_maps)?;
        env.set(name, value);
    }
    // A `*_FILE` variable pointing into a secret mount reads what the operator put in the Secret.
    let names: Vec<String> = env.names().map(str::to_owned).collect();
    for name in names.iter().filter(|name| name.ends_with("_FILE")) {
        let Some(Ok(path)) = env.text(name) else {
            continue;
        };
        let path = path.to_owned();
        let Some((mount, _)) = secret_mounts
            .iter()
            .find(|(mount, _)| Path::new(&path).starts_with(mount))
        else {
            continue;
        };
        let key = Path::new(&path)
            .strip_prefix(mount)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let file = scratch.join(&key);
        std::fs::write(&file, operator_secret(&key.to_string_lossy()))
            .with_context(|| format!("cannot write {}", file.display()))?;
        env.set(name, file);
    }
    // The image's CONFIG_DIR holds no layer unless the pod mounts one; none of ours does.
    if let Some(Ok(dir)) = env.text(config::spec::CONFIG_DIR.name) {
        let mounted = container["volumeMounts"]
            .as_vec()
            .into_iter()
            .flatten()
            .any(|mount| mount["mountPath"].as_str() == Some(dir));
        if !mounted {
            env.set(
                config::spec::CONFIG_DIR.name,
                scratch.join("no-config-layer"),
            );
        }
    }
    Ok(env)
}

fn env_value(
    name: &str,
    entry: &Yaml,
    config_maps: &BTreeMap<String, BTreeMap<String, String>>,
) -> anyhow::Result<String> {
    if let Some(value) = scalar(&entry["value"]) {
        return Ok(value);
    }
    let from = &entry["valueFrom"];
    if let Some(map) = from["configMapKeyRef"]["name"].as_str() {
        let key = from["configMapKeyRef"]["key"].as_str().unwrap_or_default();
        return config_maps
            .get(map)
            .and_then(|data| data.get(key))
            .cloned()
            .with_context(|| format!("{name}: ConfigMap {map:?} has no key {key:?}"));
    }
    if let Some(key) = from["secretKeyRef"]["key"].as_str() {
        return Ok(operator_secret(key));
    }
    if let Some(field) = from["fieldRef"]["fieldPath"].as_str() {
        return Ok(match field {
            "status.podIP" => "10.244.1.7".to_owned(),
            _ => "avalon-pod".to_owned(),
        });
    }
    Ok(String::new())
}

/// What an operator's `avalon-secrets` holds under `key`: a value of the right shape and full strength, so a
/// failure can only come from the manifests.
pub(crate) fn operator_secret(key: &str) -> String {
    let random = |len: usize| -> String {
        use rand::Rng;
        use rand::distr::Alphanumeric;
        rand::rng()
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect()
    };
    match key {
        "wechat_appid" => {
            let hex: String = (0..16)
                .map(|_| char::from(b"0123456789abcdef"[rand::random_range(0..16)]))
                .collect();
            format!("wx{hex}")
        }
        "mongodb_uri" => format!(
            "mongodb://avalon:{}@mongodb.avalon.svc:27017/avalon?authSource=admin",
            random(32)
        ),
        _ => random(48),
    }
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The `ENV` of the images' `runtime` stage in docker/Dockerfile: what every container starts with.
fn image_env() -> anyhow::Result<Vec<(String, String)>> {
    let path: PathBuf = project::root().join("docker/Dockerfile");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_runtime_env(&text).with_context(|| format!("in {}", path.display()))
}

fn parse_runtime_env(dockerfile: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut in_runtime = false;
    let mut joined = String::new();
    let mut collecting = false;
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("FROM ") {
            in_runtime = trimmed.ends_with(" AS runtime");
            continue;
        }
        if !in_runtime {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("ENV ") {
            collecting = true;
            joined.push_str(rest);
        } else if collecting {
            joined.push(' ');
            joined.push_str(trimmed);
        } else {
            continue;
        }
        if joined.ends_with('\\') {
            joined.pop();
        } else {
            collecting = false;
        }
    }
    let pairs: Vec<(String, String)> = joined
        .split_whitespace()
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .with_context(|| format!("ENV entry {pair:?} is not NAME=value"))
        })
        .collect::<anyhow::Result<_>>()?;
    if pairs.is_empty() {
        bail!("the `runtime` stage sets no ENV");
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_runtime_stage_env_is_read_across_continuation_lines() {
        let dockerfile = "FROM x AS staged\nENV A=1\nFROM scratch AS runtime\nENV APP_ENV=production \\\n    CONFIG_DIR=/etc/avalon\nUSER 1\nFROM runtime AS api\nENV B=2\n";
        assert_eq!(
            parse_runtime_env(dockerfile).unwrap(),
            [
                ("APP_ENV".to_owned(), "production".to_owned()),
                ("CONFIG_DIR".to_owned(), "/etc/avalon".to_owned())
            ]
        );
    }

    fn deployment(env: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{APP_ENV: production, LOG_FORMAT: json}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: avalon-websocket}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: websocket\n          image: registry.example.com/avalon/avalon-ws:1.0.0\n          envFrom: [{{configMapRef: {{name: cfg}}}}]\n          env:\n{env}          volumeMounts: [{{name: secrets, mountPath: /run/secrets/avalon}}]\n      volumes: [{{name: secrets, secret: {{secretName: avalon-secrets}}}}]\n"
        )
    }

    #[test]
    fn a_container_without_redis_host_would_not_start() {
        let rendered = deployment(
            "            - {name: JWT_SECRET_FILE, value: /run/secrets/avalon/jwt_secret}\n            - {name: REDIS_PASSWORD_FILE, value: /run/secrets/avalon/redis_password}\n",
        );
        let verdicts = check_rendered(&rendered).unwrap();
        assert_eq!(verdicts.len(), 1);
        assert!(
            verdicts[0]
                .problems
                .iter()
                .any(|p| p.contains("REDIS_HOST")),
            "{:?}",
            verdicts[0].problems
        );
    }

    #[test]
    fn a_complete_container_passes_with_operator_secrets_supplied() {
        let rendered = deployment(
            "            - {name: REDIS_HOST, value: redis}\n            - {name: JWT_SECRET_FILE, value: /run/secrets/avalon/jwt_secret}\n            - {name: REDIS_PASSWORD_FILE, value: /run/secrets/avalon/redis_password}\n",
        );
        let verdicts = check_rendered(&rendered).unwrap();
        assert!(
            verdicts[0].problems.is_empty(),
            "{:?}",
            verdicts[0].problems
        );
    }

    #[test]
    fn a_missing_config_map_is_named() {
        let rendered = deployment("            - {name: REDIS_HOST, value: redis}\n")
            .replace("configMapRef: {name: cfg}", "configMapRef: {name: other}");
        let verdicts = check_rendered(&rendered).unwrap();
        assert!(
            verdicts[0].problems[0].contains("\"other\""),
            "{:?}",
            verdicts[0].problems
        );
    }
}
