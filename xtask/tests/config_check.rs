//! `cargo xtask config check` as an operator runs it: every problem listed in one run, non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn config_check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(["config", "check"]).args(args);
    // A clean environment: only what the test sets, so the developer's shell cannot change the outcome.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command.envs(env.iter().copied());
    command.output().unwrap()
}

#[test]
fn production_with_short_jwt_secret_lists_secret_and_wechat_problems_at_once() {
    let output = config_check(&[], &[("APP_ENV", "production"), ("JWT_SECRET", "short")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("JWT_SECRET: must be at least 32 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("WECHAT_APPID: is required"), "{stdout}");
    assert!(stdout.contains("WECHAT_SECRET: is required"), "{stdout}");
    assert!(
        !stdout.contains("short"),
        "the secret value leaked: {stdout}"
    );
}

#[test]
fn json_report_names_every_violation() {
    let output = config_check(
        &["--json", "--service", "ws"],
        &[("APP_ENV", "staging"), ("WS_PORT", "99999")],
    );
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["services"], serde_json::json!(["ws"]));
    let variables: Vec<&str> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["variable"].as_str().unwrap())
        .collect();
    assert!(variables.contains(&"WS_PORT"), "{variables:?}");
    assert!(variables.contains(&"REDIS_HOST"), "{variables:?}");
    assert!(
        !variables.contains(&"WECHAT_APPID"),
        "the ws service does not use WeChat: {variables:?}"
    );
}

#[test]
fn development_defaults_pass_and_env_file_is_read() {
    let output = config_check(&["--env", "development"], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prod.env");
    std::fs::write(
        &file,
        "APP_ENV=production\nREDIS_HOST=redis\nJWT_SECRET=tiny\n",
    )
    .unwrap();
    let output = config_check(
        &["--env-file", file.to_str().unwrap(), "--service", "ws"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.contains("JWT_SECRET: must be at least 32 bytes"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("REDIS_HOST"),
        "REDIS_HOST came from the file: {stdout}"
    );
}

#[test]
fn the_shipped_production_template_is_refused_until_filled_in() {
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.production.example");
    let output = config_check(&["--env-file", template], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("WECHAT_APPID: is required"), "{stdout}");
    assert!(
        stdout.contains("JWT_SECRET_FILE: cannot read secret file"),
        "{stdout}"
    );
}
