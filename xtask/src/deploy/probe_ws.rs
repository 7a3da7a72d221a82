//! One Socket.IO session of the deploy probe, opened the way a player's client opens one: the Engine.IO v4
//! WebSocket upgrade through the edge (pinned to a slot by the override cookie), the CONNECT carrying the
//! sign-in token, a `sync` and its acknowledgement, then DISCONNECT and the WebSocket closing handshake.
//! Blocking tungstenite on a std `TcpStream`: the probe runs in plain threads, like its HTTP half.
//!
//! The wire format is docs/protocol.md's: Engine.IO packet type first (`0` open, `2` ping, `3` pong, `4`
//! message), then for messages the Socket.IO type (`0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4`
//! CONNECT_ERROR) and, for events and acks, the acknowledgement id before the JSON array.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, HandshakeError, Message, WebSocket};

/// Each read waits at most this long; a session that stalls longer counts as failed at that step.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The acknowledgement id of the probe's `sync`.
const SYNC_ACK: u64 = 1;

/// Where and as whom a session is opened.
pub struct SessionTarget {
    /// `host:port` of the edge.
    pub authority: String,
    /// The `Cookie` header pinning the slot (the override cookie) and naming the probe user.
    pub cookie: String,
    /// An access token the game server accepts (see `probe_token`).
    pub token: String,
}

/// How one session went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every step passed; `connect` is the time from opening the TCP connection to the server's
    /// `session` event after the CONNECT acknowledgement (what a player waits before the game answers).
    Passed {
        connect: Duration,
    },
    Failed(Failure),
}

/// The step a session failed at, and a short reason (a refusal code, an HTTP status, an error kind):
/// the judgment counts failures by `kind()`, so reasons stay few and stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub step: &'static str,
    pub reason: String,
}

impl Failure {
    fn at(step: &'static str, reason: impl Into<String>) -> Self {
        Self {
            step,
            reason: reason.into(),
        }
    }

    pub fn kind(&self) -> String {
        format!("{}: {}", self.step, self.reason)
    }
}

/// One Engine.IO/Socket.IO packet as the probe reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// Engine.IO open (`0{sid,…}`).
    Open,
    /// Engine.IO ping; answered with a pong.
    Ping,
    /// Socket.IO CONNECT acknowledged (`40{sid}`).
    Connected,
    /// Socket.IO CONNECT_ERROR (`44{message}`); avalon-ws puts `{code, message}` as JSON text in `message`.
    ConnectError {
        code: String,
    },
    /// Socket.IO EVENT from the server (`42["name",…]`).
    Event {
        name: String,
    },
    /// Socket.IO ACK (`43<id>[payload]`).
    Ack {
        id: u64,
        payload: Value,
    },
    /// Socket.IO DISCONNECT or Engine.IO close: the server ended the session.
    Closed,
    Other,
}

/// Reads one text frame.
pub fn classify(text: &str) -> Packet {
    let mut chars = text.chars();
    match chars.next() {
        Some('0') => return Packet::Open,
        Some('1') => return Packet::Closed,
        Some('2') => return Packet::Ping,
        Some('4') => {}
        _ => return Packet::Other,
    }
    let body = &text[1..];
    let Some(kind) = body.chars().next() else {
        return Packet::Other;
    };
    let rest = &body[kind.len_utf8()..];
    match kind {
        '0' => Packet::Connected,
        '1' => Packet::Closed,
        '2' => {
            let array = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let name = serde_json::from_str::<Vec<Value>>(array)
                .ok()
                .and_then(|items| items.first().and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            Packet::Event { name }
        }
        '3' => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let Ok(id) = digits.parse() else {
                return Packet::Other;
            };
            let payload = serde_json::from_str::<Vec<Value>>(&rest[digits.len()..])
                .ok()
                .and_then(|mut items| (!items.is_empty()).then(|| items.swap_remove(0)))
                .unwrap_or(Value::Null);
            Packet::Ack { id, payload }
        }
        '4' => Packet::ConnectError {
            code: connect_error_code(rest),
        },
        _ => Packet::Other,
    }
}

