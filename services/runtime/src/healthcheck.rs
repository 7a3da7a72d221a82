//! `<binary> healthcheck`: probes the process's own `/livez` over loopback and exits 0 or 1 within 2 s, so
//! images need neither a shell nor curl for their HEALTHCHECK.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::spec::{self, ServiceKind};
use crate::config::{Layers, Sources};

const BUDGET: Duration = Duration::from_secs(2);

/// Returns the process exit code.
pub fn run(service: ServiceKind) -> i32 {
    let target = target(service);
    match probe(target) {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!(
                "healthcheck {}: http://{target}/livez: {reason}",
                service.binary()
            );
            1
        }
    }
}

/// The address the service listens on, read from the same layers as the service (without full validation:
/// a process that is running had a valid configuration).
fn target(service: ServiceKind) -> SocketAddr {
    let layers: Option<Layers> = Some(Sources::from_process().layer());
    let read = |var: &spec::Var| {
        layers
            .as_ref()
            .and_then(|layers| layers.get(var))
            .map(|resolved| resolved.value)
            .or(var.default.map(str::to_owned))
    };
    let port_var = match service {
        ServiceKind::Api => &spec::PORT,
        ServiceKind::Ws => &spec::WS_PORT,
    };
    let port = read(port_var)
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    let bound: IpAddr = read(&spec::BIND_ADDRESS)
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let ip = if bound.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bound
    };
    SocketAddr::new(ip, port)
}

pub fn probe(target: SocketAddr) -> Result<(), String> {
    let started = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&target, BUDGET).map_err(|err| format!("connect: {err}"))?;
    let remaining = BUDGET
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(100));
    stream
        .set_read_timeout(Some(remaining))
        .map_err(|err| err.to_string())?;
    stream
        .set_write_timeout(Some(remaining))
        .map_err(|err| err.to_string())?;
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nUser-Agent: healthcheck\r\nConnection: close\r\n\r\n")
        .map_err(|err| format!("send: {err}"))?;
    let mut head = [0u8; 64];
    let read = stream
        .read(&mut head)
        .map_err(|err| format!("read: {err}"))?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("none");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
