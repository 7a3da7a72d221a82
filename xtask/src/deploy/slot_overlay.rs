//! The compose overlay that adds one slot's services: copies of the stack's own `api` and `websocket` with
//! the release's images, slot labels, no published ports, and the host paths the running stack mounts
//! (pure: tested without Docker; [`super::target::Target`] resolves the model and writes the file).

use std::collections::BTreeMap;

use anyhow::Context;

use avalon_runtime::registry::SLOT_VARIABLE;

use super::containers::{RELEASE_LABEL, SLOT_LABEL};
use super::ledger::Release;
use super::slots::Slot;

/// The overlay document adding one slot's services (pure: tested without Docker).
pub fn slot_overlay(
    resolved: &serde_json::Value,
    slot: Slot,
    release: &Release,
    extra_env: &BTreeMap<String, String>,
    host_binds: &BTreeMap<String, BTreeMap<String, String>>,
) -> anyhow::Result<serde_json::Value> {
    let mut services = serde_json::Map::new();
    let mut secrets = serde_json::Map::new();
    for (base, service) in [
        ("api", slot.api_service()),
        ("websocket", slot.ws_service()),
    ] {
        let mut definition = resolved
            .pointer(&format!("/services/{base}"))
            .cloned()
            .with_context(|| format!("the compose model has no `{base}` service to copy"))?;
        let object = definition
            .as_object_mut()
            .context("a compose service is not an object")?;
        for key in ["ports", "container_name", "build", "depends_on"] {
            object.remove(key);
        }
        // A slot must come back after a crash even on overlays without a restart policy (offline).
        object
            .entry("restart")
            .or_insert_with(|| "unless-stopped".into());
        if let Some(image) = release.images.get(base) {
            object.insert("image".to_owned(), image.clone().into());
        }
        let labels = object
            .entry("labels")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(SLOT_LABEL.to_owned(), slot.name().into());
            labels.insert(RELEASE_LABEL.to_owned(), release.version.clone().into());
        }
        let environment = object
            .entry("environment")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(environment) = environment.as_object_mut() {
            // The instance registry's `slot` (the unslotted `api`/`websocket` leave it unset).
            environment.insert(SLOT_VARIABLE.to_owned(), slot.name().into());
            for (key, value) in extra_env {
                environment.insert(key.clone(), value.clone().into());
            }
        }
        if let Some(binds) = host_binds.get(base) {
            rebase_binds(&mut definition, binds, &mut secrets);
        }
        services.insert(service, definition);
    }
    let mut overlay = serde_json::json!({ "services": services });
    if !secrets.is_empty() {
        overlay["secrets"] = secrets.into();
    }
    Ok(overlay)
}

/// Points the service's bind mounts and file secrets at the host paths the running stack uses
/// (`binds`: path in the container → path on the host). Compose resolved them against this checkout,
/// which is the same place only when xtask runs on the engine's host from the checkout that started the
/// stack. Secrets become top-level overrides of their `file`.
pub(super) fn rebase_binds(
    definition: &mut serde_json::Value,
    binds: &BTreeMap<String, String>,
    secrets: &mut serde_json::Map<String, serde_json::Value>,
) {
    if let Some(volumes) = definition
        .get_mut("volumes")
        .and_then(serde_json::Value::as_array_mut)
    {
        for volume in volumes {
            let is_bind = volume.get("type").and_then(serde_json::Value::as_str) == Some("bind");
            let host = volume
                .get("target")
                .and_then(serde_json::Value::as_str)
                .and_then(|target| binds.get(target));
            if let (true, Some(host)) = (is_bind, host) {
                volume["source"] = host.clone().into();
            }
        }
    }
    for secret in definition
        .get("secrets")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = secret.get("source").and_then(serde_json::Value::as_str) else {
            continue;
        };
        let target = secret
            .get("target")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(name);
        let in_container = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/run/secrets/{target}")
        };
        if let Some(host) = binds.get(&in_container) {
            secrets.insert(name.to_owned(), serde_json::json!({ "file": host }));
        }
    }
}

