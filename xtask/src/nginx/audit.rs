//! `cargo xtask nginx audit`: the static security checks CI runs on the rendered edge.
//!
//! 1. gixy-ng on a tree rendered from a model that switches every template branch on (TLS, OCSP resolver,
//!    two slots with a canary, maintenance): 0 findings.
//! 2. testssl.sh against that tree served by a real nginx on loopback with a certificate made for the run
//!    (openssl): no SSLv2/SSLv3/TLS 1.0/1.1, TLS 1.2 and 1.3 offered, no NULL/export/low/3DES/CBC ciphers,
//!    HSTS present, and no finding rated MEDIUM or worse.
//!
//! A missing tool skips loudly on a developer machine and fails under `CI=true`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use xshell::{Shell, cmd};

use super::model::{EdgeModel, Slot, Tls};
use super::render::render;

/// gixy checks skipped, each with the reason it does not apply.
const GIXY_SKIPS: &[(&str, &str)] = &[(
    "missing_resolver",
    "proxy_pass uses $avalon_slot only to pick one of the `upstream` blocks rendered in conf.d/upstreams.conf \
     (the map yields fixed slot names), so nginx never resolves a name at request time; upstream server \
     names resolve when the config loads, and `cargo xtask nginx reload` reloads on every change",
)];

#[derive(Args, Debug)]
pub struct AuditCmd {
    /// Print the findings as JSON.
    #[arg(long)]
    pub(super) json: bool,
    /// Judge a running edge instead (testssl.sh against this https:// URL, same rules; gixy and the
    /// throwaway nginx are skipped), e.g. `--url https://127.0.0.1:443/` on a host after `up --env prod`.
    #[arg(long, value_name = "URL")]
    pub(super) url: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct AuditReport {
    pub gixy_findings: usize,
    pub gixy_skipped: Vec<String>,
    pub testssl_findings: usize,
    pub testssl_failures: Vec<String>,
    pub skipped_tools: Vec<String>,
}

impl AuditCmd {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let report = match &self.url {
            Some(url) => audit_running(sh, url)?,
            None => audit(sh)?,
        };
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("cannot serialise the report")?
            );
        }
        println!(
            "nginx audit: gixy {} finding(s) ({} check(s) skipped with reasons), testssl {} finding(s) read, {} failure(s)",
            report.gixy_findings,
            report.gixy_skipped.len(),
            report.testssl_findings,
            report.testssl_failures.len()
        );
        if !report.skipped_tools.is_empty() {
            println!(
                "nginx audit: SKIPPED parts needing {}",
                report.skipped_tools.join(", ")
            );
        }
        if report.gixy_findings > 0 || !report.testssl_failures.is_empty() {
            bail!(
                "nginx audit failed: {} gixy finding(s) (printed above as `gixy finding:`), testssl failures: {:#?}",
                report.gixy_findings,
                report.testssl_failures
            );
        }
        Ok(())
    }
}

/// Finds `tool`; `None` after a loud notice locally, an error under CI.
fn require(tool: &str, report: &mut AuditReport) -> anyhow::Result<bool> {
    if super::which(tool).is_some() {
        return Ok(true);
    }
    avalon_testkit::try_skip(
        &avalon_testkit::tool_skip_id(tool),
        &format!("`{tool}` is not installed: run `bash scripts/ci/install-tools.sh` (CI does)"),
    )?;
    report.skipped_tools.push(tool.to_owned());
    Ok(false)
}

pub fn audit(sh: &Shell) -> anyhow::Result<AuditReport> {
    let mut report = AuditReport::default();
    let work = tempfile::tempdir().context("cannot create a scratch directory")?;
    // nginx workers drop root privileges and must still read the tree.
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let [
        http_port,
        https_port,
        blue_api,
        blue_ws,
        green_api,
        green_ws,
    ] = free_ports()?;
    let model = audit_model(
        work.path(),
        http_port,
        https_port,
        [blue_api, blue_ws, green_api, green_ws],
    )?;
    let tree = work.path().join("tree");
    render(&model, &tree)?;

    if require("gixy", &mut report)? {
        // gixy reads the tree an operator ships: the listeners on 80/443 as in production. Its TLS checks
        // take any `listen` whose arguments contain "443" for an HTTPS server, so a random plain-HTTP port
        // such as 34431 would be judged as a TLS server without ssl_protocols (a failure one run in ~20).
        let shipped_ports = audit_model(
            work.path(),
            80,
            443,
            [blue_api, blue_ws, green_api, green_ws],
        )?;
        let gixy_tree = work.path().join("gixy-tree");
        render(&shipped_ports, &gixy_tree)?;
        run_gixy(sh, &gixy_tree, &mut report)?;
    }
    let have_tls_tools = require("openssl", &mut report)?
        && require("nginx", &mut report)?
        && require("testssl", &mut report)?;
    if have_tls_tools {
        make_certificate(sh, work.path())?;
        let nginx = NginxGuard::start(&tree, https_port)?;
        let url = format!("https://127.0.0.1:{https_port}/");
        let result = run_testssl(sh, work.path(), &url, &mut report);
        drop(nginx);
        result?;
    }
    Ok(report)
}

