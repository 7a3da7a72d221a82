//! Whether a rollback may reuse the containers kept on the slot it returns to, or must recreate them.
//!
//! A kept container is reused only when it runs the very release the ledger recorded: its version label
//! and its config digest label (images, environment, mounts: see [`super::labels`]) equal the release's.
//! A version label alone is not enough: an aborted canary of an older version with a fault switch carries
//! that version's label too, and starting it again would serve the fault to everyone.

use super::ledger::Release;
use super::slots::Slot;
use super::target::{ContainerInfo, KeptContainer};

/// What the slot a rollback returns to holds of the wanted release.
#[derive(Debug, Clone, PartialEq)]
pub enum Kept {
    /// Its containers cannot be reused (the reason attached): start the slot from the ledger's digests.
    Recreate(String),
    /// Its containers run the recorded release but were stopped after a drain: start them again.
    Stopped(Vec<KeptContainer>),
    /// Its containers run the recorded release (e.g. an aborted canary's stable slot): only traffic moves.
    Running,
}

impl Kept {
    /// How the rollback gets the slot back, and why: one line of the plan `--dry-run` prints.
    pub fn describe(&self, slot: Slot, release: &Release) -> String {
        let digest = short_digest(&release.config_digest);
        match self {
            Kept::Running => format!(
                "reuse: slot {slot} runs {} with the recorded config {digest}; only traffic moves",
                release.version
            ),
            Kept::Stopped(_) => format!(
                "reuse: the kept containers of slot {slot} are {} with the recorded config {digest}; \
                 they are started again",
                release.version
            ),
            Kept::Recreate(why) => format!(
                "recreate slot {slot} from the ledger's image digests (config {digest}): {why}"
            ),
        }
    }
}

/// What `slot` holds of `release`, from the stack's containers.
pub fn kept_for(containers: &[ContainerInfo], slot: Slot, release: &Release) -> Kept {
    let services = slot.services();
    let mine: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| !c.one_off && services.contains(&c.service))
        .collect();
    if let Some(missing) = services
        .iter()
        .find(|service| !mine.iter().any(|c| &c.service == *service))
    {
        return Kept::Recreate(format!("slot {slot} has no {missing} container"));
    }
    for c in &mine {
        if c.release.as_deref() != Some(release.version.as_str()) {
            return Kept::Recreate(format!(
                "{} runs {}, not {}",
                c.name,
                c.release.as_deref().unwrap_or("an unlabelled release"),
                release.version
            ));
        }
        match &c.config_digest {
            None => {
                return Kept::Recreate(format!(
                    "{} carries no config digest (started before xtask labelled one), so it cannot be \
                     shown to run the recorded configuration",
                    c.name
                ));
            }
            Some(digest) if *digest != release.config_digest => {
                return Kept::Recreate(format!(
                    "{} runs {} with another configuration (config {} ≠ recorded {}: other \
                     environment, images or mounts, e.g. an aborted canary's --set-env)",
                    c.name,
                    release.version,
                    short_digest(digest),
                    short_digest(&release.config_digest)
                ));
            }
            Some(_) => {}
        }
    }
    if mine.iter().all(|c| c.running()) {
        Kept::Running
    } else {
        Kept::Stopped(mine.iter().map(|c| c.kept()).collect())
    }
}

/// `sha256:0123456789ab…`: enough to tell two digests apart in a line an operator reads.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}…", &hex[..12]),
        _ => digest.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    const RECORDED: &str = "sha256:1111111111111111111111111111";
    const FAULTY: &str = "sha256:2222222222222222222222222222";

    fn release() -> Release {
        Release {
            version: "1.0.0".to_owned(),
            images: BTreeMap::from([("api".to_owned(), "avalon-api@sha256:aa".to_owned())]),
            config_digest: RECORDED.to_owned(),
        }
    }

    fn container(service: &str, version: &str, digest: Option<&str>, state: &str) -> ContainerInfo {
        let json = format!(
            r#"[{{"Id":"id-{service}-0000000","Name":"/p-{service}-1","Image":"sha256:img","RestartCount":0,
                "State":{{"Status":"{state}"}},
                "Config":{{"Image":"x","Labels":{{"com.docker.compose.service":"{service}",
                    "avalon.release":"{version}"{}}}}}}}]"#,
            digest.map_or(String::new(), |d| format!(
                r#","avalon.config-digest":"{d}""#
            ))
        );
        super::super::containers::parse_inspect(&json)
            .unwrap()
            .remove(0)
    }

    fn slot_blue(version: &str, digest: Option<&str>, state: &str) -> Vec<ContainerInfo> {
        vec![
            container("api-blue", version, digest, state),
            container("websocket-blue", version, digest, state),
            // The live slot's containers are no business of the decision.
            container("api-green", "1.1.0", Some(FAULTY), "running"),
            container("websocket-green", "1.1.0", Some(FAULTY), "running"),
        ]
    }

    #[test]
    fn kept_containers_with_the_recorded_digest_are_reused() {
        let stopped = kept_for(
            &slot_blue("1.0.0", Some(RECORDED), "exited"),
            Slot::Blue,
            &release(),
        );
        let Kept::Stopped(containers) = &stopped else {
            panic!("{stopped:?}")
        };
        assert_eq!(
            containers
                .iter()
                .map(|c| c.service.as_str())
                .collect::<Vec<_>>(),
            ["api-blue", "websocket-blue"]
        );
        assert!(
            stopped
                .describe(Slot::Blue, &release())
                .starts_with("reuse:")
        );
        let running = kept_for(
            &slot_blue("1.0.0", Some(RECORDED), "running"),
            Slot::Blue,
            &release(),
        );
        assert_eq!(running, Kept::Running);
    }

    #[test]
    fn the_same_version_with_another_config_digest_is_recreated_and_the_plan_says_why() {
        // An aborted canary of 1.0.0 with FAULT_INJECT_5XX_RATE: same version label, other digest.
        let kept = kept_for(
            &slot_blue("1.0.0", Some(FAULTY), "exited"),
            Slot::Blue,
            &release(),
        );
        let Kept::Recreate(why) = &kept else {
            panic!("{kept:?}")
        };
        assert!(why.contains("another configuration"), "{why}");
        assert!(
            why.contains("sha256:222222222222…") && why.contains("sha256:111111111111…"),
            "{why}"
        );
        assert!(
            kept.describe(Slot::Blue, &release())
                .starts_with("recreate slot blue from the ledger's image digests"),
            "{}",
            kept.describe(Slot::Blue, &release())
        );
    }

    #[test]
    fn another_version_no_digest_or_a_missing_service_is_recreated() {
        let reason =
            |containers: Vec<ContainerInfo>| match kept_for(&containers, Slot::Blue, &release()) {
                Kept::Recreate(why) => why,
                other => panic!("{other:?}"),
            };
        assert!(
            reason(slot_blue("0.9.0", Some(RECORDED), "exited")).contains("runs 0.9.0, not 1.0.0")
        );
        assert!(reason(slot_blue("1.0.0", None, "exited")).contains("carries no config digest"));
        let mut half = slot_blue("1.0.0", Some(RECORDED), "exited");
        half.remove(1);
        assert!(reason(half).contains("has no websocket-blue container"));
        // One container of the pair with another digest is enough to recreate the slot.
        let mut mixed = slot_blue("1.0.0", Some(RECORDED), "exited");
        mixed[1] = container("websocket-blue", "1.0.0", Some(FAULTY), "exited");
        assert!(reason(mixed).contains("p-websocket-blue-1"));
    }
}
