//! A minimal HTTP/1.1 GET over a fresh TCP connection, enough to verify a reload without an HTTP client
//! crate. A fresh connection matters: a kept-alive one could be answered by a worker of the old config.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

/// `GET base_url + path`; `base_url` is `http://host:port` (plain HTTP only). Returns the status and the
/// whole response (headers and body).
pub fn get(base_url: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let Some(authority) = base_url.strip_prefix("http://") else {
        bail!("verify URL must start with http://, got {base_url:?}");
    };
    let authority = authority.trim_end_matches('/');
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: cargo-xtask-nginx\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response from {authority}: {response:?}"))?;
    Ok((status, response.into_owned()))
}
