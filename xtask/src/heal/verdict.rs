//! What heal does about one container, and how often: pure decisions from what `docker inspect` and the edge
//! say (see the module above for the rules).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::deploy::{ContainerInfo, Slot, UNSLOTTED_SERVICES};

/// Per-service back-off between heals.
#[derive(Default)]
pub struct Backoff {
    last: BTreeMap<String, (Instant, u32)>,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl Backoff {
    /// Whether `service` may be healed at `now`, and if so records the heal.
    pub fn admit(&mut self, service: &str, now: Instant) -> Result<u32, Duration> {
        match self.last.get(service) {
            Some((at, count)) => {
                let wait = FIRST_BACKOFF
                    .saturating_mul(1 << (*count - 1).min(5))
                    .min(MAX_BACKOFF);
                let ready = *at + wait;
                if now < ready {
                    return Err(ready - now);
                }
                // A service healthy for a long stretch starts again from the first back-off.
                let count = if now.duration_since(*at) > MAX_BACKOFF * 2 {
                    1
                } else {
                    count + 1
                };
                self.last.insert(service.to_owned(), (now, count));
                Ok(count)
            }
            None => {
                self.last.insert(service.to_owned(), (now, 1));
                Ok(1)
            }
        }
    }
}

/// How long an exited container is left to Docker's restart policy before heal starts it.
pub const SETTLE: Duration = Duration::from_secs(5);

/// What heal does about one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Leave,
    /// Running, but its healthcheck failed `--after` times in a row: `docker container restart`.
    RestartHung,
    /// Exited on its own and nothing will start it: `docker container start`.
    StartExited,
}

/// What the edge sends users to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// The unslotted `api` and `websocket` of `cargo xtask up` (no deploy has moved the stack to slots).
    Unslotted,
    /// These slots: the primary, and a canary with a share above 0.
    Slots(Vec<Slot>),
    /// The edge could not be read on a stack that has slots.
    Unknown,
}

