//! Deploy, rollback and promotion as a list of actions, built before anything changes. `--dry-run` prints
//! the list; a real run executes the very same list, so the plan shown is the plan run. Every change of
//! the route that sends everyone to another slot is followed by the same verification (a watched window
//! and its judgment) before the slot traffic left is dropped.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::containers::KeptContainer;
use super::kept::Kept;
use super::ledger::Release;
use super::slots::{Routing, Slot};

/// Where traffic goes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Live {
    /// Nothing runs (no stack, or an empty one).
    Nothing,
    /// The stack as `cargo xtask up` started it: services `api` and `websocket`, no slots yet.
    Unslotted,
    Slot(Slot),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Start (or recreate) a slot's containers with a release and wait until every healthcheck passes.
    StartSlot {
        slot: Slot,
        release: Release,
        timeout_seconds: u64,
    },
    /// Start a slot's stopped containers again (its release is unchanged) and wait until healthy.
    RestartSlot {
        slot: Slot,
        timeout_seconds: u64,
        /// The kept containers as the plan found them: the restart asks the engine nothing more.
        #[serde(skip)]
        containers: Vec<KeptContainer>,
    },
    /// Render the edge for this routing, `nginx -t`, swap, graceful reload, verify.
    Route {
        routing: Routing,
        keep_idle: Option<Slot>,
    },
    /// Send everything back to the services of the unslotted stack.
    RouteUnslotted,
    /// Watch `slot` for a while (probe traffic included) and judge it; nothing after it runs on a failure,
    /// and the command does what `on_failure` says.
    Verify {
        slot: Slot,
        window_seconds: u64,
        on_failure: OnFailure,
    },
    /// Let nginx's old workers finish, then stop the slot (SIGTERM: readiness 503, WebSocket clients are
    /// told to reconnect, in-flight requests finish). The containers are kept for an instant rollback.
    DrainAndStop { slot: Slot, wait_seconds: u64 },
    /// The same for the unslotted `api`/`websocket` services after the first slotted deploy.
    DrainAndStopUnslotted { wait_seconds: u64 },
}

/// What a command does when the verification after its switch fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Everyone goes back to where they were and the new slot stops (a deploy, a promotion).
    Undo,
    /// Traffic stays where it is, the previous slot keeps running at 0 %, and the command fails loudly
    /// (a rollback: switching back would ping-pong between two releases).
    Stop,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::StartSlot {
                slot,
                release,
                timeout_seconds,
            } => write!(
                f,
                "start slot {slot} with {} ({}) and wait ≤ {timeout_seconds}s until healthy",
                release.version,
                release
                    .images
                    .iter()
                    .map(|(s, i)| format!("{s}={i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::RestartSlot {
                slot,
                timeout_seconds,
                ..
            } => {
                write!(
                    f,
                    "start the kept containers of slot {slot} and wait ≤ {timeout_seconds}s until healthy"
                )
            }
            Action::Route { routing, keep_idle } => {
                write!(f, "route {}", routing.describe())?;
                if let Some(idle) = keep_idle {
                    write!(
                        f,
                        " (slot {idle} stays in the upstreams at 0% until it is stopped)"
                    )?;
                }
                write!(f, ": render, nginx -t, graceful reload, verify")
            }
            Action::RouteUnslotted => {
                write!(f, "route 100% to the unslotted services api/websocket")
            }
            Action::Verify {
                slot,
                window_seconds,
                on_failure,
            } => write!(
                f,
                "verify slot {slot} for {window_seconds}s from the access log (probe traffic included); {}",
                match on_failure {
                    OnFailure::Undo => "a failed judgment undoes the switch",
                    OnFailure::Stop =>
                        "a failed judgment stops here: traffic stays, the slot left keeps running, \
                         the command fails (no switching back and forth)",
                }
            ),
            Action::DrainAndStop { slot, wait_seconds } => write!(
                f,
                "drain slot {slot}: wait {wait_seconds}s, then stop it (SIGTERM drain; containers kept for rollback)"
            ),
            Action::DrainAndStopUnslotted { wait_seconds } => write!(
                f,
                "drain the unslotted api/websocket: wait {wait_seconds}s, then stop them (kept, not removed)"
            ),
        }
    }
}

