//! `cargo xtask autoscale simulate` through the real binary, as docs/scaling.md documents it: `--json`
//! prints one object per change and nothing else, the table otherwise, and a bad trace or policy is
//! refused with its line and column, or its table and key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn simulate(args: &[&str], policy: &Path, trace: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["autoscale", "simulate", "--policy"])
        .arg(policy)
        .arg("--trace")
        .arg(trace)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// What the committed policy and example trace print, with these flags; the run must succeed.
fn example_stdout(args: &[&str]) -> String {
    let output = simulate(
        args,
        &committed_policy(),
        &root().join("deploy/traces/example.csv"),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn committed_policy() -> PathBuf {
    root().join("deploy/scaling.toml")
}

#[test]
fn json_prints_one_object_per_change_with_the_documented_keys_and_nothing_else() {
    let stdout = example_stdout(&["--json"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 4, "{stdout}");
    let mut previous_t = 0.0;
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ["from", "reason", "service", "t", "to"], "{line}");
        assert!(
            line.starts_with(r#"{"t":"#) && line.contains(r#","service":""#),
            "key order: {line}"
        );
        let t = value["t"].as_f64().unwrap();
        assert!(t >= previous_t, "{line}");
        previous_t = t;
        assert_ne!(
            value["from"], value["to"],
            "only changes are printed: {line}"
        );
    }
}

#[test]
fn without_json_it_prints_a_table() {
    let stdout = example_stdout(&["--start", "3"]);
    let header: Vec<&str> = stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["t", "service", "from", "to", "reason"]);
    // From 3 replicas, the idle api's first evaluation already scales it in (its stabilisation window
    // holds only its own recommendation).
    assert!(stdout.lines().nth(1).unwrap().contains("api"), "{stdout}");
}

#[test]
fn a_bad_trace_is_refused_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(
        &trace,
        "t,service,cpu_millicores,memory_mib,connections\n0,api,100,100,0\n15,api,lots,100,0\n",
    )
    .unwrap();
    let output = simulate(&["--json"], &committed_policy(), &trace);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"trace.csv line 3, column 3 (cpu_millicores): "lots" is not a number"#),
        "{stderr}"
    );
}

#[test]
fn a_bad_policy_is_refused_naming_table_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("scaling.toml");
    let text = std::fs::read_to_string(committed_policy()).unwrap();
    std::fs::write(
        &policy,
        text.replace("target_connections = 30000", "target_connections = -1"),
    )
    .unwrap();
    let output = simulate(&[], &policy, &root().join("deploy/traces/example.csv"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scaling.toml [websocket]"), "{stderr}");
    assert!(stderr.contains("target_connections"), "{stderr}");
}
