//! Compose model → `docker stack deploy` file, a pure function of `docker compose … config --format json`
//! and a few facts read beforehand (the files under each bind-mounted tree, secret digests, the release's
//! images), so every rule here is unit-tested without an engine.
//!
//! What changes and why:
//! - Swarm ignores (with a warning) or rejects what only a single engine can do: `depends_on`,
//!   `container_name`, `pull_policy`, `restart`, `security_opt`, `expose`, `build`, `profiles`, … are dropped
//!   and listed in the notes, so `up` can say what does not carry over.
//! - `restart` becomes `deploy.restart_policy` when the swarm overlay did not give one.
//! - A bind mount cannot follow a task to another node: each file of a bind-mounted tree becomes a Swarm
//!   config mounted at the same place. Configs are immutable, so each name carries its content's digest:
//!   a changed file is a new config and a rolling update, never a refused `stack deploy`.
//! - Secrets likewise: Swarm secrets from the same files, named by digest.
//! - `tmpfs:` (ignored by Swarm) becomes tmpfs mounts; one owned by a user (uid/gid) has no Swarm form (a
//!   Swarm tmpfs belongs to root) and is left out: the image's own directory serves.
//! - Ports: no host address in Swarm; the mode is the one given (host: no routing mesh needed).
//! - Top-level `name`s are dropped so the stack namespaces networks, volumes, configs (`<stack>_…`); networks
//!   are overlays.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

/// Facts the transform needs that live outside the compose model.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The stack (and compose project) name: config and secret names start with it.
    pub project: String,
    /// Files of each bind-mounted source (a directory, or a single file under the key ""), with the
    /// sha256 (hex) of each. Keyed by the bind's absolute source path.
    pub trees: BTreeMap<String, Vec<TreeFile>>,
    /// sha256 (hex) of each secret's file, by the secret's key in the compose model.
    pub secret_digests: BTreeMap<String, String>,
    /// Image per service, replacing the model's (the release being deployed).
    pub images: BTreeMap<String, String>,
    /// `host` or `ingress` for every published port.
    pub publish_mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path relative to the bind's source ("" when the source is the file itself).
    pub relative: String,
    /// Absolute path on the operator's machine (`docker stack deploy` reads it from there).
    pub path: String,
    pub sha256: String,
}

/// The stack file and what did not carry over.
#[derive(Debug, Clone)]
pub struct StackFile {
    pub body: Value,
    /// `service: key dropped (why)` lines, for `up` to print.
    pub notes: Vec<String>,
}

/// Service keys `docker stack deploy` (compose file 3.9) honours; everything else is dropped with a note.
const KEPT_SERVICE_KEYS: [&str; 22] = [
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "deploy",
    "dns",
    "entrypoint",
    "environment",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "labels",
    "logging",
    "networks",
    "ports",
    "read_only",
    "secrets",
    "stop_grace_period",
    "stop_signal",
    "user",
];
/// Also kept, but rewritten below.
const REWRITTEN_SERVICE_KEYS: [&str; 5] = ["volumes", "tmpfs", "restart", "ulimits", "working_dir"];

/// Swarm names (configs, secrets) are at most 64 characters.
const MAX_NAME: usize = 64;

pub fn to_stack(model: &Value, inputs: &Inputs) -> anyhow::Result<StackFile> {
    let services = model
        .get("services")
        .and_then(Value::as_object)
        .context("the compose model has no services")?;
    let mut notes = Vec::new();
    let mut configs = Map::new();
    let mut out_services = Map::new();
    for (name, service) in services {
        let service = service
            .as_object()
            .with_context(|| format!("service {name} is not a mapping"))?;
        let converted = convert_service(name, service, inputs, &mut configs, &mut notes)?;
        out_services.insert(name.clone(), Value::Object(converted));
    }
    let mut body = Map::new();
    body.insert("version".into(), json!("3.9"));
    body.insert("services".into(), Value::Object(out_services));
    body.insert("networks".into(), networks(model));
    if let Some(volumes) = model.get("volumes").and_then(Value::as_object) {
        let volumes: Map<String, Value> =
            volumes.keys().map(|key| (key.clone(), json!({}))).collect();
        body.insert("volumes".into(), Value::Object(volumes));
    }
    body.insert("secrets".into(), secrets(model, inputs)?);
    if !configs.is_empty() {
        body.insert("configs".into(), Value::Object(configs));
    }
    Ok(StackFile {
        body: Value::Object(body),
        notes,
    })
}