/// The refusal code of a CONNECT_ERROR body `{"message": "{\"code\":…}"}`; `UNKNOWN` from a server that
/// does not speak docs/protocol.md's convention.
fn connect_error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|error| {
            let message = error.get("message")?.as_str()?.to_owned();
            let inner: Value = serde_json::from_str(&message).ok()?;
            inner.get("code")?.as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}

/// The code of a refused `sync` acknowledgement (`{ok: false, error: {code}}`), or None when it passed.
fn refused_ack(payload: &Value) -> Option<String> {
    if payload.get("ok").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    Some(
        payload
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("UNREADABLE")
            .to_owned(),
    )
}

/// Opens, uses and closes one session; never panics, never waits much longer than the read timeouts.
pub fn session(target: &SessionTarget) -> Outcome {
    let started = Instant::now();
    match run(target, started) {
        Ok(connect) => Outcome::Passed { connect },
        Err(failure) => Outcome::Failed(failure),
    }
}

fn run(target: &SessionTarget, started: Instant) -> Result<Duration, Failure> {
    let mut socket = upgrade(target)?;
    match next_packet(&mut socket, "open")? {
        Packet::Open => {}
        other => return Err(Failure::at("open", format!("unexpected {other:?}"))),
    }
    let connect = serde_json::json!({ "token": target.token });
    send(&mut socket, "connect", format!("40{connect}"))?;
    // Connected once the server's `session` event arrives (docs/protocol.md): it follows the CONNECT
    // acknowledgement once the player's room is resumed, and releases before the handler registration
    // fix dropped events sent between the two.
    let connected = loop {
        match next_packet(&mut socket, "connect")? {
            Packet::Event { name } if name == "session" => break started.elapsed(),
            Packet::ConnectError { code } => {
                return Err(Failure::at("connect", format!("refused {code}")));
            }
            Packet::Closed => return Err(Failure::at("connect", "closed by the server")),
            _ => {}
        }
    };
    send(&mut socket, "sync", format!("42{SYNC_ACK}[\"sync\"]"))?;
    loop {
        match next_packet(&mut socket, "sync")? {
            Packet::Ack { id, payload } if id == SYNC_ACK => match refused_ack(&payload) {
                None => break,
                Some(code) => return Err(Failure::at("sync", format!("answered {code}"))),
            },
            Packet::Closed => return Err(Failure::at("sync", "closed by the server")),
            _ => {}
        }
    }
    close(&mut socket)?;
    Ok(connected)
}

fn upgrade(target: &SessionTarget) -> Result<WebSocket<TcpStream>, Failure> {
    let fail = |reason: String| Failure::at("upgrade", reason);
    let addr = target
        .authority
        .to_socket_addrs()
        .map_err(|err| fail(format!("cannot resolve: {}", err.kind())))?
        .next()
        .ok_or_else(|| fail("cannot resolve".to_owned()))?;
    let stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|err| fail(io_reason(&err)))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(READ_TIMEOUT)))
        .map_err(|err| fail(io_reason(&err)))?;
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        target.authority
    );
    let mut request = url
        .into_client_request()
        .map_err(|err| fail(format!("bad request: {err}")))?;
    let headers = request.headers_mut();
    headers.insert(
        "Cookie",
        HeaderValue::from_str(&target.cookie).map_err(|_| fail("bad cookie".to_owned()))?,
    );
    headers.insert(
        "User-Agent",
        HeaderValue::from_static("avalon-deploy-probe"),
    );
    match tungstenite::client(request, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(fail(format!("HTTP {}", response.status().as_u16())))
        }
        Err(HandshakeError::Failure(err)) => Err(fail(ws_reason(&err))),
        Err(HandshakeError::Interrupted(_)) => Err(fail("interrupted".to_owned())),
    }
}

