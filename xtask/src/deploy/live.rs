//! The release in front of users as the edge routes it now (never the ledger's last intent), and the
//! decisions a pipeline takes from it: record it before a deploy, check the new release after, and on a
//! failure roll back only what this run changed (`rollback --to <before> --only-if-live-changed`).

use serde::Serialize;

use super::slots::{Routing, Slot};
use super::target::ContainerInfo;

/// What the edge serves: the primary slot and its release, and a canary share if one is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveRelease {
    /// `None` when the edge routes to no slot (an unslotted stack or no stack).
    pub slot: Option<Slot>,
    /// The release label of the primary slot's containers.
    pub version: Option<String>,
    /// A canary taking a share of users: slot, weight, its release.
    pub canary: Option<Canary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Canary {
    pub slot: Slot,
    pub weight: u8,
    pub version: Option<String>,
}

impl LiveRelease {
    pub fn of(routing: Option<Routing>, containers: &[ContainerInfo]) -> Self {
        let Some(routing) = routing else {
            return Self {
                slot: None,
                version: None,
                canary: None,
            };
        };
        Self {
            slot: Some(routing.primary),
            version: slot_version(routing.primary, containers),
            canary: routing
                .canary
                .filter(|(_, weight)| *weight > 0)
                .map(|(slot, weight)| Canary {
                    slot,
                    weight,
                    version: slot_version(slot, containers),
                }),
        }
    }

    /// One line for logs and `$GITHUB_OUTPUT`-style readers.
    pub fn describe(&self) -> String {
        let mut text = match (&self.slot, &self.version) {
            (Some(slot), Some(version)) => format!("{version} on slot {slot}"),
            (Some(slot), None) => format!("an unlabelled release on slot {slot}"),
            _ => "no slotted release (unslotted or empty stack)".to_owned(),
        };
        if let Some(canary) = &self.canary {
            text.push_str(&format!(
                "; canary {} at {}% on slot {}",
                canary.version.as_deref().unwrap_or("unlabelled"),
                canary.weight,
                canary.slot
            ));
        }
        text
    }
}

/// The release label of a slot's containers (the api container's; both carry the same).
fn slot_version(slot: Slot, containers: &[ContainerInfo]) -> Option<String> {
    let api = slot.api_service();
    containers
        .iter()
        .filter(|c| c.service == api)
        .min_by_key(|c| !c.running())
        .and_then(|c| c.release.clone())
}

