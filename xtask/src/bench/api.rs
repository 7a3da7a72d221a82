//! `cargo xtask bench api`: what does the edge cost an authenticated read, and is the API fast enough?
//!
//! One run, all on loopback: a release `avalon-api` (embedded store, development, dev-login, rate limits
//! raised out of the way), an nginx in front of it, and `oha` generating load on `GET /api/v1/users/me` with a
//! dev-login access token. Four measurements, each bounded by `--duration`:
//! - direct and through nginx at saturation (`--connections` concurrent): req/s, p99;
//! - direct and through nginx at a fixed `--rate` (2,000 req/s): p99.
//!
//! Targets (2 cores): through nginx ≥ 70 % of direct req/s; p99 ≤ 10 ms at 2,000 req/s through nginx.
//! nginx runs the edge configuration `cargo xtask nginx` renders, with one worker and one slot whose upstream
//! is the bench's API; the report says so.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde::Serialize;

use crate::nginx::EdgeModel;

#[derive(Args, Debug)]
pub struct ApiBench {
    /// Seconds of each of the four measurements.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    duration: u64,
    /// Concurrent connections of the load generator.
    #[arg(long, value_name = "N", default_value_t = 32)]
    connections: u32,
    /// Request rate of the latency measurements, per second.
    #[arg(long, value_name = "REQ_S", default_value_t = 2000)]
    rate: u32,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

const TARGET_RATIO: f64 = 0.70;
const TARGET_P99_MS: f64 = 10.0;
const PATH: &str = "/api/v1/users/me";

#[derive(Debug, Serialize)]
struct Run {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
}

#[derive(Debug, Serialize)]
struct Figures {
    route: &'static str,
    cpus: usize,
    duration_s: u64,
    connections: u32,
    nginx_config: &'static str,
    direct: Run,
    through_nginx: Run,
    nginx_vs_direct_throughput: f64,
    fixed_rate_req_s: u32,
    direct_at_rate: Run,
    through_nginx_at_rate: Run,
    target_ratio: f64,
    target_p99_ms: f64,
    ratio_met: bool,
    p99_met: bool,
}

/// Ends a child process when dropped (the API gets SIGTERM to drain, nginx its quit signal).
struct Running {
    name: &'static str,
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("bench api: {} did not stop in 10 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ApiBench {
    pub fn run(self, sh: &xshell::Shell) -> anyhow::Result<()> {
        ensure!(
            (1..=120).contains(&self.duration),
            "--duration: must be from 1 to 120 seconds"
        );
        ensure!(
            (1..=1024).contains(&self.connections),
            "--connections: must be from 1 to 1024"
        );
        ensure!(
            (1..=100_000).contains(&self.rate),
            "--rate: must be from 1 to 100000"
        );
        let oha = tool("oha", "bash scripts/ci/install-tools.sh")?;
        let nginx = tool("nginx", "bash scripts/ci/install-tools.sh")?;

        xshell::cmd!(sh, "cargo build --release --locked --package avalon-api")
            .run()
            .context("building avalon-api (release)")?;
        let binary = target_dir().join("release").join("avalon-api");
        let work = tempfile::tempdir().context("creating a scratch directory")?;

        let api_port = free_port()?;
        let api = start_api(&binary, work.path(), api_port)?;
        let api_addr = SocketAddr::from(([127, 0, 0, 1], api_port));
        wait_ready(api_addr, "/readyz")?;
        let token = dev_login(api_addr)?;

        let nginx_port = free_port()?;
        let nginx_proc = start_nginx(&nginx, work.path(), api_port, nginx_port)?;
        let nginx_addr = SocketAddr::from(([127, 0, 0, 1], nginx_port));
        wait_ready(nginx_addr, "/health")?;

        let direct_url = format!("http://{api_addr}{PATH}");
        let nginx_url = format!("http://{nginx_addr}{PATH}");
        let load = Load {
            oha: &oha,
            token: &token,
            connections: self.connections,
        };
        eprintln!("bench api: warming up");
        load.measure(&direct_url, None, 2)?;
        load.measure(&nginx_url, None, 2)?;
        let direct = load.measure(&direct_url, None, self.duration)?;
        let through_nginx = load.measure(&nginx_url, None, self.duration)?;
        let direct_at_rate = load.measure(&direct_url, Some(self.rate), self.duration)?;
        let through_nginx_at_rate = load.measure(&nginx_url, Some(self.rate), self.duration)?;
        drop(nginx_proc);
        drop(api);

        for (name, run) in [
            ("direct", &direct),
            ("through nginx", &through_nginx),
            ("direct at rate", &direct_at_rate),
            ("through nginx at rate", &through_nginx_at_rate),
        ] {
            ensure!(
                run.non_2xx == 0,
                "{name}: {} answers were not 2xx",
                run.non_2xx
            );
            ensure!(run.requests > 0, "{name}: no request completed");
        }
        let ratio = round(through_nginx.requests_per_sec / direct.requests_per_sec);
        let figures = Figures {
            route: PATH,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            duration_s: self.duration,
            connections: self.connections,
            nginx_config: "the edge config `cargo xtask nginx` renders (JSON access log, request ids, security headers, upstream keepalive), 1 worker, per-address rate limit raised out of the way",
            ratio_met: ratio >= TARGET_RATIO,
            p99_met: through_nginx_at_rate.p99_ms <= TARGET_P99_MS,
            nginx_vs_direct_throughput: ratio,
            direct,
            through_nginx,
            fixed_rate_req_s: self.rate,
            direct_at_rate,
            through_nginx_at_rate,
            target_ratio: TARGET_RATIO,
            target_p99_ms: TARGET_P99_MS,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&figures)?);
        } else {
            print_figures(&figures);
        }
        if !(figures.ratio_met && figures.p99_met) {
            bail!("bench api: a target was missed (see the figures above)");
        }
        Ok(())
    }
}