/// The next packet, answering pings on the way (a session outliving the ping interval stays alive).
fn next_packet(socket: &mut WebSocket<TcpStream>, step: &'static str) -> Result<Packet, Failure> {
    loop {
        let message = socket
            .read()
            .map_err(|err| Failure::at(step, ws_reason(&err)))?;
        let Message::Text(text) = message else {
            if message.is_close() {
                return Ok(Packet::Closed);
            }
            continue;
        };
        match classify(text.as_str()) {
            Packet::Ping => send(socket, step, "3".to_owned())?,
            packet => return Ok(packet),
        }
    }
}

fn send(
    socket: &mut WebSocket<TcpStream>,
    step: &'static str,
    text: String,
) -> Result<(), Failure> {
    socket
        .send(Message::text(text))
        .map_err(|err| Failure::at(step, ws_reason(&err)))
}

/// Socket.IO DISCONNECT, then the WebSocket closing handshake, waited for: a server that cannot end a
/// session leaves its players' clients hanging. Either side may start the closing handshake
/// (socketioxide may end the connection itself on DISCONNECT), and a connection the server ends once
/// asked to is closed as well; only no end within the read timeout, or a protocol error, fails.
fn close(socket: &mut WebSocket<TcpStream>) -> Result<(), Failure> {
    send(socket, "close", "41".to_owned())?;
    match socket.close(None) {
        Ok(()) => {}
        Err(err) if ended(&err) => return Ok(()),
        Err(err) => return Err(Failure::at("close", ws_reason(&err))),
    }
    loop {
        match socket.read() {
            Ok(_) => {}
            Err(err) if ended(&err) => return Ok(()),
            Err(err) => return Err(Failure::at("close", ws_reason(&err))),
        }
    }
}

