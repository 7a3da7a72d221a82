//! Copies each request's head into allocations of its own before the Socket.IO layer sees it, keeping only
//! the headers the transport reads.
//!
//! engineioxide keeps a session's request head (`http::request::Parts`) for the socket's whole life, and
//! hyper parses header values and the URI as slices of the connection's read buffer (8–16 KiB). So a few
//! hundred bytes of headers kept that whole buffer alive for every idle connection: 16 KiB of the 28.7 KiB
//! each one cost (measured with heaptrack at 10,000 connections; docs/protocol.md §9). The copies keep the
//! same values (sensitivity included) and URI.
//!
//! Only [`KEPT_HEADERS`] are copied: the transport reads `Sec-WebSocket-Key` (to answer the upgrade) and
//! `Content-Type` (of a polling POST); nothing in avalon-ws reads another request header after routing, and
//! behind nginx a request carries a dozen (forwarded-for, user agent, cookies, …) that would otherwise stay
//! in memory for every connection. A handler that needs another header adds it to the list. Of the
//! request's extensions only hyper's upgrade handle is kept (see [`kept_extensions`]).

use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Uri, header};
use hyper::upgrade::OnUpgrade;

pub async fn detach(request: Request) -> Request {
    let (mut parts, body) = request.into_parts();
    parts.headers = copied_headers(&parts.headers);
    parts.extensions = kept_extensions(&mut parts.extensions);
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// Only hyper's upgrade handle, which the transport takes to answer the WebSocket upgrade. The routing
/// layers' extensions (URL parameters, matched path, request id: ~0.4 KiB) would otherwise be kept with the
/// head for the socket's life, and nothing reads them after routing.
fn kept_extensions(extensions: &mut Extensions) -> Extensions {
    let mut kept = Extensions::new();
    if let Some(upgrade) = extensions.remove::<OnUpgrade>() {
        kept.insert(upgrade);
    }
    kept
}

/// The request headers the Engine.IO transport reads; the rest are dropped before it keeps the head.
pub const KEPT_HEADERS: [HeaderName; 2] = [header::SEC_WEBSOCKET_KEY, header::CONTENT_TYPE];

/// A header map of the [`KEPT_HEADERS`] in `headers` that shares no bytes with it, sized for what it holds.
fn copied_headers(headers: &HeaderMap) -> HeaderMap {
    let kept = || {
        headers
            .iter()
            .filter(|(name, _)| KEPT_HEADERS.contains(name))
    };
    let mut copy = HeaderMap::with_capacity(kept().count());
    for (name, value) in kept() {
        let (Ok(name), Ok(mut copied)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        copied.set_sensitive(value.is_sensitive());
        copy.append(name, copied);
    }
    copy
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;

    #[tokio::test]
    async fn the_copy_keeps_the_transport_headers_and_the_uri_and_drops_the_rest() {
        let request = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("upgrade", "websocket")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("content-type", "text/plain;charset=UTF-8")
            .header("x-forwarded-for", "203.0.113.7")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(Body::empty())
            .unwrap();
        let copied = detach(request).await;
        assert_eq!(copied.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(
            copied.headers()["sec-websocket-key"],
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert_eq!(copied.headers()["content-type"], "text/plain;charset=UTF-8");
        assert_eq!(copied.headers().len(), 2, "{:?}", copied.headers());
        assert!(copied.headers().get("cookie").is_none());
        assert!(copied.headers().get("x-forwarded-for").is_none());
    }
}
