//! Static checks of docker/: every overlay is a valid compose project, every compose file is valid against
//! the compose-spec schema, the Dockerfiles are hadolint-clean, and both Dockerfiles share one runtime
//! definition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stack_support;

use std::process::Command;

use stack_support::{docker_with_compose_v2, run, workspace_root};

const OVERLAYS: [&str; 3] = ["dev", "prod", "offline"];
const RUNTIME_MARKER: &str = "# ---- runtime stages";

#[test]
fn every_overlay_is_a_valid_compose_project() {
    if !docker_with_compose_v2() {
        return;
    }
    let root = workspace_root();
    let secrets = tempfile::tempdir().unwrap();
    for overlay in OVERLAYS {
        let output = run(Command::new("docker")
            .current_dir(&root)
            .args(["compose", "--project-name", "avalon-config-check"])
            .args(["--file", "docker/compose.yml", "--file"])
            .arg(format!("docker/compose.{overlay}.yml"))
            .args(["config", "--quiet"])
            // What `cargo xtask up` or the operator provides; prod refuses to interpolate without them.
            .env("AVALON_API_IMAGE", "avalon-api:0.0.0")
            .env("AVALON_WS_IMAGE", "avalon-ws:0.0.0")
            .env("WECHAT_APPID", "wx0000000000000000")
            .env("AVALON_SECRETS_DIR", secrets.path()));
        assert!(
            output.status.success(),
            "docker compose config failed for the {overlay} overlay:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Docker restarts what crashes in the offline and prod stacks (and `cargo xtask heal` starts what stays
/// exited): every service they run has a restart policy, nginx and redis included.
#[test]
fn every_service_of_the_offline_and_prod_stacks_restarts_unless_stopped() {
    if !docker_with_compose_v2() {
        return;
    }
    let secrets = tempfile::tempdir().unwrap();
    for overlay in ["offline", "prod"] {
        let output = run(Command::new("docker")
            .current_dir(workspace_root())
            .args(["compose", "--project-name", "avalon-config-check"])
            .args(["--file", "docker/compose.yml", "--file"])
            .arg(format!("docker/compose.{overlay}.yml"))
            .args(["config", "--format", "json"])
            .env("AVALON_API_IMAGE", "avalon-api:0.0.0")
            .env("AVALON_WS_IMAGE", "avalon-ws:0.0.0")
            .env("WECHAT_APPID", "wx0000000000000000")
            .env("AVALON_SECRETS_DIR", secrets.path()));
        assert!(
            output.status.success(),
            "{overlay}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let services = config["services"].as_object().unwrap();
        for expected in ["nginx", "redis", "api", "websocket"] {
            assert!(services.contains_key(expected), "{overlay}: no {expected}");
        }
        for (name, service) in services {
            assert_eq!(
                service["restart"], "unless-stopped",
                "{overlay}: {name} has no restart policy"
            );
        }
    }
}

#[test]
fn the_prod_overlay_refuses_to_start_without_release_images() {
    if !docker_with_compose_v2() {
        return;
    }
    let output = run(Command::new("docker")
        .current_dir(workspace_root())
        .args([
            "compose",
            "--file",
            "docker/compose.yml",
            "--file",
            "docker/compose.prod.yml",
        ])
        .args(["config", "--quiet"])
        .env_remove("AVALON_API_IMAGE")
        .env("AVALON_WS_IMAGE", "avalon-ws:0.0.0")
        .env("WECHAT_APPID", "wx0000000000000000")
        .env("AVALON_SECRETS_DIR", "/nonexistent"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("AVALON_API_IMAGE"));
}

#[test]
fn every_compose_file_is_valid_against_the_compose_spec_schema() {
    if avalon_testkit::require_tool("check-jsonschema").is_none() {
        return;
    }
    let root = workspace_root();
    let mut command = Command::new("check-jsonschema");
    command.current_dir(&root).args([
        "--builtin-schema",
        "vendor.compose-spec",
        "docker/compose.yml",
    ]);
    for overlay in OVERLAYS {
        command.arg(format!("docker/compose.{overlay}.yml"));
    }
    let output = run(&mut command);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn the_dockerfiles_are_hadolint_clean() {
    if avalon_testkit::require_tool("hadolint").is_none() {
        return;
    }
    let output = run(Command::new("hadolint")
        .current_dir(workspace_root())
        .args(["docker/Dockerfile", "docker/Dockerfile.builder"]));
    assert!(
        output.status.success(),
        "hadolint findings:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn both_dockerfiles_share_the_same_runtime_stages() {
    let read = |name: &str| {
        let text = std::fs::read_to_string(workspace_root().join("docker").join(name)).unwrap();
        let start = text
            .find(RUNTIME_MARKER)
            .unwrap_or_else(|| panic!("{name} lacks the `{RUNTIME_MARKER}` marker"));
        text[start..].to_owned()
    };
    assert_eq!(
        read("Dockerfile"),
        read("Dockerfile.builder"),
        "the runtime stages of docker/Dockerfile and docker/Dockerfile.builder differ; keep them identical"
    );
}

#[test]
fn the_stop_grace_period_covers_drain_delay_plus_shutdown_timeout() {
    let compose = std::fs::read_to_string(workspace_root().join("docker/compose.yml")).unwrap();
    let production =
        std::fs::read_to_string(workspace_root().join("config/production.toml")).unwrap();
    let seconds = |text: &str, key: &str| -> u64 {
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("{key} not found"));
        let value = line
            .split(['=', ':'])
            .nth(1)
            .unwrap()
            .trim()
            .trim_matches('"');
        value.trim_end_matches('s').parse().unwrap()
    };
    let drain = seconds(&production, "shutdown_drain_delay");
    let timeout = seconds(&production, "shutdown_timeout");
    for line in compose
        .lines()
        .filter(|line| line.contains("stop_grace_period"))
    {
        let grace: u64 = line
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!(
            grace >= drain + timeout,
            "stop_grace_period {grace}s < SHUTDOWN_DRAIN_DELAY {drain}s + SHUTDOWN_TIMEOUT {timeout}s"
        );
    }
}
