//! The production stack as shipped: docker/compose.yml + docker/compose.prod.yml and the shipped edge model
//! nginx/models/prod.json, brought up by `cargo xtask up --env prod` with only what a real host supplies —
//! images (this checkout's api/ws, the offline nginx/redis builds, a MongoDB wire-protocol stand-in since
//! no MongoDB can run here), the secrets and certificate of `cargo xtask host init --root`, the WeChat app
//! id, and an admin address. Then, as users would see it:
//! - plain HTTP redirects to HTTPS; HTTPS serves the API with the shipped TLS settings (testssl.sh);
//! - 200 clients, each from its own address (a network namespace of the test's own): exactly the clients
//!   that go over RATE_LIMIT_IP get 429, for exactly their excess, and no other client is affected;
//! - during maintenance the allow-listed admin address is served while everyone else gets 503.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stack_support;

use std::process::Command;

use serde_json::Value;
use stack_support::client_hosts::ClientHosts;
use stack_support::prod::{self, ProdHost};
use stack_support::{docker, docker_with_compose_v2, run, run_ok, workspace_root, xtask};

/// Clients in the rate-limit run, and how many of them go over the API's per-IP budget.
const CLIENTS: usize = 200;
const OVER_LIMIT_CLIENTS: usize = 20;
/// Requests each over-limit client sends beyond the budget.
const EXCESS: usize = 10;
/// Requests each of the other clients sends (well under the budget).
const WITHIN_LIMIT: usize = 10;

struct ProdStack {
    project: String,
    env: Vec<(String, String)>,
}

impl ProdStack {
    fn xtask(&self, args: &[&str]) -> Command {
        let mut command = xtask();
        command.args(args);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }
}

impl Drop for ProdStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = run(&mut self.xtask(&[
                "logs",
                "--env",
                "prod",
                "--project",
                &self.project,
                "--tail",
                "40",
            ]));
        }
        let _ = run(&mut self.xtask(&[
            "down",
            "--env",
            "prod",
            "--project",
            &self.project,
            "--volumes",
        ]));
        let _ = run(&mut docker(&[
            "volume",
            "rm",
            "--force",
            &format!("{}-releases", self.project),
        ]));
    }
}