/// The decision for `container` at `now`.
pub fn verdict(
    container: &ContainerInfo,
    after: u64,
    serving: &Serving,
    now: time::OffsetDateTime,
) -> Verdict {
    if container.service.is_empty() || container.one_off {
        return Verdict::Leave;
    }
    if container.running() {
        return if container.health == "unhealthy" && container.failing_streak >= after {
            Verdict::RestartHung
        } else {
            Verdict::Leave
        };
    }
    let ended_on_its_own = container.exit_code != 0 || container.oom_killed;
    let settled = container
        .finished_at
        .is_some_and(|at| now - at >= time::Duration::try_from(SETTLE).unwrap_or_default());
    let serves_users = match container.slot {
        // The unslotted api/websocket are retired (stopped) by the first slotted deploy.
        None if UNSLOTTED_SERVICES.contains(&container.service.as_str()) => {
            *serving == Serving::Unslotted
        }
        // nginx, redis, mongodb: always in service.
        None => true,
        Some(slot) => matches!(serving, Serving::Slots(slots) if slots.contains(&slot)),
    };
    if container.state == "exited" && ended_on_its_own && settled && serves_users {
        Verdict::StartExited
    } else {
        Verdict::Leave
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::deploy::parse_inspect;

    const NOW: &str = "2026-12-04T20:00:00Z";

    /// One container as `docker container inspect` shows it, ended `ended_ago` seconds before [`NOW`].
    fn inspected(
        name: &str,
        service: &str,
        state: &str,
        exit_code: i64,
        oom: bool,
        ended_ago: i64,
    ) -> ContainerInfo {
        let now = time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339)
            .unwrap();
        let finished = if ended_ago < 0 {
            "0001-01-01T00:00:00Z".to_owned()
        } else {
            (now - time::Duration::seconds(ended_ago))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let json = format!(
            r#"[{{"Id":"0123456789abcdef","Name":"/{name}","Image":"sha256:img","RestartCount":0,
                "State":{{"Status":"{state}","ExitCode":{exit_code},"OOMKilled":{oom},
                          "StartedAt":"2026-12-04T19:00:00.123456789Z","FinishedAt":"{finished}"}},
                "HostConfig":{{"RestartPolicy":{{"Name":"no","MaximumRetryCount":0}}}},
                "Config":{{"Image":"x","Labels":{{"com.docker.compose.project":"avalon-offline",
                                                  "com.docker.compose.service":"{service}"}}}}}}]"#
        );
        parse_inspect(&json).unwrap().remove(0)
    }

    fn decide(container: &ContainerInfo, serving: &Serving) -> Verdict {
        let now = time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339)
            .unwrap();
        verdict(container, 3, serving, now)
    }

    #[test]
    fn crashed_killed_or_oom_killed_services_are_started_again() {
        let crashed = inspected("avalon-offline-nginx-1", "nginx", "exited", 1, false, 30);
        assert_eq!(crashed.finished_at.map(|at| at.year()), Some(2026));
        assert_eq!(decide(&crashed, &Serving::Unknown), Verdict::StartExited);
        let killed = inspected("avalon-offline-redis-1", "redis", "exited", 137, false, 30);
        assert_eq!(decide(&killed, &Serving::Unknown), Verdict::StartExited);
        let oom = inspected("avalon-offline-api-1", "api", "exited", 137, true, 30);
        assert_eq!(decide(&oom, &Serving::Unslotted), Verdict::StartExited);
    }

    #[test]
    fn a_clean_stop_is_someones_decision_and_is_respected() {
        let stopped = inspected("avalon-offline-redis-1", "redis", "exited", 0, false, 600);
        assert_eq!(decide(&stopped, &Serving::Unslotted), Verdict::Leave);
    }

    #[test]
    fn docker_restart_policy_gets_the_first_seconds() {
        let just_now = inspected("avalon-offline-nginx-1", "nginx", "exited", 1, false, 1);
        assert_eq!(decide(&just_now, &Serving::Unslotted), Verdict::Leave);
        let restarting = inspected(
            "avalon-offline-nginx-1",
            "nginx",
            "restarting",
            1,
            false,
            30,
        );
        assert_eq!(decide(&restarting, &Serving::Unslotted), Verdict::Leave);
        let never_ended = inspected("avalon-offline-nginx-1", "nginx", "created", 0, false, -1);
        assert_eq!(never_ended.finished_at, None);
        assert_eq!(decide(&never_ended, &Serving::Unslotted), Verdict::Leave);
        let dead = inspected("avalon-offline-nginx-1", "nginx", "dead", 137, false, 30);
        assert_eq!(decide(&dead, &Serving::Unslotted), Verdict::Leave);
    }

    #[test]
    fn only_the_slots_the_edge_routes_to_are_started_again() {
        let live = inspected(
            "avalon-offline-api-green-1",
            "api-green",
            "exited",
            137,
            false,
            30,
        );
        let idle = inspected(
            "avalon-offline-api-blue-1",
            "api-blue",
            "exited",
            137,
            false,
            30,
        );
        assert_eq!(live.slot, Some(Slot::Green));
        assert_eq!(
            decide(&live, &Serving::Slots(vec![Slot::Green])),
            Verdict::StartExited
        );
        assert_eq!(
            decide(&idle, &Serving::Slots(vec![Slot::Green])),
            Verdict::Leave
        );
        assert_eq!(
            decide(&idle, &Serving::Slots(vec![Slot::Green, Slot::Blue])),
            Verdict::StartExited,
            "a canary with a share serves users"
        );
        assert_eq!(
            decide(&live, &Serving::Unknown),
            Verdict::Leave,
            "edge unreadable: no slot is touched"
        );
    }

    #[test]
    fn the_unslotted_api_retired_by_a_slotted_deploy_stays_down() {
        let retired = inspected("avalon-offline-api-1", "api", "exited", 137, false, 30);
        let blue = Serving::Slots(vec![Slot::Blue]);
        assert_eq!(decide(&retired, &blue), Verdict::Leave);
        assert_eq!(decide(&retired, &Serving::Unknown), Verdict::Leave);
        assert_eq!(decide(&retired, &Serving::Unslotted), Verdict::StartExited);
        let redis = inspected("avalon-offline-redis-1", "redis", "exited", 137, false, 30);
        assert_eq!(
            decide(&redis, &blue),
            Verdict::StartExited,
            "redis serves every slot"
        );
    }

    #[test]
    fn hung_containers_are_restarted_after_the_streak() {
        let json = r#"[{"Id":"0123456789abcdef","Name":"/avalon-offline-websocket-1","Image":"sha256:img","RestartCount":0,
            "State":{"Status":"running","ExitCode":0,"Health":{"Status":"unhealthy","FailingStreak":3}},
            "Config":{"Image":"x","Labels":{"com.docker.compose.service":"websocket"}}}]"#;
        let mut hung = parse_inspect(json).unwrap().remove(0);
        assert_eq!(decide(&hung, &Serving::Unknown), Verdict::RestartHung);
        hung.failing_streak = 2;
        assert_eq!(decide(&hung, &Serving::Unknown), Verdict::Leave);
    }

    #[test]
    fn one_off_and_foreign_containers_are_left_alone() {
        let mut one_off = inspected("avalon-offline-api-run-1", "api", "exited", 1, false, 30);
        one_off.one_off = true;
        assert_eq!(decide(&one_off, &Serving::Unslotted), Verdict::Leave);
        let foreign = inspected("something", "", "exited", 1, false, 30);
        assert_eq!(decide(&foreign, &Serving::Unslotted), Verdict::Leave);
    }

    #[test]
    fn heals_of_one_service_back_off_and_recover() {
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(backoff.admit("api-blue", t0), Ok(1));
        assert!(
            backoff
                .admit("api-blue", t0 + Duration::from_secs(10))
                .is_err()
        );
        assert_eq!(backoff.admit("websocket-blue", t0), Ok(1));
        assert_eq!(
            backoff.admit("api-blue", t0 + Duration::from_secs(31)),
            Ok(2)
        );
        assert_eq!(
            backoff
                .admit("api-blue", t0 + Duration::from_secs(60))
                .unwrap_err(),
            Duration::from_secs(31)
        );
        assert_eq!(
            backoff.admit("api-blue", t0 + Duration::from_secs(92)),
            Ok(3)
        );
        assert_eq!(
            backoff.admit("api-blue", t0 + Duration::from_secs(92 + 1300)),
            Ok(1)
        );
    }
}
