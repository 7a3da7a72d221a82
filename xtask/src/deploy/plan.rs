//! Deploy and rollback as a list of actions, built before anything changes. `--dry-run` prints the list;
//! a real run executes the very same list, so the plan shown is the plan run.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::containers::KeptContainer;
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
    /// Watch `slot` for a while (probe traffic included) and judge it; a failure undoes the change.
    Verify { slot: Slot, window_seconds: u64 },
    /// Let nginx's old workers finish, then stop the slot (SIGTERM: readiness 503, WebSocket clients are
    /// told to reconnect, in-flight requests finish). The containers are kept for an instant rollback.
    DrainAndStop { slot: Slot, wait_seconds: u64 },
    /// The same for the unslotted `api`/`websocket` services after the first slotted deploy.
    DrainAndStopUnslotted { wait_seconds: u64 },
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
            } => write!(
                f,
                "verify slot {slot} for {window_seconds}s from the access log (probe traffic included); \
                 a failed judgment undoes the deploy"
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

/// What the slot a rollback returns to holds of the wanted release.
#[derive(Debug, Clone, PartialEq)]
pub enum Kept {
    /// Its containers run another release or none: start it from the ledger's digests.
    Gone,
    /// Its containers were stopped after a drain: start them again.
    Stopped(Vec<KeptContainer>),
    /// Still running (e.g. an aborted canary's stable slot): only traffic moves.
    Running,
}

/// How a rollback gets the other slot back in front of users.
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
        Kept::Gone => actions.push(Action::StartSlot {
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
    if live_intact {
        actions.push(Action::Route {
            routing: Routing::all_to(target),
            keep_idle: Some(live),
        });
    }
    actions.push(Action::Route {
        routing: Routing::all_to(target),
        keep_idle: None,
    });
    actions.push(Action::DrainAndStop {
        slot: live,
        wait_seconds: timing.drain.as_secs(),
    });
    actions
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
        let gone = rollback_plan(Slot::Green, true, Kept::Gone, &release(), &timing());
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
}