/// Sets the image of the slot's services to `release`'s references.
pub(super) fn use_images(overlay: &mut serde_json::Value, slot: Slot, release: &Release) {
    for (base, service) in [
        ("api", slot.api_service()),
        ("websocket", slot.ws_service()),
    ] {
        if let (Some(image), Some(definition)) = (
            release.images.get(base),
            overlay.pointer_mut(&format!("/services/{service}")),
        ) {
            definition["image"] = image.clone().into();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_slot_overlay_copies_the_services_with_the_release_and_without_ports() {
        let resolved = serde_json::json!({"services": {
            "api": {"image": "avalon-api:old", "ports": [{"target": 3000}], "environment": {"APP_ENV": "development"},
                    "depends_on": {"redis": {"condition": "service_healthy"}}, "networks": {"backend": null}},
            "websocket": {"image": "avalon-ws:old", "labels": {"x": "y"}}
        }});
        let release = Release {
            version: "1.2.0".to_owned(),
            images: BTreeMap::from([
                ("api".to_owned(), "avalon-api@sha256:aa".to_owned()),
                ("websocket".to_owned(), "sha256:bb".to_owned()),
            ]),
            config_digest: String::new(),
        };
        let extra = BTreeMap::from([("FAULT_INJECT_5XX_RATE".to_owned(), "0.5".to_owned())]);
        let overlay =
            slot_overlay(&resolved, Slot::Green, &release, &extra, &BTreeMap::new()).unwrap();
        assert!(overlay.get("secrets").is_none());
        let api = &overlay["services"]["api-green"];
        assert_eq!(api["image"], "avalon-api@sha256:aa");
        assert!(api.get("ports").is_none() && api.get("depends_on").is_none());
        assert_eq!(api["labels"][SLOT_LABEL], "green");
        assert_eq!(api["environment"]["FAULT_INJECT_5XX_RATE"], "0.5");
        assert_eq!(api["environment"]["APP_ENV"], "development");
        assert_eq!(api["environment"]["AVALON_SLOT"], "green");
        assert_eq!(
            overlay["services"]["websocket-green"]["environment"]["AVALON_SLOT"],
            "green"
        );
        assert_eq!(api["restart"], "unless-stopped");
        assert_eq!(overlay["services"]["websocket-green"]["labels"]["x"], "y");
        assert_eq!(
            overlay["services"]["websocket-green"]["labels"][RELEASE_LABEL],
            "1.2.0"
        );
    }

    #[test]
    fn slots_mount_the_host_paths_the_running_stack_mounts() {
        // What `docker compose config` resolved in this checkout …
        let resolved = serde_json::json!({"services": {
            "api": {"image": "avalon-api:old",
                    "volumes": [{"type": "bind", "source": "/home/ci/checkout/config", "target": "/etc/avalon", "read_only": true},
                                {"type": "volume", "source": "api-data", "target": "/var/lib/avalon"}],
                    "secrets": [{"source": "jwt_secret"}, {"source": "wechat", "target": "/run/keys/wechat"}]},
            "websocket": {"image": "avalon-ws:old", "secrets": [{"source": "jwt_secret"}]}
        }});
        // … and what the stack's containers mount on the engine's host.
        let host = BTreeMap::from([(
            "api".to_owned(),
            BTreeMap::from([
                ("/etc/avalon".to_owned(), "/srv/avalon/config".to_owned()),
                (
                    "/run/secrets/jwt_secret".to_owned(),
                    "/srv/avalon/secrets/jwt_secret".to_owned(),
                ),
                (
                    "/run/keys/wechat".to_owned(),
                    "/srv/avalon/secrets/wechat".to_owned(),
                ),
            ]),
        )]);
        let release = Release {
            version: "1.2.0".to_owned(),
            images: BTreeMap::new(),
            config_digest: String::new(),
        };
        let overlay =
            slot_overlay(&resolved, Slot::Blue, &release, &BTreeMap::new(), &host).unwrap();
        assert_eq!(
            overlay["services"]["api-blue"]["environment"]["AVALON_SLOT"],
            "blue"
        );
        let volumes = &overlay["services"]["api-blue"]["volumes"];
        assert_eq!(volumes[0]["source"], "/srv/avalon/config");
        assert_eq!(volumes[0]["read_only"], true);
        assert_eq!(
            volumes[1]["source"], "api-data",
            "named volumes are left alone"
        );
        assert_eq!(
            overlay["secrets"]["jwt_secret"]["file"],
            "/srv/avalon/secrets/jwt_secret"
        );
        assert_eq!(
            overlay["secrets"]["wechat"]["file"],
            "/srv/avalon/secrets/wechat"
        );
        assert!(
            overlay["services"]["websocket-blue"]
                .get("volumes")
                .is_none(),
            "no reference container for websocket: compose's paths stay"
        );
    }
}
