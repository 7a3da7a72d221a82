//! docs/protocol.md, event by event: an independent python-socketio client (`clients/protocol_conformance.py`)
//! sends every documented client event with no payload, `{}`, unknown fields, wrong types and non-object
//! payloads, and plays through the documented edges (unknown events, game over, a lobby seat freed after
//! WS_RECONNECT_WINDOW, a user's second socket, the per-user event budget), asserting each documented code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use avalon_testkit::Process;
use serde_json::{Value, json};
use support::{Ws, python_socketio, token};

/// The per-user budget of the second server: small, so a flood is refused within a few events.
const LIMIT: u32 = 3;
/// The main server's WS_RECONNECT_WINDOW: short, so the freed-seat case waits only for it.
const WINDOW_S: u64 = 1;

#[test]
fn every_event_answers_the_documented_code_for_every_payload_shape() {
    let Some(python) = python_socketio() else {
        return;
    };
    let window = format!("{WINDOW_S}s");
    let main = Ws::start(
        "ws",
        None,
        &[
            ("WS_RECONNECT_WINDOW", &window),
            ("RATE_LIMIT_USER", "100000"),
        ],
    );
    let limit = LIMIT.to_string();
    let limited = Ws::start("ws-limited", None, &[("RATE_LIMIT_USER", &limit)]);
    let names = [
        "shapes",
        "host",
        "guest",
        "keeper",
        "leaver",
        "twin",
        "flooder",
        "bystander",
        "p0",
        "p1",
        "p2",
        "p3",
        "p4",
    ];
    let tokens: serde_json::Map<String, Value> = names
        .iter()
        .map(|name| {
            (
                (*name).to_owned(),
                json!(token(&format!("conformance-{name}"))),
            )
        })
        .collect();
    let scenario = json!({
        "url": main.url(),
        "limited_url": limited.url(),
        "limit": LIMIT,
        "window_s": WINDOW_S,
        "tokens": tokens,
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.json");
    std::fs::write(&path, serde_json::to_vec(&scenario).unwrap()).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/protocol_conformance.py");
    let mut client = Process::spawn(
        "conformance",
        &python,
        &[script.to_str().unwrap(), path.to_str().unwrap()],
        &[],
    );
    let status = client.wait_exit(Duration::from_secs(240));
    let output = client.output();
    let result: Option<Value> = output
        .iter()
        .find_map(|line| line.strip_prefix("RESULT "))
        .and_then(|json| serde_json::from_str(json).ok());
    let Some(result) = result else {
        panic!(
            "the conformance client did not finish ({status:?}):\n{}\nserver:\n{}",
            output.join("\n"),
            main.process.output().join("\n")
        );
    };
    let cases = result["cases"].as_u64().unwrap();
    // Also in `cargo xtask ci`'s closing summary, which a passing test's captured output never reaches.
    avalon_testkit::figures::figure(
        "protocol guard",
        &format!("protocol conformance: {cases} protocol cases"),
    );
    let failures = result["failures"].as_array().unwrap();
    assert!(
        failures.is_empty() && status.is_some_and(|status| status.success()),
        "{} of {cases} protocol cases disagree with docs/protocol.md:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|failure| format!("  - {}", failure.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(cases >= 150, "only {cases} protocol cases ran");
}
