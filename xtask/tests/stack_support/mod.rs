//! Shared by the image and stack tests: running xtask and docker, and the loud-skip rule for Docker.

#![allow(dead_code)]

pub mod client_hosts;
pub mod prod;
pub mod top_level_binaries;

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

/// Where cargo puts build output, honouring CARGO_TARGET_DIR as cargo does.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The repository of the MongoDB stand-in image (testing/mongo-standin): a test fixture, never shipped.
pub const MONGO_STANDIN_REPOSITORY: &str = "avalon-test/mongo-standin";

/// The MongoDB stand-in image for stack tests, built when missing; returns its reference, to be passed
/// as `MONGO_IMAGE` to the shipped compose files (this machine cannot pull mongo:7.0).
///
/// Built as `cargo xtask image build` builds the service images: the release binary is compiled on
/// the host, `docker/stage-rootfs.sh` stages it with its shared libraries, and
/// testing/mongo-standin/Dockerfile (FROM scratch) packs it — no registry. The tag is
/// `<workspace version>-<sha256 of the staged context and the Dockerfile>`, so an unchanged stand-in
/// is built once and a changed one gets a new tag.
pub fn mongo_standin_image(sh: &xshell::Shell) -> anyhow::Result<String> {
    use anyhow::Context;
    use xshell::cmd;

    // Tests of one binary may ask at once; each process stages into its own directory.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);

    let root = workspace_root();
    let _in_root = sh.push_dir(&root);
    cmd!(sh, "cargo build --release --package mongo-standin")
        .run()
        .context("cargo build of the MongoDB stand-in")?;
    let binary = target_dir().join("release/mongo-standin");
    let context = target_dir().join(format!("mongo-standin-image-{}", std::process::id()));
    let script = root.join("docker/stage-rootfs.sh");
    cmd!(sh, "sh {script} {context} {binary}")
        .run()
        .context("staging the MongoDB stand-in's image context")?;
    std::os::unix::fs::symlink("mongo-standin", context.join("bin/mongosh"))
        .context("linking mongosh to the stand-in binary")?;
    let dockerfile = root.join("testing/mongo-standin/Dockerfile");
    let digest = content_digest(&context, &dockerfile)?;
    let reference = format!(
        "{MONGO_STANDIN_REPOSITORY}:{}-{}",
        env!("CARGO_PKG_VERSION"),
        &digest[..16]
    );
    let present = cmd!(sh, "docker image inspect {reference}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    let built = if present {
        Ok(())
    } else {
        cmd!(
            sh,
            "docker build --quiet --file {dockerfile} --tag {reference} {context}"
        )
        .run()
        .with_context(|| format!("docker build of {reference}"))
    };
    let _ = std::fs::remove_dir_all(&context);
    built.map(|()| reference)
}

/// sha256 over the Dockerfile and every staged file (path, symlink target or content), in path order.
fn content_digest(context: &Path, dockerfile: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    use sha2::{Digest, Sha256};

    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() && !path.is_symlink() {
                walk(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(context, &mut files).with_context(|| format!("reading {}", context.display()))?;
    files.sort();
    let mut hasher = Sha256::new();
    hasher.update(
        std::fs::read(dockerfile).with_context(|| format!("reading {}", dockerfile.display()))?,
    );
    for file in files {
        let relative = file.strip_prefix(context).unwrap_or(&file);
        hasher.update(relative.as_os_str().as_encoded_bytes());
        if file.is_symlink() {
            hasher.update(std::fs::read_link(&file)?.as_os_str().as_encoded_bytes());
        } else {
            hasher.update(
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
            );
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}