/// The actions of a blue/green deploy of `release` given what is live.
pub fn deploy_plan(
    live: Live,
    release: &Release,
    timing: &super::config::Timing,
) -> (Slot, Vec<Action>) {
    let target = match live {
        Live::Slot(slot) => slot.other(),
        Live::Nothing | Live::Unslotted => Slot::Blue,
    };
    let secs = |d: Duration| d.as_secs();
    let mut actions = vec![Action::StartSlot {
        slot: target,
        release: release.clone(),
        timeout_seconds: secs(timing.ready_timeout),
    }];
    let old = match live {
        Live::Slot(slot) => Some(slot),
        _ => None,
    };
    actions.push(Action::Route {
        routing: Routing::all_to(target),
        keep_idle: old,
    });
    if live != Live::Nothing {
        actions.push(Action::Verify {
            slot: target,
            window_seconds: secs(timing.verify_window),
            on_failure: OnFailure::Undo,
        });
    }
    match live {
        Live::Slot(old) => {
            actions.push(Action::Route {
                routing: Routing::all_to(target),
                keep_idle: None,
            });
            actions.push(Action::DrainAndStop {
                slot: old,
                wait_seconds: secs(timing.drain),
            });
        }
        Live::Unslotted => actions.push(Action::DrainAndStopUnslotted {
            wait_seconds: secs(timing.drain),
        }),
        Live::Nothing => {}
    }
    (target, actions)
}

/// How a rollback gets the other slot back in front of users, verified like a deploy.
/// `live_intact`: every container of the live slot runs. When one does not (a release that broke after its
/// switch), its name no longer resolves on the edge's network, so nginx would reject any tree that keeps the
/// slot in the upstreams: the route goes straight to the target alone.
pub fn rollback_plan(
    live: Slot,
    live_intact: bool,
    kept: Kept,
    release: &Release,
    timing: &super::config::Timing,
) -> Vec<Action> {
    let target = live.other();
    let mut actions = Vec::new();
    match kept {
        Kept::Recreate(_) => actions.push(Action::StartSlot {
            slot: target,
            release: release.clone(),
            timeout_seconds: timing.ready_timeout.as_secs(),
        }),
        Kept::Stopped(containers) => actions.push(Action::RestartSlot {
            slot: target,
            timeout_seconds: timing.ready_timeout.as_secs(),
            containers,
        }),
        Kept::Running => {}
    }
    let verify = Action::Verify {
        slot: target,
        window_seconds: timing.verify_window.as_secs(),
        on_failure: OnFailure::Stop,
    };
    let alone = Action::Route {
        routing: Routing::all_to(target),
        keep_idle: None,
    };
    if live_intact {
        actions.push(Action::Route {
            routing: Routing::all_to(target),
            keep_idle: Some(live),
        });
        actions.push(verify);
        actions.push(alone);
    } else {
        actions.push(alone);
        actions.push(verify);
    }
    actions.push(Action::DrainAndStop {
        slot: live,
        wait_seconds: timing.drain.as_secs(),
    });
    actions
}

/// A canary's promotion, verified like a deploy: everyone on the canary with the stable slot still in
/// the upstreams at 0 %, the canary watched and judged, then the stable slot dropped, drained and stopped.
pub fn promote_plan(stable: Slot, canary: Slot, timing: &super::config::Timing) -> Vec<Action> {
    vec![
        Action::Route {
            routing: Routing::all_to(canary),
            keep_idle: Some(stable),
        },
        Action::Verify {
            slot: canary,
            window_seconds: timing.verify_window.as_secs(),
            on_failure: OnFailure::Undo,
        },
        Action::Route {
            routing: Routing::all_to(canary),
            keep_idle: None,
        },
        Action::DrainAndStop {
            slot: stable,
            wait_seconds: timing.drain.as_secs(),
        },
    ]
}