fn convert_service(
    name: &str,
    service: &Map<String, Value>,
    inputs: &Inputs,
    configs: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for (key, value) in service {
        if value.is_null() {
            continue;
        }
        if KEPT_SERVICE_KEYS.contains(&key.as_str()) {
            out.insert(key.clone(), value.clone());
        } else if !REWRITTEN_SERVICE_KEYS.contains(&key.as_str()) {
            notes.push(format!(
                "{name}: {key} dropped (not a Swarm service setting)"
            ));
        }
    }
    for key in ["working_dir", "ulimits"] {
        if let Some(value) = service.get(key).filter(|v| !v.is_null()) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(image) = inputs.images.get(name) {
        out.insert("image".into(), json!(image));
    }
    let mut deploy = service
        .get("deploy")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    fix_deploy(&mut deploy, service.get("restart"), name, notes)?;
    out.insert("deploy".into(), Value::Object(deploy));
    if let Some(ports) = service.get("ports").and_then(Value::as_array) {
        out.insert(
            "ports".into(),
            Value::Array(
                ports
                    .iter()
                    .map(|port| convert_port(port, &inputs.publish_mode))
                    .collect::<anyhow::Result<_>>()?,
            ),
        );
    }
    if let Some(networks) = service.get("networks").and_then(Value::as_object)
        && networks.values().all(Value::is_null)
    {
        out.insert(
            "networks".into(),
            Value::Array(networks.keys().map(|k| json!(k)).collect()),
        );
    }
    if let Some(secrets) = service.get("secrets").and_then(Value::as_array) {
        out.insert(
            "secrets".into(),
            Value::Array(secrets.iter().map(convert_secret_ref).collect()),
        );
    }
    let (volumes, service_configs) = convert_volumes(name, service, inputs, configs, notes)?;
    if !volumes.is_empty() {
        out.insert("volumes".into(), Value::Array(volumes));
    }
    if !service_configs.is_empty() {
        out.insert("configs".into(), Value::Array(service_configs));
    }
    Ok(out)
}

/// Replicas as a number, `cpus` as a string, no `pids` (no Swarm form), and a restart policy.
fn fix_deploy(
    deploy: &mut Map<String, Value>,
    restart: Option<&Value>,
    name: &str,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    if let Some(replicas) = deploy.get("replicas").cloned() {
        let count = match &replicas {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .with_context(|| format!("{name}: deploy.replicas is not a count: {replicas}"))?;
        deploy.insert("replicas".into(), json!(count));
    }
    if let Some(resources) = deploy.get_mut("resources").and_then(Value::as_object_mut) {
        for kind in ["limits", "reservations"] {
            if let Some(limits) = resources.get_mut(kind).and_then(Value::as_object_mut) {
                if limits.remove("pids").is_some() {
                    notes.push(format!(
                        "{name}: deploy.resources.{kind}.pids dropped (no Swarm form)"
                    ));
                }
                if let Some(cpus) = limits.get("cpus").cloned()
                    && let Value::Number(n) = cpus
                {
                    limits.insert("cpus".into(), json!(n.to_string()));
                }
                if kind == "reservations" {
                    limits.remove("devices");
                }
            }
        }
    }
    if let Some(placement) = deploy.get("placement").and_then(Value::as_object)
        && placement.is_empty()
    {
        deploy.remove("placement");
    }
    if !deploy.contains_key("restart_policy") {
        let condition = match restart.and_then(Value::as_str) {
            Some("no") => Some("none"),
            Some("on-failure") => Some("on-failure"),
            Some("always" | "unless-stopped") => Some("any"),
            _ => None,
        };
        if let Some(condition) = condition {
            deploy.insert("restart_policy".into(), json!({ "condition": condition }));
        }
    }
    Ok(())
}

fn convert_port(port: &Value, mode: &str) -> anyhow::Result<Value> {
    let target = port
        .get("target")
        .and_then(Value::as_u64)
        .with_context(|| format!("a port without a target: {port}"))?;
    let mut out = Map::new();
    out.insert("target".into(), json!(target));
    if let Some(published) = port.get("published") {
        let published = match published {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .with_context(|| format!("a published port that is not a number: {published}"))?;
        out.insert("published".into(), json!(published));
    }
    out.insert(
        "protocol".into(),
        port.get("protocol").cloned().unwrap_or(json!("tcp")),
    );
    out.insert("mode".into(), json!(mode));
    Ok(Value::Object(out))
}

/// Compose writes `target: /run/secrets/<source>`; Swarm wants the file name there.
fn convert_secret_ref(secret: &Value) -> Value {
    let Some(source) = secret.get("source").and_then(Value::as_str) else {
        return secret.clone();
    };
    let mut out = secret.as_object().cloned().unwrap_or_default();
    match out.get("target").and_then(Value::as_str) {
        Some(target) if target == format!("/run/secrets/{source}") => {
            out.insert("target".into(), json!(source));
        }
        None => {
            out.insert("target".into(), json!(source));
        }
        Some(_) => {}
    }
    Value::Object(out)
}

/// Named volumes stay; tmpfs entries become tmpfs mounts; bind mounts become configs.
fn convert_volumes(
    name: &str,
    service: &Map<String, Value>,
    inputs: &Inputs,
    configs: &mut Map<String, Value>,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let mut volumes = Vec::new();
    let mut service_configs = Vec::new();
    for volume in service
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = volume
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("volume");
        let target = volume
            .get("target")
            .and_then(Value::as_str)
            .with_context(|| format!("{name}: a volume without a target"))?;
        match kind {
            "bind" => {
                let source = volume
                    .get("source")
                    .and_then(Value::as_str)
                    .with_context(|| format!("{name}: a bind mount without a source"))?;
                let Some(files) = inputs.trees.get(source) else {
                    bail!(
                        "{name}: bind mount {source} → {target} has no file listing; a bind mount \
                         cannot follow a task to another node"
                    );
                };
                for file in files {
                    let key = config_key(&file.relative, &file.sha256);
                    let config_target = if file.relative.is_empty() {
                        target.to_owned()
                    } else {
                        format!("{}/{}", target.trim_end_matches('/'), file.relative)
                    };
                    configs.insert(
                        key.clone(),
                        json!({
                            "file": file.path,
                            "name": swarm_name(&inputs.project, &key),
                        }),
                    );
                    service_configs.push(json!({ "source": key, "target": config_target }));
                }
            }
            "volume" | "tmpfs" => {
                let mut out = Map::new();
                out.insert("type".into(), json!(kind));
                if let Some(source) = volume.get("source").filter(|s| !s.is_null()) {
                    out.insert("source".into(), source.clone());
                }
                out.insert("target".into(), json!(target));
                if let Some(read_only) = volume.get("read_only") {
                    out.insert("read_only".into(), read_only.clone());
                }
                if let Some(tmpfs) = volume.get("tmpfs").and_then(Value::as_object)
                    && let Some(size) = tmpfs.get("size")
                {
                    out.insert("tmpfs".into(), json!({ "size": size_bytes(size)? }));
                }
                volumes.push(Value::Object(out));
            }
            other => notes.push(format!("{name}: a {other} mount at {target} dropped")),
        }
    }
    for entry in service
        .get("tmpfs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = entry.as_str().unwrap_or_default();
        let (target, options) = text.split_once(':').unwrap_or((text, ""));
        let mut mount = json!({ "type": "tmpfs", "target": target });
        let mut owned = false;
        for option in options.split(',') {
            match option.split_once('=') {
                Some(("size", size)) => {
                    mount["tmpfs"] = json!({ "size": size_bytes(&json!(size))? });
                }
                Some(("uid" | "gid", _)) => owned = true,
                Some((other, _)) => {
                    notes.push(format!("{name}: tmpfs {target} option {other} dropped"))
                }
                None => {}
            }
        }
        if owned {
            // A Swarm tmpfs belongs to root (no uid/gid/mode in a stack file): the image's own directory
            // serves instead, which needs a writable root (compose.swarm.yml says so for the edge).
            notes.push(format!(
                "{name}: tmpfs {target} owned by a user has no Swarm form; the image's directory is used"
            ));
        } else {
            volumes.push(mount);
        }
    }
    Ok((volumes, service_configs))
}

/// `64m`, `1g`, `16384` → bytes (the stack file's tmpfs size is a number).
fn size_bytes(size: &Value) -> anyhow::Result<u64> {
    if let Some(n) = size.as_u64() {
        return Ok(n);
    }
    let text = size
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = digits
        .parse()
        .with_context(|| format!("not a size: {size}"))?;
    let factor = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => bail!("not a size: {size}"),
    };
    Ok(number * factor)
}

/// A stack-file key for one file: its path made of name characters, and its digest.
fn config_key(relative: &str, sha256: &str) -> String {
    let base: String = if relative.is_empty() {
        "file"
    } else {
        relative
    }
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' {
            c
        } else {
            '_'
        }
    })
    .collect();
    format!("{base}-{}", &sha256[..sha256.len().min(12)])
}

