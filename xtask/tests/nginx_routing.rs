//! The edge's routing, headers, WebSocket upgrade and rate limits, through a real nginx to real replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nginx_support;

use std::time::Duration;

use nginx_support::*;
use serde_json::json;

#[test]
fn render_then_nginx_t_passes_for_the_default_and_example_models() {
    if avalon_testkit::require_tool("nginx").is_none() {
        return;
    }
    let (ok, stdout, stderr) = run_xtask(&["nginx", "check", "--json"]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["ok"],
        true
    );

    // A rendered tree with loopback upstreams passes `nginx -t -p DIR/ -c nginx.conf` as is.
    let state = tempfile::tempdir().unwrap();
    let model = base_model(
        state.path(),
        8080,
        single_slot(&["127.0.0.1:3000".into()], &["127.0.0.1:3001".into()]),
    );
    let model_file = state.path().join("model.json");
    std::fs::write(&model_file, model.to_string()).unwrap();
    let out = state.path().join("tree");
    let (ok, _, stderr) = run_xtask(&[
        "nginx",
        "render",
        "--model",
        model_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let status = std::process::Command::new("nginx")
        .args([
            "-t",
            "-p",
            &format!("{}/", out.display()),
            "-c",
            "nginx.conf",
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn an_invalid_model_is_rejected_naming_the_field() {
    let state = tempfile::tempdir().unwrap();
    let model_file = state.path().join("model.json");
    std::fs::write(
        &model_file,
        json!({ "slots": [{ "name": "blue", "api": ["api"], "websocket": ["ws:1"], "weight": 90 }] }).to_string(),
    )
    .unwrap();
    let (ok, _, stderr) = run_xtask(&[
        "nginx",
        "render",
        "--model",
        model_file.to_str().unwrap(),
        "--out",
        state.path().join("t").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("slots[0].api[0]: must be host:port"),
        "{stderr}"
    );
    assert!(
        stderr.contains("weights must add up to 100, got 90"),
        "{stderr}"
    );
}

#[test]
fn api_health_and_websocket_routes_reach_their_upstreams_with_headers_on_every_response() {
    let api = start_api("api");
    let ws = EchoUpstream::start();
    let api_addr = api.addr.clone();
    let ws_addr = ws.addr.clone();
    let Some(edge) = Edge::start(|state, port| {
        let mut model = base_model(state, port, single_slot(&[api_addr], &[ws_addr]));
        // Loopback counts as "outside" here, to see /metrics refused.
        model["internal"] = json!(["10.255.255.0/24"]);
        model
    }) else {
        return;
    };

    // /api/ goes to the API (its own JSON 404 for an unknown route), with a generated request id.
    let response = edge.get("/api/v1/no-such-thing");
    assert_eq!(response.status, 404, "{response:?}");
    assert_eq!(response.json()["error"]["message"], "no such API route");
    assert_security_headers(&response, "/api/");
    let generated = response.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 32, "nginx's $request_id: {generated}");

    // A client's well-formed request id is forwarded and echoed; a malformed one is replaced.
    let response = request(
        edge.addr,
        "GET",
        "/api/v1/x",
        &[("X-Request-ID", "trace-abc-12345")],
    );
    assert_eq!(response.header("x-request-id"), Some("trace-abc-12345"));
    let response = request(
        edge.addr,
        "GET",
        "/api/v1/x",
        &[("X-Request-ID", "bad id\twith spaces")],
    );
    assert_ne!(response.header("x-request-id"), Some("bad id\twith spaces"));

    // /health passes through and is never cached.
    let health = edge.get("/health");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json()["service"], "api");
    assert_security_headers(&health, "/health");

    // Probes, debug routes and /metrics are not public; unknown paths get the edge's JSON 404.
    for path in [
        "/livez",
        "/readyz",
        "/debug/sleep?ms=1",
        "/metrics",
        "/",
        "/anything",
    ] {
        let response = edge.get(path);
        assert_eq!(response.status, 404, "{path}: {response:?}");
        assert_eq!(response.json()["error"]["code"], "NOT_FOUND", "{path}");
        assert_security_headers(&response, path);
    }

    // WebSocket upgrade through /socket.io/: 101, then bytes flow both ways.
    let mut tunnel = open_upgrade(
        edge.addr,
        "/socket.io/?EIO=4&transport=websocket",
        &[("X-Forwarded-For", "6.6.6.6")],
    );
    assert_eq!(tunnel.response.status, 101, "{:?}", tunnel.response);
    assert_eq!(
        tunnel.echo(b"hello through nginx").unwrap(),
        b"hello through nginx"
    );
    let head = ws
        .heads
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(
        head.contains("x-forwarded-for: 127.0.0.1\r\n"),
        "a client's X-Forwarded-For is not trusted: {head}"
    );
    assert!(head.contains("x-real-ip: 127.0.0.1"), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");

    // Polling requests (no upgrade) go to the same upstream without a Connection: upgrade.
    let polling = edge.get("/socket.io/?EIO=4&transport=polling");
    assert_eq!(polling.status, 200, "{polling:?}");
    let head = ws
        .heads
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap()
        .to_ascii_lowercase();
    assert!(!head.contains("connection: upgrade"), "{head}");

    // The JSON access log records upstream, slot, status, timings and the request id.
    let log = edge.access_log();
    let api_line = log
        .iter()
        .find(|line| line["request_id"] == "trace-abc-12345")
        .expect("logged");
    assert_eq!(api_line["slot"], "blue");
    assert_eq!(api_line["status"], 404);
    assert_eq!(api_line["upstream_addr"], api.addr.as_str());
    assert!(api_line["request_time"].is_number());
    assert!(
        api_line["upstream_response_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    println!("routing: {} access log lines checked", log.len());
}

#[test]
fn a_dead_slot_answers_502_json_with_security_headers() {
    let Some(edge) = edge_with_a_dead_slot() else {
        return;
    };
    let response = edge.get("/api/v1/anything");
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(response.json()["error"]["code"], "UPSTREAM_UNAVAILABLE");
    assert_security_headers(&response, "502");
}

#[test]
fn requests_past_the_rate_limit_get_429_with_retry_after_and_websockets_are_capped_per_ip() {
    let api = start_api("api");
    let ws = EchoUpstream::start();
    let (api_addr, ws_addr) = (api.addr.clone(), ws.addr.clone());
    let Some(edge) = Edge::start(|state, port| {
        let mut model = base_model(state, port, single_slot(&[api_addr], &[ws_addr]));
        model["rate_limits"] = json!({ "api_per_second": 5, "api_burst": 10, "api_retry_after": 2, "ws_connections_per_ip": 2 });
        model
    }) else {
        return;
    };

    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    let mut limited = None;
    for _ in 0..40 {
        let response = edge.get("/api/v1/x");
        *counts.entry(response.status).or_default() += 1;
        if response.status == 429 {
            limited = Some(response);
        }
    }
    println!("rate limit: 40 requests at once -> {counts:?}");
    let limited = limited.expect("some requests were limited");
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(limited.json()["error"]["code"], "RATE_LIMITED");
    assert_security_headers(&limited, "429");
    let passed = counts.get(&404).copied().unwrap_or(0);
    assert!(
        (11..=14).contains(&passed),
        "burst 10 + the first + ~5/s over the loop: {counts:?}"
    );
    // /health is not rate limited.
    assert_eq!(edge.get("/health").status, 200);

    let first = open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[]);
    let second = open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[]);
    let third = open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[]);
    println!(
        "websocket cap 2: statuses {} {} {}",
        first.response.status, second.response.status, third.response.status
    );
    assert_eq!((first.response.status, second.response.status), (101, 101));
    assert_eq!(third.response.status, 429, "{:?}", third.response);
    drop((first, second));
    assert!(avalon_testkit::wait_until(Duration::from_secs(5), || {
        open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[])
            .response
            .status
            == 101
    }));
}

#[test]
fn a_socket_io_client_reaches_the_game_server_through_nginx() {
    let api = start_api("api");
    let game = start_ws("avalon-ws");
    let (api_addr, ws_addr) = (api.addr.clone(), game.addr.clone());
    let Some(edge) =
        Edge::start(|state, port| base_model(state, port, single_slot(&[api_addr], &[ws_addr])))
    else {
        return;
    };

    // Engine.IO polling handshake: the open packet with a session id.
    let polling = edge.get("/socket.io/?EIO=4&transport=polling");
    assert_eq!(polling.status, 200, "{polling:?}");
    assert!(polling.body.starts_with("0{\"sid\":"), "{}", polling.body);
    assert_security_headers(&polling, "socket.io polling");

    // WebSocket transport: 101, the open packet as a text frame, then a Socket.IO CONNECT answered by the
    // server (accepted or refused — without a token it is refused — either way the round trip works).
    let mut tunnel = open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[]);
    assert_eq!(tunnel.response.status, 101, "{:?}", tunnel.response);
    let (opcode, open) = tunnel.read_frame().unwrap();
    let open = String::from_utf8(open).unwrap();
    assert_eq!(opcode, 1);
    assert!(open.starts_with("0{\"sid\":"), "{open}");
    assert!(open.contains("\"pingInterval\""), "{open}");
    tunnel.send_text("40").unwrap();
    // Engine.IO pings ("2") may come first; answer them and wait for the Socket.IO reply.
    let mut reply = Vec::new();
    for _ in 0..5 {
        let (_, frame) = tunnel.read_frame().unwrap();
        if frame == b"2" {
            tunnel.send_text("3").unwrap();
            continue;
        }
        reply = frame;
        break;
    }
    let reply = String::from_utf8(reply).unwrap();
    println!("socket.io through nginx: open {open} / connect reply {reply}");
    assert!(
        reply.starts_with("40") || reply.starts_with("44"),
        "{reply}"
    );
    // A WebSocket is logged when it closes.
    drop(tunnel);
    assert!(avalon_testkit::wait_until(Duration::from_secs(5), || {
        edge.access_log().iter().any(|line| {
            line["upgrade"] == "websocket"
                && line["status"] == 101
                && line["upstream_addr"] == game.addr.as_str()
        })
    }));
}

/// Every answer nginx gives by itself is the API's error shape `{"error":{"code","message","request_id"}}`,
/// carrying the request id the edge passes upstream, so clients need one error parser.
#[test]
fn the_edge_own_errors_are_the_api_json_shape_with_the_request_id() {
    let Some(edge) = edge_with_a_dead_slot() else {
        return;
    };
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: [Case; 4] = [
        (
            "GET",
            "/api/v1/anything",
            vec![],
            502,
            "UPSTREAM_UNAVAILABLE",
        ),
        ("GET", "/nothing-here", vec![], 404, "NOT_FOUND"),
        ("GET", "/.avalon/elsewhere", vec![], 404, "NOT_FOUND"),
        // One byte over the API's default API_BODY_LIMIT (65536): refused before it is read.
        (
            "POST",
            "/api/v1/auth/wechat",
            vec![
                ("Content-Type", "application/json"),
                ("Content-Length", "65537"),
            ],
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (index, (method, path, mut headers, status, code)) in cases.into_iter().enumerate() {
        let id = format!("edge-error-case-{index:04}");
        headers.push(("X-Request-ID", id.as_str()));
        let response = request(edge.addr, method, path, &headers);
        assert_eq!(response.status, status, "{method} {path}: {response:?}");
        assert_eq!(
            response.header("content-type"),
            Some("application/json; charset=utf-8"),
            "{path}"
        );
        let body = response.json();
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert_eq!(body["error"]["request_id"], id.as_str(), "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
        assert_security_headers(&response, path);
    }
}

/// An edge whose only slot points at a port nobody listens on.
fn edge_with_a_dead_slot() -> Option<Edge> {
    let port = avalon_testkit::free_port();
    Edge::start(|state, http| {
        base_model(
            state,
            http,
            single_slot(
                &[format!("127.0.0.1:{port}")],
                &[format!("127.0.0.1:{port}")],
            ),
        )
    })
}
