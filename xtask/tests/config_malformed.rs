//! Every malformed environment of `fixtures/malformed_env.toml`, plus an empty value for every variable
//! with a default, against both service binaries and `cargo xtask config check`: they agree on the
//! violations, the binaries exit 2 before binding their port, the variable and the rule are named, and no
//! secret is printed. The accepted cases of the file must be valid for all three.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::TcpStream;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use avalon_runtime::config::spec::{self, ServiceKind};
use avalon_testkit::free_port;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/malformed_env.toml"
);
const STRONG_SECRET: &str = "q8Vt2LxN4pR7sK1mZ9cB3wH6yJ0dF5gA";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    malformed: Vec<Case>,
    accepted: Vec<Case>,
}

#[derive(serde::Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct Case {
    base: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    unset: Vec<String>,
    #[serde(default)]
    not_utf8: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    toml: Option<String>,
    variable: Option<String>,
    rule: Option<String>,
    secret: Option<String>,
    services: Option<Vec<String>>,
    warning: Option<String>,
}

/// A complete, valid production environment: each case breaks it in one way.
fn production_base() -> BTreeMap<String, String> {
    [
        ("APP_ENV", "production"),
        (
            "MONGODB_URI",
            "mongodb://avalon:base-mongo-pw@mongodb:27017/avalon",
        ),
        ("REDIS_HOST", "redis"),
        ("JWT_SECRET", STRONG_SECRET),
        ("WECHAT_APPID", "wx0123456789abcdef"),
        ("WECHAT_SECRET", "0123456789abcdef0123456789abcdef"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

/// One case made concrete: its directory, environment and the secrets that must not be printed.
struct Prepared {
    dir: tempfile::TempDir,
    env: Vec<(OsString, OsString)>,
    secrets: Vec<String>,
    port: u16,
    ws_port: u16,
}

fn prepare(case: &Case) -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let substitute = |text: &str| text.replace("$DIR", &dir.path().display().to_string());
    let mut env = match case.base.as_str() {
        "production" => production_base(),
        "development" => BTreeMap::new(),
        other => panic!("unknown base {other:?}"),
    };
    for name in &case.unset {
        env.remove(name);
    }
    for (name, value) in &case.env {
        env.insert(name.clone(), substitute(value));
    }
    for (name, content) in &case.files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let config_dir = dir.path().join("config");
    if let Some(toml) = &case.toml {
        let app_env = env.get("APP_ENV").map_or("development", String::as_str);
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::write(config_dir.join(format!("{app_env}.toml")), toml).unwrap();
    }
    env.entry("CONFIG_DIR".to_owned())
        .or_insert_with(|| config_dir.display().to_string());
    let (port, ws_port) = (free_port(), free_port());
    env.entry("PORT".to_owned())
        .or_insert_with(|| port.to_string());
    env.entry("WS_PORT".to_owned())
        .or_insert_with(|| ws_port.to_string());

    let mut secrets: Vec<String> = env
        .iter()
        .filter(|(name, _)| spec::lookup(name).is_some_and(|var| var.secret))
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| value.len() >= 8)
        .chain(case.files.values().map(|content| content.trim().to_owned()))
        .filter(|value| value.len() >= 8)
        .chain(case.secret.clone())
        .collect();
    secrets.push(STRONG_SECRET.to_owned());
    let env = env
        .into_iter()
        .map(|(name, value)| {
            let mut bytes = value.into_bytes();
            if case.not_utf8.contains(&name) {
                bytes.push(0xff);
            }
            (OsString::from(name), OsString::from_vec(bytes))
        })
        .collect();
    Prepared {
        dir,
        env,
        secrets,
        port: port_of(port, ws_port, case),
        ws_port,
    }
}

fn port_of(port: u16, _ws_port: u16, case: &Case) -> u16 {
    case.env
        .get("PORT")
        .and_then(|text| text.parse().ok())
        .unwrap_or(port)
}

/// Runs a program with exactly the case's environment (and PATH); a program still running after the
/// deadline is killed and reported, so an accepted configuration cannot hang the test.
fn run(program: &Path, args: &[&str], prepared: &Prepared) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .current_dir(prepared.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            return Err(format!(
                "{} {args:?} still running after 30 s: {}",
                program.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(child.wait_with_output().unwrap())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `  - VARIABLE: rule` lines of a report.
fn violation_lines(report: &str) -> BTreeSet<String> {
    report
        .lines()
        .filter_map(|line| line.strip_prefix("  - "))
        .map(str::to_owned)
        .collect()
}

fn services_of(case: &Case, variable: &str) -> Vec<ServiceKind> {
    if let Some(names) = &case.services {
        return names
            .iter()
            .map(|name| match name.as_str() {
                "api" => ServiceKind::Api,
                "ws" => ServiceKind::Ws,
                other => panic!("unknown service {other:?}"),
            })
            .collect();
    }
    let var =
        spec::lookup(variable).or_else(|| variable.strip_suffix("_FILE").and_then(spec::lookup));
    ServiceKind::ALL
        .into_iter()
        .filter(|service| var.is_none_or(|var| var.scope.includes(*service)))
        .collect()
}

fn xtask() -> PathBuf {
    service_binary("xtask")
}

/// The binaries of this checkout (both services and xtask), built once and copied aside: a target
/// directory shared with other checkouts may get another `target/debug/avalon-api` (or xtask) while the
/// cases run.
fn service_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        eprintln!(
            "$ {cargo} build --package avalon-api --package avalon-ws --package xtask --bins"
        );
        let output = Command::new(cargo)
            .args(["build", "--package", "avalon-api", "--package", "avalon-ws"])
            .args(["--package", "xtask", "--bins"])
            .args(["--message-format=json-render-diagnostics"])
            .current_dir(&root)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "building the services failed");
        let copies = tempfile::tempdir().unwrap();
        for line in text(&output.stdout).lines() {
            let message: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            if let Some(executable) = message["executable"].as_str() {
                let executable = Path::new(executable);
                std::fs::copy(
                    executable,
                    copies.path().join(executable.file_name().unwrap()),
                )
                .unwrap();
            }
        }
        copies
    });
    let binary = dir.path().join(name);
    assert!(binary.is_file(), "{name} was not built");
    binary
}

