//! `cargo xtask releases` and `rollback --dry-run` read the ledger through the real binary: the live
//! release, the previous good one (skipping a rolled-back release) and damaged lines reported, not hidden.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn entry(seq: u64, event: &str, version: &str, slot: &str, outcome: &str) -> String {
    format!(
        r#"{{"seq":{seq},"at":"2026-11-26T02:0{seq}:00Z","event":"{event}","release":{{"version":"{version}","images":{{"api":"avalon-api@sha256:{seq}","websocket":"avalon-ws@sha256:{seq}"}},"config_digest":"sha256:c"}},"slot":"{slot}","weight":100,"outcome":"{outcome}","who":"ops@host","from":"checkout abc"}}"#
    )
}

#[test]
fn releases_json_names_the_live_and_previous_good_release_and_reports_damage() {
    if avalon_testkit::require_tool("docker").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger = [
        entry(1, "deploy", "0.1.0", "blue", "succeeded"),
        entry(2, "deploy", "0.2.0", "green", "succeeded"),
        entry(3, "deploy", "0.3.0", "blue", "rolled_back"),
        "{\"seq\": 4, \"truncat".to_owned(),
    ]
    .join("\n");
    std::fs::write(dir.path().join("releases.jsonl"), format!("{ledger}\n")).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "releases",
            "--project",
            "avalon-deploy-ledger-test-none",
            "--json",
            "--ledger-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["live"]["release"]["version"], "0.2.0");
    assert_eq!(report["previous_good"]["release"]["version"], "0.1.0");
    assert_eq!(report["entries"].as_array().unwrap().len(), 3);
    assert_eq!(report["damaged_lines"], serde_json::json!([4]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 4 is damaged"), "{stderr}");

    let table = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "releases",
            "--project",
            "avalon-deploy-ledger-test-none",
            "--ledger-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    let live_line = text.lines().find(|line| line.starts_with('*')).unwrap();
    assert!(
        live_line.contains("0.2.0") && live_line.contains("succeeded"),
        "{text}"
    );
}

#[test]
fn deploy_without_a_stack_fails_before_changing_anything_and_says_how_to_start_one() {
    if avalon_testkit::require_tool("docker").is_none() {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "deploy",
            "--project",
            "avalon-deploy-ledger-test-none",
            "--version",
            "9.9.9",
            "--dry-run",
        ])
        // The default stack (no --env, no AVALON_ENV) is dev, as for every command.
        .env_remove("AVALON_ENV")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no running nginx in Compose project avalon-deploy-ledger-test-none"),
        "{stderr}"
    );
    assert!(stderr.contains("cargo xtask up --env dev"), "{stderr}");
}
