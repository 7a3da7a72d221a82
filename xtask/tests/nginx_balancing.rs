//! Load balancing over real API replicas: spread, failover without a failed GET, reload under load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nginx_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use avalon_testkit::Signal;
use nginx_support::*;

fn three_replicas() -> Vec<ApiReplica> {
    (1..=3).map(|n| start_api(&format!("api-{n}"))).collect()
}

fn per_upstream(edge: &Edge, path_prefix: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in edge.access_log() {
        if line["uri"]
            .as_str()
            .is_some_and(|uri| uri.starts_with(path_prefix))
        {
            // A retried request lists every replica tried; the last one answered.
            let addr = line["upstream_addr"].as_str().unwrap_or_default();
            let last = addr.rsplit(", ").next().unwrap_or_default().to_owned();
            *counts.entry(last).or_default() += 1;
        }
    }
    counts
}

#[test]
fn least_conn_spreads_concurrent_load_over_three_api_replicas() {
    let replicas = three_replicas();
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let slot_addrs = addrs.clone();
    let Some(edge) = Edge::start(|state, port| {
        base_model(state, port, single_slot(&slot_addrs, &slot_addrs[..1]))
    }) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let report = run_load(
        edge.addr,
        "/api/v1/spread",
        6,
        150,
        Duration::from_secs(60),
        stop,
    )
    .join()
    .unwrap();
    let counts = per_upstream(&edge, "/api/v1/spread");
    println!(
        "least_conn: sent {} failed {} per replica {counts:?}",
        report.sent, report.failed
    );
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    assert_eq!(report.sent, 900);
    for addr in &addrs {
        let share = counts.get(addr).copied().unwrap_or(0) as f64 / report.sent as f64;
        assert!(
            share > 0.2,
            "{addr} got {share:.2} of the requests: {counts:?}"
        );
    }
}

#[test]
fn killing_an_api_replica_under_load_fails_no_get() {
    let mut replicas = three_replicas();
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let slot_addrs = addrs.clone();
    let Some(edge) = Edge::start(|state, port| {
        base_model(state, port, single_slot(&slot_addrs, &slot_addrs[..1]))
    }) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let load = run_load(
        edge.addr,
        "/api/v1/failover",
        4,
        1500,
        Duration::from_secs(30),
        Arc::clone(&stop),
    );
    std::thread::sleep(Duration::from_millis(700));
    let victim = replicas.remove(1);
    println!("failover: killing {} (SIGKILL) under load", victim.addr);
    victim.process.signal(Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let report = load.join().unwrap();
    let counts = per_upstream(&edge, "/api/v1/failover");
    println!(
        "failover: sent {} failed {} statuses {:?} per replica {counts:?}",
        report.sent, report.failed, report.statuses
    );
    assert_eq!(
        report.failed,
        0,
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    assert!(report.sent >= 200, "the load ran: {}", report.sent);
    let retried = edge
        .access_log()
        .iter()
        .filter(|line| {
            line["upstream_addr"]
                .as_str()
                .is_some_and(|a| a.contains(", "))
        })
        .count();
    println!("failover: {retried} request(s) retried on another replica");
}

#[test]
fn reloading_under_load_fails_no_request() {
    let replicas = three_replicas();
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let slot_addrs = addrs.clone();
    let model_for = |state: &std::path::Path, port: u16, api: &[String]| {
        base_model(state, port, single_slot(api, &addrs[..1]))
    };
    let Some(edge) = Edge::start(|state, port| model_for(state, port, &slot_addrs[..2])) else {
        return;
    };
    let port = edge.addr.port();
    let stop = Arc::new(AtomicBool::new(false));
    let load = run_load(
        edge.addr,
        "/api/v1/reload",
        4,
        2000,
        Duration::from_secs(45),
        Arc::clone(&stop),
    );
    // Three reloads: add the third replica, drop the first, back to all three.
    let mut reloads = 0;
    for api in [&addrs[..], &addrs[1..], &addrs[..]] {
        std::thread::sleep(Duration::from_millis(400));
        let (ok, output) = edge.apply(&model_for(edge.state.path(), port, api));
        assert!(ok, "{output}");
        reloads += 1;
    }
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let report = load.join().unwrap();
    println!(
        "reload under load: {reloads} reloads, sent {} failed {} statuses {:?}",
        report.sent, report.failed, report.statuses
    );
    assert_eq!(
        report.failed,
        0,
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    assert!(report.sent >= 200, "the load ran: {}", report.sent);
    let counts = per_upstream(&edge, "/api/v1/reload");
    assert_eq!(
        counts.len(),
        3,
        "all replicas served at some point: {counts:?}"
    );
}

#[test]
fn a_tree_that_fails_nginx_t_never_replaces_the_live_one() {
    let replica = start_api("api");
    let addr = replica.addr.clone();
    let Some(edge) = Edge::start(|state, port| {
        base_model(
            state,
            port,
            single_slot(std::slice::from_ref(&addr), std::slice::from_ref(&addr)),
        )
    }) else {
        return;
    };
    let live_before = std::fs::read_link(edge.state.path().join("live")).unwrap();
    // Valid for the model, rejected by nginx: the name does not resolve.
    let mut broken = base_model(
        edge.state.path(),
        edge.addr.port(),
        single_slot(
            &["no-such-host.invalid:3000".into()],
            std::slice::from_ref(&replica.addr),
        ),
    );
    broken["maintenance"] = serde_json::json!({ "enabled": true });
    let (ok, output) = edge.apply(&broken);
    assert!(!ok, "{output}");
    assert!(output.contains("the live tree is unchanged"), "{output}");
    assert_eq!(
        std::fs::read_link(edge.state.path().join("live")).unwrap(),
        live_before
    );
    assert_eq!(edge.get("/health").status, 200);
    assert_eq!(edge.get("/api/v1/x").status, 404, "not in maintenance");

    // --dry-run checks but changes nothing.
    let model_file = edge.state.path().join("dry.json");
    let mut maintenance = base_model(
        edge.state.path(),
        edge.addr.port(),
        single_slot(
            std::slice::from_ref(&replica.addr),
            std::slice::from_ref(&replica.addr),
        ),
    );
    maintenance["maintenance"] = serde_json::json!({ "enabled": true });
    std::fs::write(&model_file, maintenance.to_string()).unwrap();
    let (ok, stdout, _) = run_xtask(&[
        "nginx",
        "reload",
        "--prefix",
        edge.state.path().to_str().unwrap(),
        "--model",
        model_file.to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["swapped"],
        false
    );
    assert_eq!(
        std::fs::read_link(edge.state.path().join("live")).unwrap(),
        live_before
    );
    assert_eq!(edge.get("/api/v1/x").status, 404);
}