/// Checks one malformed case against the services it applies to; returns a description of each failure.
fn check_malformed(label: &str, case: &Case) -> Vec<String> {
    let prepared = prepare(case);
    let substitute = |text: &str| text.replace("$DIR", &prepared.dir.path().display().to_string());
    let variable = substitute(
        case.variable
            .as_deref()
            .expect("malformed case without variable"),
    );
    let rule = case.rule.clone().expect("malformed case without rule");
    let mut failures = Vec::new();
    let mut fail = |message: String| failures.push(format!("{label}: {message}"));
    for service in services_of(case, &variable) {
        let binary = service.binary();
        let (started, checked) = match (
            run(&service_binary(binary), &[], &prepared),
            run(
                &xtask(),
                &["config", "check", "--service", service.name()],
                &prepared,
            ),
        ) {
            (Ok(started), Ok(checked)) => (started, checked),
            (Err(err), _) | (_, Err(err)) => {
                fail(err);
                continue;
            }
        };
        let (started_out, checked_out) = (
            text(&started.stdout) + &text(&started.stderr),
            text(&checked.stdout) + &text(&checked.stderr),
        );
        if started.status.code() != Some(2) {
            fail(format!(
                "{binary} exited {} (want 2): {started_out}",
                started.status
            ));
        }
        if checked.status.success() {
            fail(format!(
                "config check --service {} accepted it: {checked_out}",
                service.name()
            ));
        }
        let (from_binary, from_check) = (
            violation_lines(&text(&started.stderr)),
            violation_lines(&text(&checked.stdout)),
        );
        if from_binary.is_empty() || from_binary != from_check {
            fail(format!(
                "{binary} and config check disagree:\n  {binary}: {from_binary:?}\n  config check: {from_check:?}"
            ));
        }
        let named = format!("{variable}: ");
        if !from_binary
            .iter()
            .any(|line| line.starts_with(&named) && line.contains(&rule))
        {
            fail(format!(
                "{binary} did not name {variable} with {rule:?}: {from_binary:?}"
            ));
        }
        for secret in &prepared.secrets {
            for (who, output) in [(binary, &started_out), ("config check", &checked_out)] {
                if output.contains(secret.as_str()) {
                    fail(format!("{who} printed a secret ({secret:?}): {output}"));
                }
            }
        }
        let own_port = match service {
            ServiceKind::Api => prepared.port,
            ServiceKind::Ws => prepared.ws_port,
        };
        if started_out.contains("listening")
            || TcpStream::connect_timeout(
                &([127, 0, 0, 1], own_port).into(),
                Duration::from_millis(200),
            )
            .is_ok()
        {
            fail(format!("{binary} bound port {own_port}: {started_out}"));
        }
    }
    failures
}