/// Every template branch on: TLS with an OCSP resolver, a canary slot, maintenance with an allow-list.
fn audit_model(
    work: &Path,
    http_port: u16,
    https_port: u16,
    [blue_api, blue_ws, green_api, green_ws]: [u16; 4],
) -> anyhow::Result<EdgeModel> {
    let path = |name: &str| work.join(name).display().to_string();
    std::fs::create_dir_all(work.join("logs"))?;
    std::fs::create_dir_all(work.join("tmp"))?;
    let mut model = EdgeModel::default();
    model.listen.address = Some("127.0.0.1".to_owned());
    model.listen.http = http_port;
    model.listen.https = https_port;
    model.slots = vec![
        slot("blue", 90, blue_api, blue_ws),
        slot("green", 10, green_api, green_ws),
    ];
    model.canary.slot = Some("green".to_owned());
    model.maintenance.enabled = true;
    model.tls = Some(Tls {
        cert: path("cert.pem"),
        key: path("key.pem"),
        // Loopback only: the audit must send nothing off this machine. The stapling fetch fails quietly.
        resolver: vec!["127.0.0.1".to_owned()],
        trusted_certificate: Some(path("cert.pem")),
        hsts_max_age: 63_072_000,
    });
    model.paths.pid = path("logs/nginx.pid");
    model.paths.error_log = path("logs/error.log");
    model.paths.access_log = path("logs/access.log");
    model.paths.temp = Some(path("tmp"));
    model.paths.acme_root = path("acme");
    model.worker_processes = "1".to_owned();
    model.worker_connections = 256;
    Ok(model)
}

fn slot(name: &str, weight: u8, api_port: u16, ws_port: u16) -> Slot {
    Slot {
        name: name.to_owned(),
        api: vec![format!("127.0.0.1:{api_port}")],
        websocket: vec![format!("127.0.0.1:{ws_port}")],
        weight,
    }
}

