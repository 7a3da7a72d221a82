//! The canary split: weights honoured over many users, each user sticky, overrides for testers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nginx_support;

use std::collections::{BTreeMap, BTreeSet};

use nginx_support::*;
use serde_json::json;

const USERS: usize = 2_000;
const REQUESTS_PER_USER: usize = 2;

fn canary_slots(blue: &str, green: &str, blue_weight: u8) -> serde_json::Value {
    json!([
        { "name": "blue", "api": [blue], "websocket": [blue], "weight": blue_weight },
        { "name": "green", "api": [green], "websocket": [green], "weight": 100 - blue_weight },
    ])
}

/// Sends `REQUESTS_PER_USER` requests for each user id (4 client threads), tagging each with a request id.
fn send_users(edge: &Edge, cookie_of: fn(usize) -> String, tag: &'static str) {
    let addr = edge.addr;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for user in (t..USERS).step_by(4) {
                    for round in 0..REQUESTS_PER_USER {
                        let id = format!("{tag}-u{user:05}-r{round}");
                        let cookie = cookie_of(user);
                        let response = request(
                            addr,
                            "GET",
                            "/api/v1/canary",
                            &[("Cookie", &cookie), ("X-Request-ID", &id)],
                        );
                        assert_eq!(response.status, 404, "{response:?}");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// user → set of slots that served them, from the access log.
fn slots_per_user(edge: &Edge, tag: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in edge.access_log() {
        let id = line["request_id"].as_str().unwrap_or_default();
        if let Some(rest) = id.strip_prefix(&format!("{tag}-")) {
            let user = rest.split("-r").next().unwrap().to_owned();
            users
                .entry(user)
                .or_default()
                .insert(line["slot"].as_str().unwrap().to_owned());
        }
    }
    users
}

#[test]
fn a_90_10_split_holds_within_3_percent_over_2000_users_and_every_user_is_sticky() {
    let blue = start_api("api-blue");
    let green = start_api("api-green");
    let (blue_addr, green_addr) = (blue.addr.clone(), green.addr.clone());
    let Some(edge) = Edge::start(|state, port| {
        let mut model = base_model(state, port, canary_slots(&blue_addr, &green_addr, 90));
        model["canary"] = json!({ "slot": "green" });
        model
    }) else {
        return;
    };

    send_users(&edge, |user| format!("avalon_uid=user-{user}"), "split");
    let users = slots_per_user(&edge, "split");
    assert_eq!(users.len(), USERS);
    let switched = users.values().filter(|slots| slots.len() > 1).count();
    let green_users = users
        .values()
        .filter(|slots| slots.contains("green"))
        .count();
    let share = green_users as f64 / USERS as f64;
    println!(
        "canary 90/10: {USERS} users x {REQUESTS_PER_USER} requests -> green {green_users} ({:.2} %), blue {} ({:.2} %), users who switched side: {switched}",
        share * 100.0,
        USERS - green_users,
        (1.0 - share) * 100.0
    );
    assert_eq!(switched, 0, "each user stays on one side");
    assert!(
        (share - 0.10).abs() <= 0.03,
        "green share {share:.4} not within 10 % ± 3 %"
    );

    // The log's slot is the replica that answered.
    for line in edge.access_log().iter().filter(|l| {
        l["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("split-"))
    }) {
        let expected = if line["slot"] == "green" {
            &green.addr
        } else {
            &blue.addr
        };
        assert_eq!(line["upstream_addr"].as_str().unwrap(), expected.as_str());
    }

    // Testers override the split either way, whatever their user id.
    for (value, slot) in [
        ("always", "green"),
        ("never", "blue"),
        ("green", "green"),
        ("blue", "blue"),
    ] {
        for user in 0..50 {
            let cookie = format!("avalon_uid=user-{user}; avalon_canary={value}");
            let id = format!("override-{value}-u{user:05}");
            request(
                edge.addr,
                "GET",
                "/api/v1/canary",
                &[("Cookie", &cookie), ("X-Request-ID", &id)],
            );
        }
        let served: BTreeSet<String> = edge
            .access_log()
            .iter()
            .filter(|l| {
                l["request_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(&format!("override-{value}-")))
            })
            .map(|l| l["slot"].as_str().unwrap().to_owned())
            .collect();
        println!("canary override {value}: 50 users -> {served:?}");
        assert_eq!(
            served,
            BTreeSet::from([slot.to_owned()]),
            "override {value}"
        );
    }

    // Without a cookie the bearer token is the key: the same token always lands on the same slot.
    let mut token_slots = BTreeSet::new();
    for round in 0..5 {
        let id = format!("token-r{round}-xxxxxxxx");
        request(
            edge.addr,
            "GET",
            "/api/v1/canary",
            &[
                ("Authorization", "Bearer abc.def.ghi"),
                ("X-Request-ID", &id),
            ],
        );
    }
    for line in edge.access_log() {
        if line["request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("token-"))
        {
            token_slots.insert(line["slot"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(token_slots.len(), 1, "{token_slots:?}");
}

#[test]
fn shifting_weights_moves_users_only_toward_the_canary() {
    let blue = start_api("api-blue");
    let green = start_api("api-green");
    let (blue_addr, green_addr) = (blue.addr.clone(), green.addr.clone());
    let make = move |state: &std::path::Path, port: u16, weight: u8| {
        let mut model = base_model(state, port, canary_slots(&blue_addr, &green_addr, weight));
        model["canary"] = json!({ "slot": "green" });
        model
    };
    let make_first = make.clone();
    let Some(edge) = Edge::start(|state, port| make_first(state, port, 90)) else {
        return;
    };
    send_users(&edge, |user| format!("avalon_uid=user-{user}"), "before");
    let (ok, output) = edge.apply(&make(edge.state.path(), edge.addr.port(), 50));
    assert!(ok, "{output}");
    send_users(&edge, |user| format!("avalon_uid=user-{user}"), "after");
    let before = slots_per_user(&edge, "before");
    let after = slots_per_user(&edge, "after");
    let green_before = before.values().filter(|s| s.contains("green")).count();
    let green_after = after.values().filter(|s| s.contains("green")).count();
    // split_clients maps the key's hash onto consecutive ranges ([0, 90 %) blue, the rest green); with two
    // slots a weight change moves one boundary, so users only ever move toward the slot that grows.
    let went_back = before
        .iter()
        .filter(|(user, slots)| {
            slots.contains("green") && after.get(*user).is_some_and(|s| s.contains("blue"))
        })
        .count();
    println!(
        "weights 90/10 -> 50/50: green users {green_before} -> {green_after}, canary users sent back to blue: {went_back}"
    );
    assert!((green_after as f64 / USERS as f64 - 0.5).abs() <= 0.03);
    assert_eq!(
        went_back, 0,
        "a user already on the canary stays there as its weight grows"
    );
}
