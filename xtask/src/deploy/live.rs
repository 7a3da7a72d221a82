//! The release in front of users as the edge routes it now (never the ledger's last intent), and the
//! decisions a pipeline takes from it: record it before a deploy, check the new release after, and on a
//! failure roll back only what this run changed (`rollback --to <before> --only-if-live-changed`).

use serde::Serialize;

use super::config::Timing;
use super::ledger::{Entry, History, Outcome};
use super::plan::{self, Action, Live};
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

/// The edge against the ledger: whether what users get passed a verification, and what is left open.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Situation {
    /// The edge serves the ledger's last verified release (or no slotted one); `unfinished` is a deploy
    /// that was interrupted or killed before it took traffic (or before its drain).
    Consistent { unfinished: Option<Entry> },
    /// The edge serves a release no verification passed: a deploy killed (or cut off) after its switch.
    Unverified {
        serving: LiveRelease,
        /// The newest release that passed its verification, where rollback returns.
        verified: Option<Box<Entry>>,
        unfinished: Option<Box<Entry>>,
    },
}

pub fn situation(history: &History, serving: &LiveRelease) -> Situation {
    let unfinished = history.unfinished_deploy().cloned();
    let verified = history.live();
    let differs = match (serving.slot, verified) {
        (Some(slot), Some(verified)) => {
            verified.slot != slot.name()
                || serving.version.as_deref() != Some(verified.release.version.as_str())
        }
        // Nothing verified yet but a slot serves: only an unfinished deploy can have put it there.
        (Some(_), None) => unfinished.is_some(),
        (None, _) => false,
    };
    if differs {
        Situation::Unverified {
            serving: serving.clone(),
            verified: verified.cloned().map(Box::new),
            unfinished: unfinished.map(Box::new),
        }
    } else {
        Situation::Consistent { unfinished }
    }
}

impl Situation {
    /// What an operator should do, in a sentence or two; empty when nothing is open.
    pub fn advice(&self) -> Option<String> {
        match self {
            Situation::Consistent { unfinished: None } => None,
            Situation::Consistent {
                unfinished: Some(entry),
            } => Some(format!(
                "deploy #{} of {} did not finish ({}); the edge serves the verified release. \
                 `cargo xtask deploy --resume` finishes it; a new deploy or rollback is safe too",
                entry.seq,
                entry.release.version,
                how_it_ended(entry)
            )),
            Situation::Unverified {
                serving,
                verified,
                unfinished: None,
            } => Some(format!(
                "the edge serves {}, which the ledger does not record as verified (a rollback whose \
                 verification failed, or a change by hand); the ledger's last verified release is {}. \
                 Name the release to serve: `cargo xtask rollback --to VERSION`, or deploy a fix",
                serving.describe(),
                verified.as_ref().map_or("none".to_owned(), |e| format!(
                    "{} (slot {})",
                    e.release.version, e.slot
                ))
            )),
            Situation::Unverified {
                serving, verified, ..
            } => Some(format!(
                "the edge serves {}, which no verification passed (a deploy stopped after its switch). \
                 `cargo xtask deploy --resume` verifies it and finishes the deploy; `cargo xtask rollback` \
                 returns to {}",
                serving.describe(),
                verified
                    .as_ref()
                    .map_or("the release before it".to_owned(), |e| format!(
                        "{} (slot {}), the last verified release",
                        e.release.version, e.slot
                    ))
            )),
        }
    }
}

fn how_it_ended(entry: &Entry) -> String {
    match (entry.outcome, &entry.note) {
        (Outcome::Started, _) => "no outcome recorded: killed, or still running".to_owned(),
        (_, Some(note)) => format!("{:?}: {note}", entry.outcome).to_lowercase(),
        (outcome, None) => format!("{outcome:?}").to_lowercase(),
    }
}

/// Where a plain `rollback` returns: after a deploy stopped past its switch, to the last verified release
/// (the one the edge left); otherwise to the good release before the live one.
pub fn rollback_target<'h>(history: &'h History, serving: &LiveRelease) -> Option<&'h Entry> {
    match situation(history, serving) {
        Situation::Unverified { .. } => history.live(),
        Situation::Consistent { .. } => history.previous_good(),
    }
}

/// Whether `version` on `slot` is what the edge serves now.
pub fn serves(serving: &LiveRelease, version: &str, slot: &str) -> bool {
    serving.version.as_deref() == Some(version) && serving.slot.is_some_and(|s| s.name() == slot)
}

