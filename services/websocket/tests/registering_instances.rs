//! The instance registry as an operator sees it, on the real avalon-ws binary and a real redis-server: an
//! instance registers once ready, its heartbeat keeps the record alive past the TTL, SIGTERM (the drain a
//! scale-in triggers) flips it to `draining` at once, a clean exit deletes it, and an instance killed with
//! SIGKILL vanishes within REGISTRY_TTL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use avalon_runtime::registry::{InstanceRecord, InstanceState, KEY_PREFIX};
use avalon_testkit::{Signal, wait_until};
use support::{Redis, Ws};

const HEARTBEAT: &str = "200ms";
const TTL: Duration = Duration::from_secs(1);

fn records(redis: &Redis) -> Vec<InstanceRecord> {
    let mut connection = redis.connection();
    let keys: Vec<String> = redis::Commands::scan_match(&mut connection, format!("{KEY_PREFIX}*"))
        .unwrap()
        .collect();
    keys.iter()
        .filter_map(|key| {
            let json: Option<String> = redis::cmd("GET").arg(key).query(&mut connection).unwrap();
            json.map(|json| serde_json::from_str(&json).unwrap())
        })
        .collect()
}

fn record_of(redis: &Redis, port: u16) -> Option<InstanceRecord> {
    records(redis)
        .into_iter()
        .find(|record| record.port == port)
}

fn start(name: &str, redis: &Redis, extra: &[(&str, &str)]) -> Ws {
    let mut env = vec![
        ("REGISTRY_HEARTBEAT", HEARTBEAT),
        ("REGISTRY_TTL", "1s"),
        ("AVALON_SLOT", "blue"),
    ];
    env.extend_from_slice(extra);
    Ws::start(name, Some(redis), &env)
}

#[test]
fn an_instance_registers_when_ready_beats_drains_on_sigterm_and_is_deleted_at_exit() {
    let Some(redis) = Redis::start() else { return };
    // A drain delay long enough to see the `draining` record while the process still runs.
    let mut ws = start("ws-registered", &redis, &[("SHUTDOWN_DRAIN_DELAY", "2s")]);
    assert!(
        wait_until(Duration::from_secs(5), || record_of(&redis, ws.port)
            .is_some()),
        "registered within 5 s of becoming ready"
    );
    let first = record_of(&redis, ws.port).unwrap();
    assert_eq!(first.state, InstanceState::Ready);
    assert_eq!(first.service, "websocket");
    assert_eq!(first.slot.as_deref(), Some("blue"));
    assert_eq!(first.address, format!("127.0.0.1:{}", ws.port));
    assert_eq!(first.id, format!("websocket-{}-{}", first.host, ws.port));
    assert_eq!(
        (first.connections, first.rooms, first.live_games),
        (0, 0, 0)
    );
    let default_max: u64 = avalon_runtime::config::spec::MAX_CONNECTIONS
        .default
        .and_then(|text| text.parse().ok())
        .unwrap();
    assert_eq!(first.max_connections, default_max);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(format!("{KEY_PREFIX}{}", first.id))
        .query(&mut redis.connection())
        .unwrap();
    assert!(
        (1..=1000).contains(&ttl_ms),
        "written with PX REGISTRY_TTL: {ttl_ms} ms left"
    );

    // Three TTLs later the heartbeat still holds it, rewritten.
    std::thread::sleep(TTL * 3);
    let later = record_of(&redis, ws.port).expect("the heartbeat keeps the record alive");
    assert!(later.heartbeat_at > first.heartbeat_at, "{later:?}");
    assert_eq!(later.started_at, first.started_at);

    let signalled = Instant::now();
    ws.process.signal(Signal::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(2), || record_of(&redis, ws.port)
            .is_some_and(|record| record.state == InstanceState::Draining)),
        "draining is written when the drain starts"
    );
    let to_draining = signalled.elapsed();
    eprintln!(
        "FIGURE registry: SIGTERM to `draining` in the registry: {} ms",
        to_draining.as_millis()
    );
    assert!(to_draining < Duration::from_millis(1000), "{to_draining:?}");

    let status = ws
        .process
        .wait_exit(Duration::from_secs(20))
        .expect("the drained instance exited");
    assert!(status.success(), "a drain is a clean exit: {status:?}");
    assert_eq!(
        record_of(&redis, ws.port),
        None,
        "a clean exit deletes the record at once"
    );
    assert!(ws.process.output_contains("registry: record deleted"));
}

#[test]
fn a_killed_instance_vanishes_from_the_registry_within_the_ttl_and_the_other_stays() {
    let Some(redis) = Redis::start() else { return };
    let killed = start("ws-killed", &redis, &[]);
    let kept = start("ws-kept", &redis, &[]);
    assert!(
        wait_until(Duration::from_secs(5), || {
            record_of(&redis, killed.port).is_some() && record_of(&redis, kept.port).is_some()
        }),
        "both registered"
    );
    let killed_at = Instant::now();
    killed.process.signal(Signal::SIGKILL);
    assert!(
        wait_until(TTL * 3, || record_of(&redis, killed.port).is_none()),
        "the killed instance's record expired"
    );
    let gone = killed_at.elapsed();
    eprintln!(
        "FIGURE registry: SIGKILL to record gone: {} ms (REGISTRY_TTL {} ms)",
        gone.as_millis(),
        TTL.as_millis()
    );
    // The key outlives the last beat by at most the TTL; the bound leaves room for a loaded machine's
    // polling (the exact time is the figure above).
    assert!(gone <= TTL * 2, "gone within the TTL: {gone:?}");
    let survivor = record_of(&redis, kept.port).expect("the other instance is still registered");
    assert_eq!(survivor.state, InstanceState::Ready);
}