#[test]
fn the_shipped_prod_stack_serves_https_limits_each_client_by_its_own_address_and_lets_admins_through_maintenance()
 {
    if !docker_with_compose_v2() {
        return;
    }
    // Network namespaces for the clients' own addresses need root (CI runs as root).
    if !nix::unistd::Uid::effective().is_root() {
        avalon_testkit::skip(
            "root-netns",
            "the prod stack test makes network namespaces for its clients, which needs root",
        );
        return;
    }
    for tool in ["ip", "openssl", "python3", "testssl"] {
        if avalon_testkit::require_tool(tool).is_none() {
            return;
        }
    }
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let host = ProdHost::init(dir.path());
    let pid = std::process::id();
    let project = format!("avalon-test-prod-{pid}");
    let [http_port, https_port] = avalon_testkit::free_ports::<2>();

    let clients = ClientHosts::create(CLIENTS + 2).unwrap_or_else(|err| panic!("{err}"));
    let admin = clients.addresses[CLIENTS];
    let visitor = clients.addresses[CLIENTS + 1];
    let mut env: Vec<(String, String)> = images;
    env.extend(host.env());
    env.push(("AVALON_ADMIN_ALLOWLIST".to_owned(), admin.to_string()));
    let stack = ProdStack {
        project: project.clone(),
        env,
    };
    run_ok(&mut stack.xtask(&[
        "up",
        "--env",
        "prod",
        "--project",
        &project,
        "--http-port",
        &http_port.to_string(),
        "--https-port",
        &https_port.to_string(),
        "--timeout",
        "300",
    ]));

    let ps: Value = serde_json::from_str(&run_ok(&mut stack.xtask(&[
        "ps",
        "--env",
        "prod",
        "--project",
        &project,
        "--json",
    ])))
    .unwrap();
    for service in ps.as_array().unwrap() {
        assert_eq!(service["health"], "healthy", "{service}");
    }

    // Plain HTTP: /health answers (container healthchecks, load balancers), everything else moves to HTTPS.
    let edge_http = format!("127.0.0.1:{http_port}").parse().unwrap();
    let (status, _) = avalon_testkit::http_get(edge_http, "/health").unwrap();
    assert_eq!(status, 200);
    let redirect = raw_http(edge_http, "/api/v1/users/me");
    assert!(
        redirect.starts_with("HTTP/1.1 301")
            && redirect.contains("Location: https://127.0.0.1/api/v1/users/me"),
        "{redirect}"
    );

    // The shipped TLS settings, judged by testssl.sh with the edge audit's rules.
    let audit = run(&mut stack.xtask(&[
        "nginx",
        "audit",
        "--url",
        &format!("https://127.0.0.1:{https_port}/"),
        "--json",
    ]));
    let audit_text = String::from_utf8_lossy(&audit.stdout);
    let report: Value = serde_json::from_str(
        audit_text
            .split_once("\nnginx audit:")
            .map_or(&*audit_text, |(json, _)| json),
    )
    .unwrap_or_else(|err| panic!("audit JSON: {err}: {audit_text}"));
    avalon_testkit::figures::figure(
        "prod stack TLS",
        &format!(
            "{} findings read by testssl.sh, failures: {}",
            report["testssl_findings"], report["testssl_failures"]
        ),
    );
    assert!(audit.status.success(), "{audit_text}");
    assert!(
        report["testssl_findings"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert_eq!(
        report["testssl_failures"],
        serde_json::json!([]),
        "{report}"
    );

    // 200 clients from their own addresses: only the API's per-IP budget (RATE_LIMIT_IP per minute) can
    // answer them 429 — each paces itself below the edge's own per-address rate.
    let budget: usize = avalon_runtime::config::spec::RATE_LIMIT_IP
        .default
        .and_then(|text| text.parse().ok())
        .unwrap();
    let plan: Vec<Value> = clients.addresses[..CLIENTS]
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let requests = if i < OVER_LIMIT_CLIENTS {
                budget + EXCESS
            } else {
                WITHIN_LIMIT
            };
            serde_json::json!({ "source": source.to_string(), "requests": requests })
        })
        .collect();
    let run_report = edge_clients(&clients, https_port, "/api/v1/users/me", &plan);
    let results = run_report["clients"].as_object().unwrap();
    let mut limited = Vec::new();
    let mut wrongly_limited = Vec::new();
    for (i, entry) in plan.iter().enumerate() {
        let source = entry["source"].as_str().unwrap();
        let result = &results[source];
        assert_eq!(
            result["errors"],
            serde_json::json!([]),
            "{source}: {result}"
        );
        let count = |status: &str| result["statuses"][status].as_u64().unwrap_or(0) as usize;
        if i < OVER_LIMIT_CLIENTS {
            assert_eq!(count("429"), EXCESS, "{source} (over the budget): {result}");
            assert_eq!(count("401"), budget, "{source}: {result}");
            assert_eq!(
                result["codes_429"],
                serde_json::json!({ "RATE_LIMITED": EXCESS }),
                "{source}"
            );
            limited.push(source);
        } else {
            if count("429") > 0 {
                wrongly_limited.push(source);
            }
            assert_eq!(count("401"), WITHIN_LIMIT, "{source}: {result}");
        }
    }
    avalon_testkit::figures::figure(
        "prod stack rate limit",
        &format!(
            "clients limited {} / clients that should have been {OVER_LIMIT_CLIENTS} \
             (others limited: {}; {CLIENTS} clients from their own addresses, {} s)",
            limited.len(),
            wrongly_limited.len(),
            run_report["seconds"]
        ),
    );
    assert!(wrongly_limited.is_empty(), "{wrongly_limited:?}");

    // Maintenance: the allow-listed admin address is served (edge and API), everyone else gets 503.
    run_ok(&mut stack.xtask(&[
        "maintenance",
        "on",
        "--env",
        "prod",
        "--project",
        &project,
        "--retry-after",
        "30",
    ]));
    let plan = vec![
        serde_json::json!({ "source": admin.to_string(), "requests": 1 }),
        serde_json::json!({ "source": visitor.to_string(), "requests": 1 }),
    ];
    let during = edge_clients(&clients, https_port, "/api/v1/users/me", &plan);
    run_ok(&mut stack.xtask(&["maintenance", "off", "--env", "prod", "--project", &project]));
    let seen =
        |source: std::net::Ipv4Addr| during["clients"][source.to_string()]["statuses"].clone();
    avalon_testkit::figures::figure(
        "prod stack maintenance",
        &format!(
            "admin {admin} -> {}, visitor {visitor} -> {}",
            seen(admin),
            seen(visitor)
        ),
    );
    assert_eq!(seen(admin), serde_json::json!({ "401": 1 }), "{during}");
    assert_eq!(seen(visitor), serde_json::json!({ "503": 1 }), "{during}");
    drop(stack);
    drop(clients);
}

/// This checkout's api/ws images and what the host supplies for the edge and the stores.
fn images() -> Vec<(String, String)> {
    let built: Value =
        serde_json::from_str(&run_ok(xtask().args(["image", "build", "--json"]))).unwrap();
    let tag_of = |repository: &str| -> String {
        built["images"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|image| image["tags"].as_array().unwrap().iter())
            .filter_map(Value::as_str)
            // The tag naming this revision (`<version>-<revision>`), not the moving `<version>`.
            .filter(|tag| tag.starts_with(&format!("{repository}:")))
            .max_by_key(|tag| tag.len())
            .unwrap_or_else(|| panic!("no {repository} tag in {built}"))
            .to_owned()
    };
    let mut images = vec![
        ("AVALON_API_IMAGE".to_owned(), tag_of("avalon-api")),
        ("AVALON_WS_IMAGE".to_owned(), tag_of("avalon-ws")),
    ];
    images.extend(prod::store_and_edge_images());
    images
}

/// Runs stack_support/edge_clients.py inside the clients' namespace.
fn edge_clients(clients: &ClientHosts, https_port: u16, path: &str, plan: &[Value]) -> Value {
    let script = workspace_root().join("xtask/tests/stack_support/edge_clients.py");
    let output = run(clients
        .command("python3")
        .arg(script)
        .arg(clients.gateway.to_string())
        .arg(https_port.to_string())
        .arg(path)
        .arg(Value::from(plan.to_vec()).to_string()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "edge_clients.py failed: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

/// One plain HTTP/1.1 request; the raw head and body (for a redirect, which the test kit's client follows
/// no further than its status line).
fn raw_http(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}