/// The connection is over: closing handshake done, or the server ended it after the DISCONNECT.
fn ended(err: &tungstenite::Error) -> bool {
    use std::io::ErrorKind;
    match err {
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => true,
        tungstenite::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::BrokenPipe
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

fn ws_reason(err: &tungstenite::Error) -> String {
    match err {
        tungstenite::Error::Io(io) => io_reason(io),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "connection closed".to_owned()
        }
        tungstenite::Error::Protocol(protocol) => format!("protocol: {protocol}"),
        other => other.to_string(),
    }
}

fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {}s", READ_TIMEOUT.as_secs())
        }
        kind => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn engine_io_and_socket_io_packets_are_told_apart() {
        assert_eq!(
            classify(r#"0{"sid":"a","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#),
            Packet::Open
        );
        assert_eq!(classify("2"), Packet::Ping);
        assert_eq!(classify(r#"40{"sid":"x"}"#), Packet::Connected);
        assert_eq!(
            classify(r#"42["session",{"user_id":"u"}]"#),
            Packet::Event {
                name: "session".to_owned()
            }
        );
        assert_eq!(
            classify(r#"431[{"ok":true,"data":{"room":null}}]"#),
            Packet::Ack {
                id: 1,
                payload: serde_json::json!({"ok": true, "data": {"room": null}})
            }
        );
        assert_eq!(classify("41"), Packet::Closed);
        assert_eq!(classify("1"), Packet::Closed);
        assert_eq!(classify("6"), Packet::Other);
        assert_eq!(classify(""), Packet::Other);
    }

    #[test]
    fn a_refusal_names_the_code_avalon_ws_put_in_the_message() {
        let refusal = r#"44{"message":"{\"code\":\"FAULT_INJECTED\",\"message\":\"on purpose\"}"}"#;
        assert_eq!(
            classify(refusal),
            Packet::ConnectError {
                code: "FAULT_INJECTED".to_owned()
            }
        );
        assert_eq!(
            classify(r#"44{"message":"plain text"}"#),
            Packet::ConnectError {
                code: "UNKNOWN".to_owned()
            }
        );
    }

    #[test]
    fn a_refused_acknowledgement_gives_its_code() {
        assert_eq!(
            refused_ack(&serde_json::json!({"ok": true, "data": {}})),
            None
        );
        assert_eq!(
            refused_ack(&serde_json::json!({"ok": false, "error": {"code": "UNAVAILABLE"}})),
            Some("UNAVAILABLE".to_owned())
        );
        assert_eq!(refused_ack(&Value::Null), Some("UNREADABLE".to_owned()));
    }

    /// avalon-ws built from this checkout (embedded store, no edge in front), listening on a free port.
    fn game_server(
        secret: &str,
        extra: &[(&str, &str)],
    ) -> (avalon_testkit::Process, u16, tempfile::TempDir) {
        let port = avalon_testkit::free_port();
        let data = tempfile::tempdir().unwrap();
        let (port_text, api_port) = (port.to_string(), avalon_testkit::free_port().to_string());
        let mut env = vec![
            ("APP_ENV", "development"),
            ("CONFIG_DIR", "/nonexistent/avalon-config"),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("WS_PORT", port_text.as_str()),
            ("PORT", api_port.as_str()),
            ("JWT_SECRET", secret),
            ("DATA_DIR", data.path().to_str().unwrap()),
            ("LOG_LEVEL", "warn"),
        ];
        env.extend_from_slice(extra);
        let process = avalon_testkit::Process::spawn(
            "avalon-ws",
            avalon_testkit::service_binary("avalon-ws"),
            &[],
            &env,
        );
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            avalon_testkit::wait_until(Duration::from_secs(30), || {
                avalon_testkit::http_get(addr, "/readyz").is_ok_and(|(status, _)| status == 200)
            }),
            "avalon-ws never became ready"
        );
        (process, port, data)
    }

    fn metrics(port: u16) -> super::super::game_metrics::Counters {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        super::super::game_metrics::parse_counters(
            &avalon_testkit::http_get(addr, "/metrics").unwrap().1,
        )
    }

    #[test]
    fn sessions_against_a_real_game_server_pass_or_name_the_refusal() {
        use avalon_runtime::config::Secret;

        use super::super::probe_token::token;
        use super::super::slots::Slot;

        let secret = "probe-test-secret-0123456789abcdefghijklmn";
        let good = token(&Secret::new(secret), Slot::Green, Duration::from_secs(30)).unwrap();
        let forged = token(
            &Secret::new("another-secret-0123456789abcdefghijklmnop"),
            Slot::Green,
            Duration::from_secs(30),
        )
        .unwrap();
        let at = |port: u16, token: &str| SessionTarget {
            authority: format!("127.0.0.1:{port}"),
            cookie: "avalon_canary=green; avalon_uid=probe-green".to_owned(),
            token: token.to_owned(),
        };

        let (server, port, _data) = game_server(secret, &[]);
        for _ in 0..3 {
            let outcome = session(&at(port, &good));
            assert!(matches!(outcome, Outcome::Passed { .. }), "{outcome:?}");
        }
        assert_eq!(
            session(&at(port, &forged)),
            Outcome::Failed(Failure::at("connect", "refused TOKEN_INVALID"))
        );
        let counters = metrics(port);
        assert_eq!(counters.accepted, Some(3), "{counters:?}");
        assert_eq!(counters.refused.get("TOKEN_INVALID"), Some(&1));
        assert_eq!(
            (counters.events, counters.event_errors),
            (3, 0),
            "one sync a session"
        );
        drop(server);

        let (faulty, port, _faulty_data) =
            game_server(secret, &[("FAULT_INJECT_WS_REFUSE_RATE", "1")]);
        assert_eq!(
            session(&at(port, &good)),
            Outcome::Failed(Failure::at("connect", "refused FAULT_INJECTED"))
        );
        assert_eq!(metrics(port).refused.get("FAULT_INJECTED"), Some(&1));
        drop(faulty);
    }

    #[test]
    fn nothing_listening_fails_at_the_upgrade() {
        let port = avalon_testkit::free_port();
        let outcome = session(&SessionTarget {
            authority: format!("127.0.0.1:{port}"),
            cookie: "avalon_canary=green".to_owned(),
            token: "t".to_owned(),
        });
        let Outcome::Failed(failure) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(failure.step, "upgrade", "{failure:?}");
    }
}