fn tool(name: &str, install: &str) -> anyhow::Result<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("`{name}` is not installed: run `{install}`"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => crate::project::root().join(dir),
        None => crate::project::root().join("target"),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_api(binary: &Path, work: &Path, port: u16) -> anyhow::Result<Running> {
    let ws_port = free_port()?;
    let data = work.join("data");
    let log = std::fs::File::create(work.join("api.log"))?;
    let env = [
        ("APP_ENV", "development".to_owned()),
        ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("WS_PORT", ws_port.to_string()),
        ("DATA_DIR", data.display().to_string()),
        ("CONFIG_DIR", work.display().to_string()),
        ("DEV_LOGIN", "true".to_owned()),
        // The limits would otherwise be the thing measured.
        ("RATE_LIMIT_IP", "1000000000".to_owned()),
        ("RATE_LIMIT_USER", "1000000000".to_owned()),
        ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        ("SHUTDOWN_DRAIN_DELAY", "0s".to_owned()),
    ];
    let shown: Vec<String> = env
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    eprintln!(
        "$ env -i {} {} > {}",
        shown.join(" "),
        binary.display(),
        work.join("api.log").display()
    );
    let child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Running {
        name: "avalon-api",
        child,
    })
}

/// The real edge: the configuration `cargo xtask nginx` renders (JSON access log, request ids, security
/// headers, limits), from a model with one slot pointing at the bench's API. Its per-address request limit
/// is raised out of the way, as the API's own limits are: the load generator is a single address.
fn start_nginx(nginx: &Path, work: &Path, api_port: u16, port: u16) -> anyhow::Result<Running> {
    let state = work.join("edge");
    for dir in ["logs", "tmp", "acme"] {
        std::fs::create_dir_all(state.join(dir))
            .with_context(|| format!("creating {}", state.join(dir).display()))?;
    }
    // Run as root, nginx's workers would drop to `nobody` and lose the scratch directory.
    let as_root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
    };
    let model: EdgeModel = serde_json::from_value(serde_json::json!({
        "listen": { "address": "127.0.0.1", "http": port },
        "slots": [{
            "name": "blue",
            "api": [format!("127.0.0.1:{api_port}")],
            // The bench sends no WebSocket traffic; the slot only needs an address that resolves.
            "websocket": [format!("127.0.0.1:{api_port}")],
            "weight": 100,
        }],
        "rate_limits": { "api_per_second": 100_000, "api_burst": 100_000, "ws_connections_per_ip": 1000 },
        "paths": {
            "pid": state.join("logs/nginx.pid"),
            "error_log": state.join("logs/error.log"),
            "access_log": state.join("logs/access.log"),
            "temp": state.join("tmp"),
            "acme_root": state.join("acme"),
        },
        "user": as_root.then_some("root"),
        "worker_processes": "1",
        "worker_connections": 4096,
    }))
    .context("building the bench's edge model")?;
    let tree = crate::nginx::render(&model, &state.join("tree"))?;
    let prefix = format!("{}/", tree.dir.display());
    let args = ["-e", "stderr", "-p", prefix.as_str(), "-c", "nginx.conf"];
    eprintln!("$ {} -t {}", nginx.display(), args.join(" "));
    let status = Command::new(nginx)
        .arg("-t")
        .args(args)
        .status()
        .context("running nginx -t")?;
    ensure!(
        status.success(),
        "nginx -t refused the rendered edge configuration"
    );
    eprintln!("$ {} {} -g 'daemon off;'", nginx.display(), args.join(" "));
    let child = Command::new(nginx)
        .args(args)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    Ok(Running {
        name: "nginx",
        child,
    })
}

