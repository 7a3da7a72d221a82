//! Handshakes the server refuses, each with a `connect_error` carrying a stable code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Ws, python_socketio, run_table, token, token_for};

#[test]
fn unauthenticated_expired_forged_and_over_capacity_connects_are_refused_with_a_code() {
    let Some(python) = python_socketio() else {
        return;
    };
    let ws = Ws::start("ws", None, &[("MAX_CONNECTIONS", "2")]);
    let expired = token_for("late", Duration::ZERO);
    std::thread::sleep(Duration::from_millis(1100));
    let forged = {
        let mut parts: Vec<String> = token("mallory").split('.').map(str::to_owned).collect();
        parts[2] = "c2lnbmF0dXJlLW9mLWFub3RoZXIta2V5".to_owned();
        parts.join(".")
    };
    let url = ws.url();
    let result = run_table(
        &python,
        &json!({
            "mode": "refusals",
            "handshakes": [
                { "url": url, "auth": null },
                { "url": url, "auth": { "token": "" } },
                { "url": url, "auth": { "token": "not-a-jwt" } },
                { "url": url, "auth": { "token": forged } },
                { "url": url, "auth": { "token": expired } },
                { "url": url, "auth": { "token": token("first") } },
                { "url": url, "auth": { "token": token("second") } },
                { "url": url, "auth": { "token": token("third") } },
            ],
        }),
        Duration::from_secs(60),
    );
    let codes: Vec<_> = result["handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|outcome| {
            if outcome["connected"] == true {
                "CONNECTED".to_owned()
            } else {
                outcome["code"].as_str().unwrap_or("?").to_owned()
            }
        })
        .collect();
    assert_eq!(
        codes,
        [
            "AUTH_REQUIRED",
            "AUTH_REQUIRED",
            "TOKEN_MALFORMED",
            "TOKEN_INVALID",
            "TOKEN_EXPIRED",
            "CONNECTED",
            "CONNECTED",
            "SERVER_FULL",
        ],
        "{result}"
    );
    for outcome in result["handshakes"].as_array().unwrap() {
        if outcome["connected"] != true {
            assert!(!outcome["message"].as_str().unwrap().is_empty());
        }
    }
    let metrics = ws.metrics();
    assert!(
        metrics.contains("ws_connections_refused_total{code=\"AUTH_REQUIRED\"} 2"),
        "{metrics}"
    );
}

#[test]
fn the_fault_switch_refuses_valid_handshakes_with_fault_injected_and_counts_them() {
    let Some(python) = python_socketio() else {
        return;
    };
    let always = Ws::start("ws-faulty", None, &[("FAULT_INJECT_WS_REFUSE_RATE", "1")]);
    let never = Ws::start("ws-healthy", None, &[("FAULT_INJECT_WS_REFUSE_RATE", "0")]);
    let result = run_table(
        &python,
        &json!({
            "mode": "refusals",
            "handshakes": [
                { "url": always.url(), "auth": { "token": token("arthur") } },
                { "url": never.url(), "auth": { "token": token("arthur") } },
            ],
        }),
        Duration::from_secs(60),
    );
    let outcomes = result["handshakes"].as_array().unwrap();
    assert_eq!(outcomes[0]["code"], "FAULT_INJECTED", "{result}");
    assert_eq!(outcomes[1]["connected"], true, "{result}");
    let faulty = always.metrics();
    assert!(
        faulty.contains("ws_connections_refused_total{code=\"FAULT_INJECTED\"} 1"),
        "{faulty}"
    );
    assert!(
        faulty.contains("ws_connections_accepted_total 0"),
        "{faulty}"
    );
    assert!(
        never.metrics().contains("ws_connections_accepted_total 1"),
        "the healthy server did not count its handshake"
    );
}
