//! The labels xtask puts on a slot's containers, and the config digest one of them carries.
//!
//! A release is recorded with the sha256 of its effective configuration (the slot's compose overlay:
//! images, environment, mounts…). The same digest, computed from the overlay a slot was actually started
//! with, is written on the slot's containers, so a rollback can tell a kept container that runs the
//! recorded release from one that only carries its version label (a canary rehearsal of that version
//! with a fault switch, say) without asking the engine anything more than its one listing.
//!
//! A leaf module: the slot overlay (target) and the release (context) both use it.

use anyhow::Context as _;
use avalon_runtime::registry::SLOT_VARIABLE;
use sha2::{Digest, Sha256};

/// Which slot a container belongs to (defined by `stack`, which reads it without knowing deploys).
pub use crate::stack::SLOT_LABEL;
/// The version of the release a slot was started with.
pub const RELEASE_LABEL: &str = "avalon.release";
/// The config digest of the overlay a slot was started with ([`config_digest`]).
pub const CONFIG_LABEL: &str = "avalon.config-digest";

/// sha256 of the slot's effective compose definition minus the slot-specific names (the slot label, the
/// `AVALON_SLOT` variable) and the digest's own label, so the same release on blue or green has the same
/// digest — and the same digest as before slots carried `AVALON_SLOT`, so ledger entries recorded
/// earlier still match their kept containers.
pub fn config_digest(overlay: &serde_json::Value) -> anyhow::Result<String> {
    let services = overlay
        .get("services")
        .and_then(|s| s.as_object())
        .context("overlay without services")?;
    let mut digest = Sha256::new();
    let mut by_base: Vec<(String, String)> = services
        .iter()
        .map(|(name, definition)| {
            let base = name
                .trim_end_matches("-blue")
                .trim_end_matches("-green")
                .to_owned();
            let mut definition = definition.clone();
            if let Some(object) = definition.as_object_mut() {
                let labels = object.get_mut("labels").and_then(|l| l.as_object_mut());
                if let Some(labels) = labels {
                    labels.remove(SLOT_LABEL);
                    labels.remove(CONFIG_LABEL);
                    // A map the stamp created is no configuration either.
                    if labels.is_empty() {
                        object.remove("labels");
                    }
                }
                // The slot's name in its environment (the instance registry's `slot`) is the slot, not
                // configuration: blue and green of one release still digest the same.
                let environment = object
                    .get_mut("environment")
                    .and_then(|e| e.as_object_mut());
                if let Some(environment) = environment {
                    environment.remove(SLOT_VARIABLE);
                }
            }
            (base, definition.to_string())
        })
        .collect();
    by_base.sort();
    for (base, definition) in by_base {
        digest.update(base.as_bytes());
        digest.update(definition.as_bytes());
    }
    Ok(format!("sha256:{:x}", digest.finalize()))
}

/// Writes the overlay's own [`config_digest`] on every service it defines, and returns it.
pub fn stamp_config_digest(overlay: &mut serde_json::Value) -> anyhow::Result<String> {
    let digest = config_digest(overlay)?;
    let services = overlay
        .get_mut("services")
        .and_then(|s| s.as_object_mut())
        .context("overlay without services")?;
    for (name, definition) in services.iter_mut() {
        let object = definition
            .as_object_mut()
            .with_context(|| format!("service {name} of the slot overlay is not an object"))?;
        let labels = object
            .entry("labels")
            .or_insert_with(|| serde_json::json!({}));
        labels
            .as_object_mut()
            .with_context(|| format!("the labels of service {name} are not a map"))?
            .insert(CONFIG_LABEL.to_owned(), digest.clone().into());
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_config_digest_is_the_same_on_either_slot_and_changes_with_the_config() {
        let blue = serde_json::json!({"services": {"api-blue": {"image": "a", "labels": {"avalon.slot": "blue"},
            "environment": {"AVALON_SLOT": "blue"}}}});
        let green = serde_json::json!({"services": {"api-green": {"image": "a", "labels": {"avalon.slot": "green"},
            "environment": {"AVALON_SLOT": "green"}}}});
        let before_slots_had_a_variable = serde_json::json!({"services": {"api-green": {"image": "a", "labels": {"avalon.slot": "green"},
            "environment": {}}}});
        assert_eq!(
            config_digest(&green).unwrap(),
            config_digest(&before_slots_had_a_variable).unwrap()
        );
        let other = serde_json::json!({"services": {"api-green": {"image": "a", "environment": {"X": "1"}}}});
        assert_eq!(
            config_digest(&blue).unwrap(),
            config_digest(&green).unwrap()
        );
        assert_ne!(
            config_digest(&green).unwrap(),
            config_digest(&other).unwrap()
        );
        assert!(config_digest(&blue).unwrap().starts_with("sha256:"));
    }

    #[test]
    fn a_stamped_overlay_carries_its_own_digest_and_digests_the_same() {
        let mut overlay = serde_json::json!({"services": {
            "api-green": {"image": "a", "labels": {"avalon.slot": "green"}},
            "websocket-green": {"image": "b"}
        }});
        let before = config_digest(&overlay).unwrap();
        let stamped = stamp_config_digest(&mut overlay).unwrap();
        assert_eq!(stamped, before);
        assert_eq!(
            overlay["services"]["api-green"]["labels"][CONFIG_LABEL],
            before
        );
        assert_eq!(
            overlay["services"]["websocket-green"]["labels"][CONFIG_LABEL],
            before
        );
        // Stamping again (a digest label already there) changes nothing.
        assert_eq!(config_digest(&overlay).unwrap(), before);
    }
}
