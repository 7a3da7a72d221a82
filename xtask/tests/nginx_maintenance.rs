//! Maintenance mode: outsiders get 503 + Retry-After + a page, /health and the allow-list keep working,
//! and flipping the flag with a reload leaves open WebSockets alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nginx_support;

use nginx_support::*;
use serde_json::json;

#[test]
fn maintenance_on_and_off_keeps_an_open_websocket_and_health() {
    let api = start_api("api");
    let ws = EchoUpstream::start();
    let (api_addr, ws_addr) = (api.addr.clone(), ws.addr.clone());
    let make = move |state: &std::path::Path, port: u16, enabled: bool, allow: &[&str]| {
        let mut model = base_model(
            state,
            port,
            single_slot(
                std::slice::from_ref(&api_addr),
                std::slice::from_ref(&ws_addr),
            ),
        );
        model["maintenance"] = json!({
            "enabled": enabled,
            "message": "Upgrading <Avalon> & friends",
            "retry_after": 120,
            "allow": allow,
        });
        model
    };
    let first = make.clone();
    let Some(edge) = Edge::start(|state, port| first(state, port, false, &["10.255.255.0/24"]))
    else {
        return;
    };
    let (state, port) = (edge.state.path().to_path_buf(), edge.addr.port());

    let mut tunnel = open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[]);
    assert_eq!(tunnel.response.status, 101);
    assert_eq!(tunnel.echo(b"before").unwrap(), b"before");

    // On: loopback is outside the allow-list here, so this client sees maintenance.
    let (ok, output) = edge.apply(&make(&state, port, true, &["10.255.255.0/24"]));
    assert!(ok, "{output}");
    let api_response = edge.get("/api/v1/nginx-edge-probe");
    assert_eq!(api_response.status, 503, "{api_response:?}");
    assert_eq!(api_response.header("retry-after"), Some("120"));
    assert_eq!(
        api_response.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(api_response.json()["error"]["code"], "MAINTENANCE");
    assert_eq!(
        api_response.json()["error"]["message"],
        "Upgrading <Avalon> & friends"
    );
    assert_security_headers(&api_response, "maintenance JSON");

    let page = edge.get("/");
    assert_eq!(page.status, 503);
    assert_eq!(page.header("retry-after"), Some("120"));
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.body.contains("Upgrading &lt;Avalon&gt; &amp; friends"),
        "{}",
        page.body
    );
    assert_security_headers(&page, "maintenance HTML");

    let new_socket = open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[]);
    assert_eq!(
        new_socket.response.status, 503,
        "new WebSockets wait for the end of maintenance"
    );
    assert_eq!(edge.get("/health").status, 200, "/health stays up");
    assert_eq!(
        tunnel.echo(b"during").unwrap(),
        b"during",
        "the open WebSocket survives the reload"
    );

    // The allow-list still gets through.
    let (ok, output) = edge.apply(&make(&state, port, true, &["127.0.0.1/32"]));
    assert!(ok, "{output}");
    assert_eq!(
        edge.get("/api/v1/nginx-edge-probe").status,
        404,
        "admins reach the API"
    );

    // Off again.
    let (ok, output) = edge.apply(&make(&state, port, false, &["10.255.255.0/24"]));
    assert!(ok, "{output}");
    assert_eq!(edge.get("/api/v1/nginx-edge-probe").status, 404);
    assert_eq!(
        open_upgrade(edge.addr, "/socket.io/?EIO=4&transport=websocket", &[])
            .response
            .status,
        101
    );
    assert_eq!(
        tunnel.echo(b"after").unwrap(),
        b"after",
        "the open WebSocket survived both flips"
    );
    println!(
        "maintenance: 3 reloads, the WebSocket opened before maintenance echoed before/during/after; upstream saw {} upgrades",
        ws.upgrades.load(std::sync::atomic::Ordering::Relaxed)
    );
}
