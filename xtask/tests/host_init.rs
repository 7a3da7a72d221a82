//! `cargo xtask host init --root DIR` as an operator rehearses a first install: the real binary on an empty
//! tree, then again (nothing to change, byte-identical), refusals that name the key, and `host check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;

const APPID: &str = "wx1234567890abcdef";
const WECHAT_SECRET: &str = "0123456789abcdef0123456789abcdef";

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A tree to prepare, and a WeChat secret file outside it.
struct Rehearsal {
    tree: tempfile::TempDir,
    inputs: tempfile::TempDir,
}

impl Rehearsal {
    /// None (after a loud skip notice) where openssl, which makes the staging certificate, is missing.
    fn new() -> Option<Rehearsal> {
        avalon_testkit::require_tool("openssl")?;
        let rehearsal = Rehearsal {
            tree: tempfile::tempdir().unwrap(),
            inputs: tempfile::tempdir().unwrap(),
        };
        std::fs::write(rehearsal.wechat_file(), format!("{WECHAT_SECRET}\n")).unwrap();
        Some(rehearsal)
    }

    fn root(&self) -> &str {
        self.tree.path().to_str().unwrap()
    }

    fn wechat_file(&self) -> PathBuf {
        self.inputs.path().join("wechat_secret.txt")
    }

    fn path(&self, host_path: &str) -> PathBuf {
        self.tree.path().join(host_path.trim_start_matches('/'))
    }

    fn init(&self, env: &str, extra: &[&str]) -> Output {
        let mut args = vec!["host", "init", "--root", self.root(), "--env", env];
        args.extend_from_slice(extra);
        xtask(&args)
    }