/// `<project>_<key>`, cut from the front of the key's path part so the digest survives.
fn swarm_name(project: &str, key: &str) -> String {
    let name = format!("{project}_{key}");
    if name.len() <= MAX_NAME {
        return name;
    }
    let keep = MAX_NAME - project.len() - 1;
    format!("{project}_{}", &key[key.len() - keep..])
}

fn networks(model: &Value) -> Value {
    let mut out = Map::new();
    for (key, network) in model
        .get("networks")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let mut spec = Map::new();
        spec.insert("driver".into(), json!("overlay"));
        if network.get("internal").and_then(Value::as_bool) == Some(true) {
            spec.insert("internal".into(), json!(true));
        }
        // Attachable: a one-off `docker run --network` (a probe, a shell) can join it.
        spec.insert("attachable".into(), json!(true));
        out.insert(key.clone(), Value::Object(spec));
    }
    Value::Object(out)
}

fn secrets(model: &Value, inputs: &Inputs) -> anyhow::Result<Value> {
    let mut out = Map::new();
    for (key, secret) in model
        .get("secrets")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let file = secret
            .get("file")
            .and_then(Value::as_str)
            .with_context(|| format!("secret {key} has no file"))?;
        let digest = inputs
            .secret_digests
            .get(key)
            .with_context(|| format!("secret {key} has no digest"))?;
        out.insert(
            key.clone(),
            json!({
                "file": file,
                "name": swarm_name(&inputs.project, &format!("{key}-{}", &digest[..digest.len().min(12)])),
            }),
        );
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The shape `docker compose config --format json` writes for the offline overlay plus compose.swarm.yml.
    fn model() -> Value {
        json!({
            "name": "avalon-offline",
            "services": {
                "api": {
                    "cap_drop": ["ALL"],
                    "command": null,
                    "depends_on": {"redis": {"condition": "service_healthy", "required": true}},
                    "deploy": {
                        "replicas": 2,
                        "update_config": {"parallelism": 1, "order": "start-first", "failure_action": "rollback"},
                        "resources": {"limits": {"cpus": 0.5, "memory": "524288000", "pids": 256}},
                        "placement": {}
                    },
                    "environment": {"PORT": "3000"},
                    "expose": ["3000"],
                    "image": "avalon-api:latest",
                    "networks": {"backend": null, "data": null},
                    "pull_policy": "never",
                    "read_only": true,
                    "restart": "unless-stopped",
                    "secrets": [{"source": "jwt_secret", "target": "/run/secrets/jwt_secret"}],
                    "security_opt": ["no-new-privileges:true"],
                    "tmpfs": ["/tmp:size=16m"],
                    "volumes": [
                        {"type": "bind", "source": "/repo/config", "target": "/etc/avalon", "read_only": true,
                         "bind": {"create_host_path": true}},
                        {"type": "volume", "source": "api-data", "target": "/var/lib/avalon", "volume": {}}
                    ]
                },
                "nginx": {
                    "image": "avalon-offline/nginx:1.22",
                    "deploy": {"replicas": 1, "restart_policy": {"condition": "any", "delay": "2s"}},
                    "ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "published": "8080", "protocol": "tcp"}],
                    "restart": "unless-stopped",
                    "tmpfs": ["/run:uid=101,gid=101,size=1m"],
                    "networks": {"edge": null}
                }
            },
            "networks": {
                "backend": {"name": "avalon-offline_backend", "ipam": {}, "internal": true},
                "edge": {"name": "avalon-offline_edge", "ipam": {}}
            },
            "volumes": {"api-data": {"name": "avalon-offline_api-data"}},
            "secrets": {"jwt_secret": {"name": "avalon-offline_jwt_secret", "file": "/s/jwt_secret"}},
            "x-api": {"image": "ignored"}
        })
    }

    fn inputs() -> Inputs {
        Inputs {
            project: "avalon-offline".into(),
            trees: BTreeMap::from([(
                "/repo/config".to_owned(),
                vec![TreeFile {
                    relative: "development.toml".into(),
                    path: "/repo/config/development.toml".into(),
                    sha256: "ab".repeat(32),
                }],
            )]),
            secret_digests: BTreeMap::from([("jwt_secret".to_owned(), "cd".repeat(32))]),
            images: BTreeMap::from([("api".to_owned(), "avalon-api:v2".to_owned())]),
            publish_mode: "host".into(),
        }
    }

    #[test]
    fn single_engine_settings_are_dropped_and_named() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        let api = &stack.body["services"]["api"];
        for key in [
            "depends_on",
            "pull_policy",
            "restart",
            "security_opt",
            "expose",
            "tmpfs",
            "command",
        ] {
            assert!(api.get(key).is_none(), "{key} kept: {api}");
        }
        assert!(stack.body.get("name").is_none());
        assert!(stack.body.get("x-api").is_none());
        assert_eq!(stack.body["version"], "3.9");
        for key in ["depends_on", "pull_policy", "security_opt", "expose"] {
            assert!(
                stack
                    .notes
                    .iter()
                    .any(|n| n == &format!("api: {key} dropped (not a Swarm service setting)")),
                "{key} not noted: {:?}",
                stack.notes
            );
        }
        assert_eq!(api["cap_drop"], json!(["ALL"]));
        assert_eq!(api["read_only"], true);
    }

    #[test]
    fn restart_becomes_a_restart_policy_unless_the_overlay_gave_one() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        assert_eq!(
            stack.body["services"]["api"]["deploy"]["restart_policy"],
            json!({"condition": "any"})
        );
        assert_eq!(
            stack.body["services"]["nginx"]["deploy"]["restart_policy"],
            json!({"condition": "any", "delay": "2s"})
        );
    }

    #[test]
    fn deploy_settings_take_swarm_types() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        let deploy = &stack.body["services"]["api"]["deploy"];
        assert_eq!(deploy["replicas"], 2);
        assert_eq!(
            deploy["resources"]["limits"],
            json!({"cpus": "0.5", "memory": "524288000"})
        );
        assert!(deploy.get("placement").is_none());
        assert_eq!(deploy["update_config"]["order"], "start-first");
    }

    #[test]
    fn a_bind_mounted_tree_becomes_configs_named_by_digest() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        let key = format!("development_toml-{}", &"ab".repeat(6));
        assert_eq!(
            stack.body["services"]["api"]["configs"],
            json!([{"source": key, "target": "/etc/avalon/development.toml"}])
        );
        assert_eq!(
            stack.body["configs"][&key],
            json!({"file": "/repo/config/development.toml", "name": format!("avalon-offline_{key}")})
        );
        let volumes = stack.body["services"]["api"]["volumes"].as_array().unwrap();
        assert_eq!(
            volumes[0],
            json!({"type": "volume", "source": "api-data", "target": "/var/lib/avalon"})
        );
        assert_eq!(
            volumes[1],
            json!({"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 16 << 20}})
        );
    }

    #[test]
    fn a_bind_mount_without_a_listing_is_refused() {
        let mut inputs = inputs();
        inputs.trees.clear();
        let err = to_stack(&model(), &inputs).unwrap_err().to_string();
        assert!(err.contains("/repo/config"), "{err}");
    }

    #[test]
    fn a_tmpfs_owned_by_a_user_is_left_to_the_image_with_a_note() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        assert!(stack.body["services"]["nginx"].get("volumes").is_none());
        assert!(
            stack
                .notes
                .iter()
                .any(|n| n.contains("nginx: tmpfs /run owned by a user has no Swarm form"))
        );
    }

    #[test]
    fn the_edge_port_is_published_without_a_host_address() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        assert_eq!(
            stack.body["services"]["nginx"]["ports"],
            json!([{"target": 80, "published": 8080, "protocol": "tcp", "mode": "host"}])
        );
    }

    #[test]
    fn secrets_are_swarm_secrets_named_by_digest_and_mounted_by_file_name() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        assert_eq!(
            stack.body["secrets"]["jwt_secret"],
            json!({"file": "/s/jwt_secret", "name": format!("avalon-offline_jwt_secret-{}", "cd".repeat(6))})
        );
        assert_eq!(
            stack.body["services"]["api"]["secrets"],
            json!([{"source": "jwt_secret", "target": "jwt_secret"}])
        );
    }

    #[test]
    fn networks_are_overlays_namespaced_by_the_stack() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        assert_eq!(
            stack.body["networks"]["backend"],
            json!({"driver": "overlay", "internal": true, "attachable": true})
        );
        assert_eq!(
            stack.body["services"]["api"]["networks"],
            json!(["backend", "data"])
        );
        assert_eq!(stack.body["volumes"], json!({"api-data": {}}));
    }

    #[test]
    fn the_release_images_replace_the_models() {
        let stack = to_stack(&model(), &inputs()).unwrap();
        assert_eq!(stack.body["services"]["api"]["image"], "avalon-api:v2");
        assert_eq!(
            stack.body["services"]["nginx"]["image"],
            "avalon-offline/nginx:1.22"
        );
    }

    #[test]
    fn long_names_keep_their_digest() {
        let key = config_key(
            "conf.d/a-very-long-file-name-for-the-edge-that-goes-on.conf",
            &"ef".repeat(32),
        );
        let name = swarm_name("avalon-offline", &key);
        assert!(name.len() <= MAX_NAME, "{name}");
        assert!(name.ends_with(&"ef".repeat(6)), "{name}");
        assert!(name.starts_with("avalon-offline_"), "{name}");
    }
}