/// Why `expected` is not fully live and healthy now; empty when it is: the edge sends everyone to one
/// slot, that slot runs `expected`, and each of its containers runs and passes its healthcheck.
pub fn problems_with(
    live: &LiveRelease,
    containers: &[ContainerInfo],
    expected: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(slot) = live.slot else {
        return vec![format!(
            "the edge routes to no slot; {expected} is not live"
        )];
    };
    if live.version.as_deref() != Some(expected) {
        problems.push(format!(
            "the edge's primary slot {slot} runs {}, not {expected}",
            live.version.as_deref().unwrap_or("an unlabelled release")
        ));
    }
    if let Some(canary) = &live.canary {
        problems.push(format!(
            "a canary still takes {}% on slot {}",
            canary.weight, canary.slot
        ));
    }
    for service in slot.services() {
        let mine: Vec<&ContainerInfo> =
            containers.iter().filter(|c| c.service == service).collect();
        if mine.is_empty() {
            problems.push(format!("slot {slot} has no {service} container"));
        }
        for c in mine {
            if !c.healthy() {
                problems.push(format!(
                    "{} ({service}) is {}{}",
                    c.name,
                    c.state,
                    if c.running() {
                        format!(", health {}", c.health)
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    problems
}

/// What a failure step does, given the release that was live before the run and what is live now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// This run moved no traffic (or there is nothing to return to): change nothing.
    Nothing(String),
    /// This run left a canary taking a share: abort it (weight 0, drain), which returns everyone to
    /// the stable slot; then decide again.
    AbortCanary,
    /// This run moved everyone to another release: return to `before`.
    RollBack { to: String },
}

pub fn after_failure(before: &str, now: &LiveRelease) -> AfterFailure {
    let before = before.trim();
    if now.canary.is_some() {
        return AfterFailure::AbortCanary;
    }
    if before.is_empty() {
        return AfterFailure::Nothing(format!(
            "no slotted release was live before this run, so there is none to return to; live now: {}",
            now.describe()
        ));
    }
    if now.version.as_deref() == Some(before) {
        return AfterFailure::Nothing(format!(
            "{before} is still live: this run moved no traffic (live: {})",
            now.describe()
        ));
    }
    AfterFailure::RollBack {
        to: before.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn container(service: &str, release: &str, state: &str, health: &str) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{service}"),
            name: format!("p-{service}-1"),
            service: service.to_owned(),
            slot: Slot::of_service(service),
            image: "img".to_owned(),
            image_id: "sha256:1".to_owned(),
            release: Some(release.to_owned()),
            config_digest: None,
            state: state.to_owned(),
            health: health.to_owned(),
            restart_count: 0,
            failing_streak: 0,
            exit_code: 0,
            oom_killed: false,
            finished_at: None,
            one_off: false,
            healthcheck: None,
            binds: Default::default(),
        }
    }

    fn stack() -> Vec<ContainerInfo> {
        vec![
            container("api-blue", "1.0.0", "exited", "healthy"),
            container("websocket-blue", "1.0.0", "exited", "healthy"),
            container("api-green", "1.1.0", "running", "healthy"),
            container("websocket-green", "1.1.0", "running", "healthy"),
        ]
    }

    #[test]
    fn the_live_release_is_the_primary_slots_label_and_a_canary_share_is_named() {
        let live = LiveRelease::of(Some(Routing::all_to(Slot::Green)), &stack());
        assert_eq!(live.version.as_deref(), Some("1.1.0"));
        assert_eq!(live.canary, None);
        let split = LiveRelease::of(
            Some(Routing {
                primary: Slot::Blue,
                canary: Some((Slot::Green, 25)),
            }),
            &stack(),
        );
        assert_eq!(split.version.as_deref(), Some("1.0.0"));
        assert_eq!(
            split.canary.as_ref().unwrap().version.as_deref(),
            Some("1.1.0")
        );
        assert_eq!(LiveRelease::of(None, &stack()).slot, None);
    }

    #[test]
    fn the_expected_release_must_take_everyone_and_be_healthy() {
        let containers = stack();
        let green = LiveRelease::of(Some(Routing::all_to(Slot::Green)), &containers);
        assert_eq!(
            problems_with(&green, &containers, "1.1.0"),
            Vec::<String>::new()
        );
        assert!(problems_with(&green, &containers, "1.2.0")[0].contains("runs 1.1.0, not 1.2.0"));
        let mut broken = containers.clone();
        broken[3].state = "exited".to_owned();
        let found = problems_with(&green, &broken, "1.1.0");
        assert_eq!(found, ["p-websocket-green-1 (websocket-green) is exited"]);
        let mut unhealthy = containers.clone();
        unhealthy[2].health = "unhealthy".to_owned();
        assert!(problems_with(&green, &unhealthy, "1.1.0")[0].contains("health unhealthy"));
        let split = LiveRelease::of(
            Some(Routing {
                primary: Slot::Green,
                canary: Some((Slot::Blue, 5)),
            }),
            &containers,
        );
        assert!(problems_with(&split, &containers, "1.1.0")[0].contains("canary still takes 5%"));
    }

    #[test]
    fn a_failure_rolls_back_only_what_the_run_moved_and_only_to_the_release_before_it() {
        let containers = stack();
        let green = LiveRelease::of(Some(Routing::all_to(Slot::Green)), &containers);
        // The run failed before moving traffic (a pre-flight failure): the release before is live.
        assert!(
            matches!(after_failure("1.1.0", &green), AfterFailure::Nothing(why) if why.contains("moved no traffic"))
        );
        // The run moved everyone to 1.1.0 and then failed: back to exactly 1.0.0.
        assert_eq!(
            after_failure("1.0.0", &green),
            AfterFailure::RollBack {
                to: "1.0.0".to_owned()
            }
        );
        // Nothing slotted was live before: nothing to return to.
        assert!(
            matches!(after_failure("", &green), AfterFailure::Nothing(why) if why.contains("none to return to"))
        );
        // A canary left open takes priority: abort it first.
        let split = LiveRelease::of(
            Some(Routing {
                primary: Slot::Blue,
                canary: Some((Slot::Green, 25)),
            }),
            &containers,
        );
        assert_eq!(after_failure("1.0.0", &split), AfterFailure::AbortCanary);
    }
}