fn http(addr: SocketAddr, request: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("not an HTTP response")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits for 200 on `path` (`/readyz` on the API; the edge publishes `/health` instead).
fn wait_ready(addr: SocketAddr, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    while Instant::now() < deadline {
        if matches!(http(addr, &request), Ok((200, _))) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{addr} did not answer 200 on {path} within 30 s")
}

fn dev_login(addr: SocketAddr) -> anyhow::Result<String> {
    let body = r#"{"openid":"bench"}"#;
    let request = format!(
        "POST /api/v1/auth/dev-login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, body) = http(addr, &request)?;
    ensure!(status == 200, "dev-login answered {status}: {body}");
    let session: serde_json::Value = serde_json::from_str(&body).context("dev-login answer")?;
    session["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("dev-login answer has no access_token")
}

struct Load<'a> {
    oha: &'a Path,
    token: &'a str,
    connections: u32,
}

impl Load<'_> {
    fn measure(&self, url: &str, rate: Option<u32>, seconds: u64) -> anyhow::Result<Run> {
        let mut args = vec![
            "--no-tui".to_owned(),
            "--output-format".to_owned(),
            "json".to_owned(),
            "-z".to_owned(),
            format!("{seconds}s"),
            "-c".to_owned(),
            self.connections.to_string(),
        ];
        if let Some(rate) = rate {
            args.extend(["-q".to_owned(), rate.to_string()]);
        }
        args.push(url.to_owned());
        // The token is a throwaway dev-login token, but still kept off the printed command line.
        eprintln!(
            "$ {} -H 'Authorization: Bearer <dev-login token>' {}",
            self.oha.display(),
            args.join(" ")
        );
        let output = Command::new(self.oha)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .context("running oha")?;
        ensure!(
            output.status.success(),
            "oha failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse_oha(&output.stdout)
    }
}

fn parse_oha(stdout: &[u8]) -> anyhow::Result<Run> {
    let report: serde_json::Value = serde_json::from_slice(stdout).context("oha's JSON report")?;
    let seconds = |value: &serde_json::Value| value.as_f64().map(|s| round(s * 1000.0));
    let statuses = report["statusCodeDistribution"]
        .as_object()
        .context("oha report without statusCodeDistribution")?;
    let mut requests = 0;
    let mut non_2xx = 0;
    for (code, count) in statuses {
        let count = count.as_u64().unwrap_or(0);
        requests += count;
        if !code.starts_with('2') {
            non_2xx += count;
        }
    }
    Ok(Run {
        requests_per_sec: round(
            report["summary"]["requestsPerSec"]
                .as_f64()
                .context("oha report without summary.requestsPerSec")?,
        ),
        p50_ms: seconds(&report["latencyPercentiles"]["p50"]).context("oha report without p50")?,
        p99_ms: seconds(&report["latencyPercentiles"]["p99"]).context("oha report without p99")?,
        requests,
        non_2xx,
    })
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn print_figures(figures: &Figures) {
    let line = |name: &str, run: &Run| {
        println!(
            "  {name:<28} {:>10.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests)",
            run.requests_per_sec, run.p50_ms, run.p99_ms, run.requests
        );
    };
    println!(
        "bench api: GET {} with a bearer token, {} CPUs, {} s per run, {} connections",
        figures.route, figures.cpus, figures.duration_s, figures.connections
    );
    println!("  nginx: {}", figures.nginx_config);
    line("direct (saturated)", &figures.direct);
    line("through nginx (saturated)", &figures.through_nginx);
    line(
        &format!("direct @ {} req/s", figures.fixed_rate_req_s),
        &figures.direct_at_rate,
    );
    line(
        &format!("nginx @ {} req/s", figures.fixed_rate_req_s),
        &figures.through_nginx_at_rate,
    );
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "  nginx / direct throughput: {:.2} (target ≥ {:.2}) — {}",
        figures.nginx_vs_direct_throughput,
        figures.target_ratio,
        verdict(figures.ratio_met)
    );
    println!(
        "  p99 through nginx @ {} req/s: {:.2} ms (target ≤ {:.1} ms) — {}",
        figures.fixed_rate_req_s,
        figures.through_nginx_at_rate.p99_ms,
        figures.target_p99_ms,
        verdict(figures.p99_met)
    );
}
