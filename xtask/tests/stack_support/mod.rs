//! Shared by the image and stack tests: running xtask and docker, and the loud-skip rule for Docker.

#![allow(dead_code)]

pub mod client_hosts;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The xtask binary under test.
pub fn xtask() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.current_dir(workspace_root());
    command
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command, echoing it and its output for the test log, and returns the output.
pub fn run(command: &mut Command) -> Output {
    eprintln!("$ {command:?}");
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    if !output.stderr.is_empty() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    output
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{stdout}",
        output.status
    );
    stdout
}

pub fn docker(args: &[&str]) -> Command {
    let mut command = Command::new("docker");
    command.args(args);
    command
}

/// True when Docker with Compose v2 can be used; otherwise a loud skip (a panic under CI=true).
pub fn docker_with_compose_v2() -> bool {
    if avalon_testkit::require_tool("docker").is_none() {
        return false;
    }
    let engine = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    let compose = Command::new("docker")
        .args(["compose", "version", "--short"])
        .output();
    let engine_ok = engine.as_ref().is_ok_and(|output| output.status.success());
    let compose_ok = compose.as_ref().is_ok_and(|output| {
        output.status.success()
            && String::from_utf8_lossy(&output.stdout)
                .trim_start_matches('v')
                .starts_with('2')
    });
    if engine_ok && compose_ok {
        return true;
    }
    avalon_testkit::skip(
        "docker-compose-v2",
        "the Docker engine or Compose v2 (`docker compose`) is unavailable: run \
         `bash scripts/ci/install-tools.sh` and start dockerd to run this test",
    );
    false
}

/// A tag prefix no developer uses, so tests never replace a developer's images.
pub fn test_registry() -> String {
    format!("avalon-test-{}", std::process::id())
}

/// SIGSTOPs `victim` (even its watchdog thread stops, so only Docker's healthcheck notices) while `healer`
/// (`cargo xtask heal --watch 1`) runs, and returns the time until a healthy container runs in its place,
/// or `None` after 90 s.
pub fn freeze_until_healed(victim: &str, mut healer: Command) -> Option<std::time::Duration> {
    use std::time::{Duration, Instant};
    let started_at = || {
        run_ok(&mut docker(&[
            "inspect",
            "--format",
            "{{.State.StartedAt}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            victim,
        ]))
        .trim()
        .to_owned()
    };
    let before = started_at();
    let mut healer = healer.spawn().expect("cargo xtask heal");
    let frozen = Instant::now();
    run_ok(&mut docker(&["kill", "--signal", "STOP", victim]));
    let mut replaced = None;
    while frozen.elapsed() < Duration::from_secs(90) {
        let now = started_at();
        if now.split(' ').next() != before.split(' ').next() && now.ends_with("running healthy") {
            replaced = Some(frozen.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = healer.kill();
    let _ = healer.wait();
    if replaced.is_none() {
        eprintln!("the frozen container was not replaced: {}", started_at());
    }
    replaced
}

/// The id of a running container of `service` in Compose project `project` (the first, with replicas).
pub fn container(project: &str, service: &str) -> String {
    let id = run_ok(&mut docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ]));
    let id = id.lines().next().unwrap_or_default().trim().to_owned();
    assert!(!id.is_empty(), "no running container for {service}");
    id
}

/// The local engine's socket as a TCP endpoint on loopback, so a test can drive it the way an operator
/// drives a remote engine (`DOCKER_HOST=tcp://…`): the CLI then has no socket path to fall back on.
/// Bytes are copied both ways; a half-close is passed on (the CLI closes its side when stdin ends).
pub struct EngineProxy {
    pub docker_host: String,
}

impl EngineProxy {
    pub fn start() -> Self {
        use std::net::{Shutdown, TcpListener};
        use std::os::unix::net::UnixStream;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let docker_host = format!("tcp://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                let (mut client_in, mut engine_out) =
                    (client.try_clone().unwrap(), engine.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut engine_out);
                    let _ = engine_out.shutdown(Shutdown::Write);
                });
                let (mut engine_in, mut client_out) = (engine, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut engine_in, &mut client_out);
                    let _ = client_out.shutdown(Shutdown::Write);
                });
            }
        });
        Self { docker_host }
    }
}