fn run_gixy(sh: &Shell, tree: &Path, report: &mut AuditReport) -> anyhow::Result<()> {
    for (check, reason) in GIXY_SKIPS {
        println!("gixy: skipping {check}: {reason}");
        report.gixy_skipped.push((*check).to_owned());
    }
    let skips = GIXY_SKIPS
        .iter()
        .map(|(check, _)| *check)
        .collect::<Vec<_>>()
        .join(",");
    let conf = tree.join("nginx.conf");
    let _dir = sh.push_dir(tree);
    let output = cmd!(sh, "gixy --format json --skips {skips} {conf}")
        .ignore_status()
        .output()
        .context("cannot run gixy")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let findings: Vec<serde_json::Value> =
        serde_json::from_str(stdout.trim()).with_context(|| {
            format!(
                "gixy printed no JSON report (exit {}): {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    for finding in &findings {
        eprintln!("gixy finding: {finding}");
    }
    report.gixy_findings = findings.len();
    println!("gixy: {} finding(s)", findings.len());
    Ok(())
}

fn make_certificate(sh: &Shell, work: &Path) -> anyhow::Result<()> {
    let key = work.join("key.pem");
    let cert = work.join("cert.pem");
    cmd!(
        sh,
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -keyout {key} -out {cert}"
    )
    .quiet()
    .ignore_stderr()
    .run()
    .context("openssl could not make the test certificate")
}

/// IDs in testssl's JSON that must read "not offered".
const MUST_NOT_BE_OFFERED: &[&str] = &[
    "SSLv2",
    "SSLv3",
    "TLS1",
    "TLS1_1",
    "cipherlist_NULL",
    "cipherlist_aNULL",
    "cipherlist_EXPORT",
    "cipherlist_LOW",
    "cipherlist_3DES_IDEA",
    "cipherlist_AVERAGE",
];
const MUST_BE_OFFERED: &[&str] = &["TLS1_2", "TLS1_3", "cipherlist_STRONG"];

/// testssl.sh against an edge that is already serving (the shipped model on a real stack).
fn audit_running(sh: &Shell, url: &str) -> anyhow::Result<AuditReport> {
    if !url.starts_with("https://") {
        bail!("--url: must be an https:// URL, got {url:?}");
    }
    let mut report = AuditReport::default();
    if !require("testssl", &mut report)? {
        return Ok(report);
    }
    let work = tempfile::tempdir().context("cannot create a scratch directory")?;
    run_testssl(sh, work.path(), url, &mut report)?;
    Ok(report)
}

fn run_testssl(sh: &Shell, work: &Path, url: &str, report: &mut AuditReport) -> anyhow::Result<()> {
    let json_file = work.join("testssl.json");
    let output = cmd!(
        sh,
        "testssl --quiet --color 0 --warnings off --protocols --std --headers --jsonfile {json_file} {url}"
    )
    .ignore_status()
    .output()
    .context("cannot run testssl")?;
    // To stderr: with --json, stdout carries only the report.
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    let text = std::fs::read_to_string(&json_file).with_context(|| {
        format!(
            "testssl wrote no JSON ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let findings: Vec<serde_json::Value> =
        serde_json::from_str(&text).context("testssl JSON does not parse")?;
    report.testssl_findings = findings.len();
    report.testssl_failures = judge_testssl(&findings);
    for failure in &report.testssl_failures {
        eprintln!("testssl failure: {failure}");
    }
    Ok(())
}

fn judge_testssl(findings: &[serde_json::Value]) -> Vec<String> {
    let field = |finding: &serde_json::Value, name: &str| {
        finding[name].as_str().unwrap_or_default().to_owned()
    };
    let by_id = |id: &str| findings.iter().find(|finding| finding["id"] == id);
    let mut failures = Vec::new();
    for id in MUST_NOT_BE_OFFERED {
        match by_id(id) {
            Some(finding) if field(finding, "finding").starts_with("not offered") => {}
            Some(finding) => failures.push(format!(
                "{id}: expected not offered, got {:?}",
                field(finding, "finding")
            )),
            None => failures.push(format!("{id}: not reported")),
        }
    }
    for id in MUST_BE_OFFERED {
        match by_id(id) {
            Some(finding) if field(finding, "finding").starts_with("offered") => {}
            Some(finding) => failures.push(format!(
                "{id}: expected offered, got {:?}",
                field(finding, "finding")
            )),
            None => failures.push(format!("{id}: not reported")),
        }
    }
    match by_id("HSTS_time") {
        Some(finding) if field(finding, "severity") == "OK" => {}
        other => failures.push(format!("HSTS missing or weak: {other:?}")),
    }
    for finding in findings {
        let severity = field(finding, "severity");
        if matches!(severity.as_str(), "MEDIUM" | "HIGH" | "CRITICAL") {
            failures.push(format!(
                "{} [{severity}]: {}",
                field(finding, "id"),
                field(finding, "finding")
            ));
        }
    }
    failures
}

/// nginx in the foreground for the scan; stopped on drop.
struct NginxGuard {
    child: Child,
}

impl NginxGuard {
    fn start(tree: &Path, https_port: u16) -> anyhow::Result<Self> {
        let prefix = format!("{}/", tree.display());
        println!("$ nginx -e stderr -p {prefix} -c nginx.conf -g 'daemon off;'");
        let child = Command::new("nginx")
            .args([
                "-e",
                "stderr",
                "-p",
                &prefix,
                "-c",
                "nginx.conf",
                "-g",
                "daemon off;",
            ])
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let mut guard = Self { child };
        let addr = SocketAddr::from(([127, 0, 0, 1], https_port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline
                || guard.child.try_wait().is_ok_and(|status| status.is_some())
            {
                bail!("nginx did not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(guard)
    }
}

impl Drop for NginxGuard {
    /// SIGTERM (fast shutdown) so the master stops its workers; SIGKILL would orphan them.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().is_ok_and(|status| status.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `N` distinct free loopback ports. The listeners stay open until every port is chosen: bound and
/// dropped one at a time, the kernel may hand out the same port twice (CI once got http == https).
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, severity: &str, text: &str) -> serde_json::Value {
        serde_json::json!({ "id": id, "severity": severity, "finding": text })
    }

    fn passing() -> Vec<serde_json::Value> {
        let mut all: Vec<_> = MUST_NOT_BE_OFFERED
            .iter()
            .map(|id| finding(id, "OK", "not offered"))
            .collect();
        all.extend(
            MUST_BE_OFFERED
                .iter()
                .map(|id| finding(id, "OK", "offered")),
        );
        all.push(finding("HSTS_time", "OK", "730 days"));
        all
    }

    #[test]
    fn a_clean_scan_passes_and_old_protocols_or_missing_hsts_fail() {
        assert!(judge_testssl(&passing()).is_empty());
        let mut tls1 = passing();
        tls1[2] = finding("TLS1", "LOW", "offered (deprecated)");
        assert!(judge_testssl(&tls1).iter().any(|f| f.starts_with("TLS1:")));
        let no_hsts: Vec<_> = passing()
            .into_iter()
            .filter(|f| f["id"] != "HSTS_time")
            .collect();
        assert!(judge_testssl(&no_hsts).iter().any(|f| f.contains("HSTS")));
        let mut weak = passing();
        weak.push(finding("BREACH", "MEDIUM", "potentially VULNERABLE"));
        assert_eq!(judge_testssl(&weak).len(), 1);
    }
}