fn check_accepted(label: &str, case: &Case) -> Vec<String> {
    let prepared = prepare(case);
    let mut failures = Vec::new();
    for service in ServiceKind::ALL {
        let binary = service.binary();
        let (checked_by_binary, checked) = match (
            run(&service_binary(binary), &["check-config"], &prepared),
            run(
                &xtask(),
                &["config", "check", "--service", service.name()],
                &prepared,
            ),
        ) {
            (Ok(by_binary), Ok(checked)) => (by_binary, checked),
            (Err(err), _) | (_, Err(err)) => {
                failures.push(format!("{label}: {err}"));
                continue;
            }
        };
        for (who, output) in [(binary, &checked_by_binary), ("config check", &checked)] {
            let printed = text(&output.stdout) + &text(&output.stderr);
            if !output.status.success() {
                failures.push(format!("{label}: {who} refused it: {printed}"));
            }
            if let Some(warning) = &case.warning
                && !text(&output.stderr).contains(&format!("warning: {warning}: "))
            {
                failures.push(format!(
                    "{label}: {who} did not warn about {warning}: {printed}"
                ));
            }
        }
    }
    failures
}

#[test]
fn every_malformed_environment_is_refused_alike_by_both_services_and_config_check() {
    let cases: Cases = toml::from_str(&std::fs::read_to_string(CASES).unwrap()).unwrap();
    assert!(cases.malformed.len() >= 60, "the committed list shrank");

    // An empty value for every variable with a default, so that a new variable is covered without an edit.
    let empties: Vec<Case> = spec::ALL
        .iter()
        .filter(|var| var.default.is_some_and(|default| !default.is_empty()))
        .map(|var| Case {
            base: "production".to_owned(),
            env: BTreeMap::from([(var.name.to_owned(), String::new())]),
            variable: Some(var.name.to_owned()),
            rule: Some("must not be empty; unset it to use".to_owned()),
            ..Case::default()
        })
        .collect();

    let mut failures = Vec::new();
    let mut tried = 0;
    for (index, case) in cases.malformed.iter().enumerate() {
        let label = format!(
            "malformed #{} ({})",
            index + 1,
            case.variable.as_deref().unwrap_or("?")
        );
        failures.extend(check_malformed(&label, case));
        tried += 1;
    }
    for case in &empties {
        let label = format!("empty {}", case.variable.as_deref().unwrap_or("?"));
        failures.extend(check_malformed(&label, case));
        tried += 1;
    }
    for (index, case) in cases.accepted.iter().enumerate() {
        failures.extend(check_accepted(&format!("accepted #{}", index + 1), case));
        tried += 1;
    }
    avalon_testkit::figures::figure(
        "config guard",
        &format!(
            "{tried} environments tried ({} malformed from the list, {} empty values, {} accepted), each against avalon-api, avalon-ws and config check",
            cases.malformed.len(),
            empties.len(),
            cases.accepted.len()
        ),
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