pub fn print(title: &str, actions: &[Action]) {
    println!("{title}");
    for (index, action) in actions.iter().enumerate() {
        println!("  {}. {action}", index + 1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::deploy::config::Timing;

    fn timing() -> Timing {
        Timing {
            ready_timeout: Duration::from_secs(120),
            drain: Duration::from_secs(10),
            verify_window: Duration::from_secs(30),
            min_free_disk_mib: 1024,
        }
    }

    fn release() -> Release {
        Release {
            version: "1.2.0".to_owned(),
            images: BTreeMap::from([("api".to_owned(), "avalon-api:1.2.0".to_owned())]),
            config_digest: "sha256:c".to_owned(),
        }
    }

    #[test]
    fn a_deploy_starts_the_idle_slot_verifies_before_dropping_the_old_one_then_drains_it() {
        let (target, actions) = deploy_plan(Live::Slot(Slot::Blue), &release(), &timing());
        assert_eq!(target, Slot::Green);
        let kinds: Vec<String> = actions.iter().map(ToString::to_string).collect();
        assert!(
            kinds[0].starts_with("start slot green with 1.2.0 (api=avalon-api:1.2.0)"),
            "{kinds:?}"
        );
        assert!(
            kinds[1].starts_with("route green 100% (slot blue stays"),
            "{kinds:?}"
        );
        assert!(
            kinds[2].starts_with("verify slot green for 30s"),
            "{kinds:?}"
        );
        assert!(
            kinds[3].starts_with("route green 100%: render"),
            "{kinds:?}"
        );
        assert!(
            kinds[4].starts_with("drain slot blue: wait 10s"),
            "{kinds:?}"
        );
    }

    #[test]
    fn the_first_slotted_deploy_replaces_the_unslotted_services() {
        let (target, actions) = deploy_plan(Live::Unslotted, &release(), &timing());
        assert_eq!(target, Slot::Blue);
        assert!(matches!(
            actions.last(),
            Some(Action::DrainAndStopUnslotted { wait_seconds: 10 })
        ));
    }

    #[test]
    fn rollback_is_a_switch_when_the_slot_is_kept_and_a_start_when_not() {
        let kept = rollback_plan(Slot::Green, true, Kept::Running, &release(), &timing());
        assert!(matches!(kept[0], Action::Route { .. }), "{kept:?}");
        let stopped = rollback_plan(
            Slot::Green,
            true,
            Kept::Stopped(Vec::new()),
            &release(),
            &timing(),
        );
        assert!(
            matches!(
                stopped[0],
                Action::RestartSlot {
                    slot: Slot::Blue,
                    ..
                }
            ),
            "{stopped:?}"
        );
        let gone = rollback_plan(
            Slot::Green,
            true,
            Kept::Recreate("another configuration".to_owned()),
            &release(),
            &timing(),
        );
        assert!(
            matches!(
                gone[0],
                Action::StartSlot {
                    slot: Slot::Blue,
                    ..
                }
            ),
            "{gone:?}"
        );
        assert!(matches!(
            gone.last(),
            Some(Action::DrainAndStop {
                slot: Slot::Green,
                ..
            })
        ));
        // A live slot with a stopped container cannot stay in the upstreams: no keep-idle route.
        let broken = rollback_plan(Slot::Green, false, Kept::Running, &release(), &timing());
        assert!(
            matches!(
                broken[0],
                Action::Route {
                    keep_idle: None,
                    ..
                }
            ),
            "{broken:?}"
        );
    }

    /// The kinds of a plan's actions, in order, with a Verify's slot and what its failure does.
    fn shape(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|action| match action {
                Action::StartSlot { slot, .. } => format!("start {slot}"),
                Action::RestartSlot { slot, .. } => format!("restart {slot}"),
                Action::Route {
                    routing,
                    keep_idle: Some(idle),
                } => format!("route {} keeping {idle}", routing.describe()),
                Action::Route { routing, .. } => format!("route {}", routing.describe()),
                Action::RouteUnslotted => "route unslotted".to_owned(),
                Action::Verify {
                    slot, on_failure, ..
                } => format!("verify {slot} {on_failure:?}"),
                Action::DrainAndStop { slot, .. } => format!("drain {slot}"),
                Action::DrainAndStopUnslotted { .. } => "drain unslotted".to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_rollback_is_verified_after_its_switch_and_a_failure_stops_rather_than_switching_back() {
        for kept in [
            Kept::Running,
            Kept::Stopped(Vec::new()),
            Kept::Recreate("no containers".to_owned()),
        ] {
            let first = match kept {
                Kept::Running => None,
                Kept::Stopped(_) => Some("restart blue"),
                Kept::Recreate(_) => Some("start blue"),
            };
            let actions = rollback_plan(Slot::Green, true, kept, &release(), &timing());
            let expected: Vec<&str> = first
                .into_iter()
                .chain([
                    "route blue 100% keeping green",
                    "verify blue Stop",
                    "route blue 100%",
                    "drain green",
                ])
                .collect();
            assert_eq!(shape(&actions), expected);
        }
        // The live slot broke: straight to the target alone, then the same verification.
        assert_eq!(
            shape(&rollback_plan(
                Slot::Green,
                false,
                Kept::Running,
                &release(),
                &timing()
            )),
            ["route blue 100%", "verify blue Stop", "drain green"]
        );
        let printed =
            rollback_plan(Slot::Green, true, Kept::Running, &release(), &timing())[1].to_string();
        assert!(
            printed.starts_with("verify slot blue for 30s") && printed.contains("stops here"),
            "{printed}"
        );
    }

    #[test]
    fn a_promotion_is_verified_like_a_deploy_before_the_stable_slot_is_dropped() {
        let actions = promote_plan(Slot::Blue, Slot::Green, &timing());
        assert_eq!(
            shape(&actions),
            [
                "route green 100% keeping blue",
                "verify green Undo",
                "route green 100%",
                "drain blue"
            ]
        );
        assert!(
            actions[1].to_string().contains("undoes the switch"),
            "{}",
            actions[1]
        );
        // And a deploy's verification undoes, the same action.
        let (_, deploy) = deploy_plan(Live::Slot(Slot::Blue), &release(), &timing());
        assert_eq!(shape(&deploy)[2], "verify green Undo");
    }
}