    fn init_staging(&self, extra: &[&str]) -> Output {
        let wechat = self.wechat_file();
        let appid = format!("WECHAT_APPID={APPID}");
        let mut args = vec![
            "--set",
            appid.as_str(),
            "--wechat-secret-file",
            wechat.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.init("staging", &args)
    }

    fn check(&self, env: &str, extra: &[&str]) -> Output {
        let mut args = vec!["host", "check", "--root", self.root(), "--env", env];
        args.extend_from_slice(extra);
        xtask(&args)
    }

    fn mode(&self, host_path: &str) -> u32 {
        std::fs::metadata(self.path(host_path)).unwrap().mode() & 0o7777
    }

    fn read(&self, host_path: &str) -> String {
        std::fs::read_to_string(self.path(host_path)).unwrap()
    }

    /// Every path of the tree with its mode, owner and content.
    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)> {
        fn walk(dir: &Path, into: &mut BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let content = if meta.is_file() {
                    std::fs::read(&path).unwrap()
                } else {
                    Vec::new()
                };
                into.insert(path.clone(), (meta.mode(), meta.uid(), meta.gid(), content));
                if meta.is_dir() {
                    walk(&path, into);
                }
            }
        }
        let mut snapshot = BTreeMap::new();
        walk(self.tree.path(), &mut snapshot);
        snapshot
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

#[test]
fn init_prepares_an_empty_tree_and_a_second_run_changes_nothing() {
    let Some(host) = Rehearsal::new() else { return };
    let first = host.init_staging(&[]);
    assert!(first.status.success(), "{}", text(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    println!("{stdout}");

    // Directories and modes.
    for (path, mode) in [
        ("/etc/avalon", 0o755),
        ("/etc/avalon/avalon.env", 0o640),
        ("/etc/avalon/backup.env", 0o600),
        ("/etc/avalon/secrets", 0o750),
        ("/etc/avalon/secrets/jwt_secret", 0o640),
        ("/etc/avalon/secrets/redis_password", 0o640),
        ("/etc/avalon/secrets/mongodb_root_password", 0o640),
        ("/etc/avalon/secrets/mongodb_app_password", 0o640),
        ("/etc/avalon/secrets/mongodb_uri", 0o640),
        ("/etc/avalon/secrets/wechat_secret", 0o640),
        ("/etc/avalon/certs", 0o750),
        ("/etc/avalon/certs/fullchain.pem", 0o644),
        ("/etc/avalon/certs/privkey.pem", 0o640),
        ("/var/lib/avalon", 0o755),
        ("/var/lib/avalon/releases", 0o750),
        ("/var/backups/avalon", 0o750),
        ("/etc/sysctl.d/60-avalon.conf", 0o644),
        ("/etc/security/limits.d/60-avalon.conf", 0o644),
        (
            "/etc/systemd/system/docker.service.d/60-avalon-limits.conf",
            0o644,
        ),
        ("/etc/systemd/system/avalon-heal.service", 0o644),
        ("/etc/systemd/system/avalon-backup.timer", 0o644),
        ("/usr/local/bin/avalon-xtask", 0o755),
    ] {
        assert_eq!(host.mode(path), mode, "mode of {path}");
    }

    // Secrets: long, random, printable; the URI carries the app password.
    let jwt = host.read("/etc/avalon/secrets/jwt_secret");
    let jwt_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&jwt)
        .unwrap();
    assert!(
        jwt_bytes.len() >= 64,
        "JWT secret of {} bytes",
        jwt_bytes.len()
    );
    for name in [
        "redis_password",
        "mongodb_root_password",
        "mongodb_app_password",
    ] {
        let value = host.read(&format!("/etc/avalon/secrets/{name}"));
        assert_eq!(value.len(), 64, "{name}");
        assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    }
    let app_password = host.read("/etc/avalon/secrets/mongodb_app_password");
    assert_ne!(
        app_password,
        host.read("/etc/avalon/secrets/mongodb_root_password")
    );
    assert_eq!(
        host.read("/etc/avalon/secrets/mongodb_uri"),
        format!("mongodb://avalon_app:{app_password}@mongodb:27017/avalon?authSource=avalon")
    );
    assert_eq!(
        host.read("/etc/avalon/secrets/wechat_secret"),
        WECHAT_SECRET
    );
    assert!(
        !stdout.contains(&jwt)
            && !stdout.contains(&app_password)
            && !stdout.contains(WECHAT_SECRET)
    );

    // The env file: the template's, the appid filled in, paths inside are host paths.
    let env = host.read("/etc/avalon/avalon.env");
    assert!(env.contains("APP_ENV=staging\n"), "{env}");
    assert!(env.contains(&format!("\nWECHAT_APPID={APPID}\n")), "{env}");
    assert!(
        env.contains("\nAVALON_SECRETS_DIR=/etc/avalon/secrets\n"),
        "{env}"
    );

    // Owners: root, group 10001 (which every container reading a secret has) when run as root; said so
    // otherwise.
    if is_root() {
        let owner = |path: &str| {
            let meta = std::fs::metadata(host.path(path)).unwrap();
            (meta.uid(), meta.gid())
        };
        for name in [
            "jwt_secret",
            "redis_password",
            "mongodb_root_password",
            "mongodb_uri",
            "wechat_secret",
        ] {
            assert_eq!(
                owner(&format!("/etc/avalon/secrets/{name}")),
                (0, 10001),
                "{name}"
            );
        }
        assert_eq!(owner("/etc/avalon/secrets"), (0, 10001));
        assert_eq!(owner("/etc/avalon/certs/privkey.pem"), (0, 10001));
        assert_eq!(owner("/etc/avalon/avalon.env"), (0, 0));
    } else {
        assert!(stdout.contains("not running as root"), "{stdout}");
    }

    // The certificate parses and its key is its key.
    let cert = host.path("/etc/avalon/certs/fullchain.pem");
    let parsed = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(parsed.status.success(), "{}", text(&parsed));
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        parsed.contains("CN = localhost") && parsed.contains("IP Address:127.0.0.1"),
        "{parsed}"
    );

    // Second run: nothing to change, byte for byte, in text and JSON.
    let before = host.snapshot();
    let second = host.init_staging(&[]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("host init: nothing to change"),
        "{}",
        text(&second)
    );
    let third = host.init_staging(&["--json"]);
    assert!(third.status.success(), "{}", text(&third));
    let report: serde_json::Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(report["changes"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["remaining"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(host.snapshot(), before, "a second run changed the tree");

    // host check agrees, in text and JSON.
    let check = host.check("staging", &[]);
    assert!(check.status.success(), "{}", text(&check));
    println!("{}", String::from_utf8_lossy(&check.stdout));
    let check = host.check("staging", &["--json"]);
    assert!(check.status.success(), "{}", text(&check));
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let items = report["items"].as_array().unwrap();
    let status_of = |name: &str| {
        items
            .iter()
            .find(|item| item["item"] == name)
            .map(|item| item["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        status_of("/etc/avalon/secrets/jwt_secret").as_deref(),
        Some("ok")
    );
    assert_eq!(
        status_of("certificate").as_deref(),
        Some("ok"),
        "{report:#}"
    );
    assert_eq!(
        status_of("/etc/avalon/avalon.env").as_deref(),
        Some("ok"),
        "{report:#}"
    );
    assert_eq!(host.snapshot(), before, "host check changed the tree");

    // Checked as the wrong environment, the env file says so.
    let check = host.check("prod", &[]);
    assert!(!check.status.success());
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("APP_ENV=staging, but this host is checked as --env prod"),
        "{}",
        text(&check)
    );
}

#[test]
fn init_does_everything_else_then_refuses_to_finish_while_the_appid_is_a_placeholder() {
    let Some(host) = Rehearsal::new() else { return };
    let wechat = host.wechat_file();
    let output = host.init(
        "staging",
        &["--wechat-secret-file", wechat.to_str().unwrap()],
    );
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WECHAT_APPID"), "{}", text(&output));
    assert!(
        host.path("/etc/avalon/secrets/jwt_secret").is_file(),
        "the rest was done"
    );
    assert!(
        host.path("/etc/avalon/certs/privkey.pem").is_file(),
        "the rest was done"
    );

    let check = host.check("staging", &["--json"]);
    assert!(!check.status.success());
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let placeholder = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["item"] == "WECHAT_APPID")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(placeholder["status"], "placeholder");

    // A placeholder given as the value is refused before anything changes.
    let before = host.snapshot();
    let output = host.init("staging", &["--set", "WECHAT_APPID=wx0000000000000000"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--set WECHAT_APPID: `wx0000000000000000` is a placeholder"),
        "{}",
        text(&output)
    );
    assert_eq!(host.snapshot(), before);

    // The template's example value written by hand is a placeholder too.
    let env_path = host.path("/etc/avalon/avalon.env");
    let env = std::fs::read_to_string(&env_path).unwrap();
    std::fs::write(
        &env_path,
        env.replace("\nWECHAT_APPID=\n", "\nWECHAT_APPID=wx0000000000000000\n"),
    )
    .unwrap();
    let output = host.init("staging", &["--json"]);
    assert!(!output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let remaining: Vec<&str> = report["remaining"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["item"].as_str().unwrap())
        .collect();
    assert_eq!(remaining, ["WECHAT_APPID"], "{report:#}");

    // Filling it in finishes the host.
    let output = host.init("staging", &["--set", &format!("WECHAT_APPID={APPID}")]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(host.check("staging", &[]).status.success());
}

#[test]
fn init_never_overwrites_a_secret_or_a_value_the_operator_chose() {
    let Some(host) = Rehearsal::new() else { return };
    // An operator's own JWT secret, too open.
    let jwt_path = host.path("/etc/avalon/secrets/jwt_secret");
    std::fs::create_dir_all(jwt_path.parent().unwrap()).unwrap();
    let own = "operator-chosen-jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    std::fs::write(&jwt_path, own).unwrap();
    let output = host.init_staging(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(host.read("/etc/avalon/secrets/jwt_secret"), own);
    assert_eq!(host.mode("/etc/avalon/secrets/jwt_secret"), 0o640);

    let before = host.snapshot();
    // Another appid for a host that has one: refused, naming the key; nothing changed.
    let output = host.init(
        "staging",
        &[
            "--set",
            "WECHAT_APPID=wxffffffffffffffff",
            "--set",
            "LOG_FORMAT=pretty",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("WECHAT_APPID is already `{APPID}`")),
        "{}",
        text(&output)
    );
    assert!(
        stderr.contains("LOG_FORMAT is already `json`"),
        "{}",
        text(&output)
    );
    // Another WeChat secret: refused.
    let other = host.inputs.path().join("other.txt");
    std::fs::write(&other, "fedcba9876543210fedcba9876543210").unwrap();
    let output = host.init(
        "staging",
        &["--wechat-secret-file", other.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("never overwrites a secret"),
        "{}",
        text(&output)
    );
    // An unknown variable: refused.
    let output = host.init("staging", &["--set", "NOT_A_VARIABLE=1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("NOT_A_VARIABLE: unknown variable"));
    assert_eq!(host.snapshot(), before, "a refused run changed the tree");

    // A weak secret the operator left is reported by the services' own validator.
    std::fs::write(&jwt_path, "short").unwrap();
    let check = host.check("staging", &[]);
    assert!(!check.status.success());
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("JWT_SECRET") && stdout.contains("at least 32 bytes"),
        "{}",
        text(&check)
    );
}

#[test]
fn dry_run_plans_everything_and_creates_nothing() {
    let Some(host) = Rehearsal::new() else { return };
    let output = host.init_staging(&["--dry-run", "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    let paths: Vec<&str> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["path"].as_str().unwrap())
        .collect();
    for path in [
        "/etc/avalon/secrets/jwt_secret",
        "/etc/avalon/certs/fullchain.pem",
        "/etc/sysctl.d/60-avalon.conf",
    ] {
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }
    assert!(host.snapshot().is_empty(), "a dry run wrote files");
}

#[test]
fn production_waits_for_real_certificates_and_check_fails_without_them() {
    let Some(host) = Rehearsal::new() else { return };
    let wechat = host.wechat_file();
    let appid = format!("WECHAT_APPID={APPID}");
    let args = [
        "--set",
        appid.as_str(),
        "--wechat-secret-file",
        wechat.to_str().unwrap(),
        "--domain",
        "game.example.com",
    ];
    let output = host.init("prod", &args);
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/etc/avalon/certs/fullchain.pem")
            && stderr.contains("/etc/avalon/certs/privkey.pem"),
        "{}",
        text(&output)
    );
    assert!(
        !host.path("/etc/avalon/certs/fullchain.pem").exists(),
        "prod never gets a self-signed certificate"
    );
    assert!(
        host.read("/etc/avalon/avalon.env")
            .contains("APP_ENV=production\n")
    );
    let check = host.check("prod", &[]);
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .contains("MISSING     /etc/avalon/certs/fullchain.pem "),
        "{}",
        text(&check)
    );

    // The operator copies real certificates in (here: made with openssl, as certbot's would be).
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
        ])
        .args(["-subj", "/CN=game.example.com", "-keyout"])
        .arg(host.path("/etc/avalon/certs/privkey.pem"))
        .arg("-out")
        .arg(host.path("/etc/avalon/certs/fullchain.pem"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let key = host.path("/etc/avalon/certs/privkey.pem");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let output = host.init("prod", &args);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        host.mode("/etc/avalon/certs/privkey.pem"),
        0o640,
        "init corrected the key's mode"
    );
    let check = host.check("prod", &[]);
    assert!(check.status.success(), "{}", text(&check));
}