/// How `deploy --resume` finishes the unfinished deploy `entry` given what the edge serves: the target
/// slot, and the actions; `None` when it cannot (the entry names no slot).
pub fn resume_plan(
    entry: &Entry,
    serving: &LiveRelease,
    live: Live,
    timing: &Timing,
) -> Option<(Slot, Vec<Action>)> {
    let slot = Slot::parse(&entry.slot)?;
    if !serves(serving, &entry.release.version, &entry.slot) {
        // Traffic is on the release before it: the deploy again, from its start.
        let (target, actions) = plan::deploy_plan(live, &entry.release, timing);
        return Some((target, actions));
    }
    let verified = entry.outcome == Outcome::Interrupted && entry.weight == 100;
    let mut actions = Vec::new();
    if !verified {
        actions.push(Action::Verify {
            slot,
            window_seconds: timing.verify_window.as_secs(),
            // A deploy resumed: a failed verification undoes it as it would have the first time.
            on_failure: plan::OnFailure::Undo,
        });
    }
    actions.push(Action::Route {
        routing: Routing::all_to(slot),
        keep_idle: None,
    });
    actions.push(Action::DrainAndStop {
        slot: slot.other(),
        wait_seconds: timing.drain.as_secs(),
    });
    Some((slot, actions))
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
            hostname: String::new(),
            networks: Default::default(),
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

    fn entry(seq: u64, version: &str, slot: &str, outcome: Outcome, weight: u8) -> Entry {
        use super::super::ledger::{Event, Release};
        Entry {
            seq,
            at: time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + seq as i64).unwrap(),
            event: Event::Deploy,
            release: Release {
                version: version.to_owned(),
                images: Default::default(),
                config_digest: "sha256:c".to_owned(),
            },
            slot: slot.to_owned(),
            weight,
            outcome,
            who: "ops@host".to_owned(),
            from: "checkout".to_owned(),
            note: None,
            plan: None,
            fence: Some(seq),
        }
    }

    fn timing() -> Timing {
        Timing {
            ready_timeout: std::time::Duration::from_secs(60),
            drain: std::time::Duration::from_secs(3),
            verify_window: std::time::Duration::from_secs(8),
            min_free_disk_mib: 1,
        }
    }

    /// 1.0.0 verified on blue, then a deploy of 1.1.0 to green that ended as `outcome`.
    fn after(outcome: Outcome, weight: u8) -> History {
        History {
            entries: vec![
                entry(1, "0.9.0", "green", Outcome::Succeeded, 100),
                entry(2, "1.0.0", "blue", Outcome::Succeeded, 100),
                entry(3, "1.1.0", "green", Outcome::Started, 0),
                entry(4, "1.1.0", "green", outcome, weight),
            ],
            damaged: Vec::new(),
        }
    }

    fn serving(slot: Slot) -> LiveRelease {
        let containers = vec![
            container("api-blue", "1.0.0", "running", "healthy"),
            container("websocket-blue", "1.0.0", "running", "healthy"),
            container("api-green", "1.1.0", "running", "healthy"),
            container("websocket-green", "1.1.0", "running", "healthy"),
        ];
        LiveRelease::of(Some(Routing::all_to(slot)), &containers)
    }

    #[test]
    fn a_deploy_interrupted_and_put_back_leaves_the_verified_release_live_and_resumable() {
        let history = after(Outcome::Interrupted, 0);
        let edge = serving(Slot::Blue);
        let found = situation(&history, &edge);
        assert!(
            matches!(&found, Situation::Consistent { unfinished: Some(e) } if e.seq == 4),
            "{found:?}"
        );
        assert!(found.advice().unwrap().contains("deploy --resume"));
        // Rollback undoes the live release, not the interrupted one: back to 0.9.0.
        assert_eq!(
            rollback_target(&history, &edge).unwrap().release.version,
            "0.9.0"
        );
        // Resume: the deploy again from its start, onto green.
        let (slot, actions) = resume_plan(
            &history.entries[3],
            &edge,
            Live::Slot(Slot::Blue),
            &timing(),
        )
        .unwrap();
        assert_eq!(slot, Slot::Green);
        assert!(matches!(
            actions[0],
            Action::StartSlot {
                slot: Slot::Green,
                ..
            }
        ));
    }

    #[test]
    fn a_deploy_killed_after_its_switch_is_unverified_and_rollback_returns_to_the_verified_release()
    {
        // SIGKILL after the switch: the ledger's last word on 1.1.0 is `started`, the edge serves it.
        let mut history = after(Outcome::Started, 0);
        history.entries.pop();
        let edge = serving(Slot::Green);
        let found = situation(&history, &edge);
        assert!(matches!(found, Situation::Unverified { .. }), "{found:?}");
        let advice = found.advice().unwrap();
        assert!(
            advice.contains("1.0.0 (slot blue), the last verified release"),
            "{advice}"
        );
        // Not "the release before 1.0.0": the release the edge left.
        assert_eq!(
            rollback_target(&history, &edge).unwrap().release.version,
            "1.0.0"
        );
        // Resume verifies what serves, then finishes the switch and drains the old slot.
        let (slot, actions) = resume_plan(
            &history.entries[2],
            &edge,
            Live::Slot(Slot::Green),
            &timing(),
        )
        .unwrap();
        assert_eq!(slot, Slot::Green);
        assert!(matches!(
            actions[0],
            Action::Verify {
                slot: Slot::Green,
                ..
            }
        ));
        assert!(matches!(
            actions.last().unwrap(),
            Action::DrainAndStop {
                slot: Slot::Blue,
                ..
            }
        ));
    }

    #[test]
    fn a_deploy_interrupted_in_its_drain_is_live_and_resume_only_drains() {
        let history = after(Outcome::Interrupted, 100);
        let edge = serving(Slot::Green);
        assert!(matches!(
            situation(&history, &edge),
            Situation::Consistent {
                unfinished: Some(_)
            }
        ));
        let (_, actions) = resume_plan(
            &history.entries[3],
            &edge,
            Live::Slot(Slot::Green),
            &timing(),
        )
        .unwrap();
        assert!(!actions.iter().any(|a| matches!(a, Action::Verify { .. })));
        assert_eq!(
            rollback_target(&history, &edge).unwrap().release.version,
            "1.0.0"
        );
    }

    #[test]
    fn a_finished_history_has_nothing_open() {
        let mut history = after(Outcome::Succeeded, 100);
        history.entries.remove(2);
        let found = situation(&history, &serving(Slot::Green));
        assert_eq!(found, Situation::Consistent { unfinished: None });
        assert!(found.advice().is_none());
    }
}
