//! Copies each request's head into allocations of its own before the Socket.IO layer sees it.
//!
//! engineioxide keeps a session's request head (`http::request::Parts`) for the socket's whole life, and
//! hyper parses header values and the URI as slices of the connection's read buffer (8–16 KiB). So a few
//! hundred bytes of headers kept that whole buffer alive for every idle connection: 16 KiB of the 28.7 KiB
//! each one cost (measured with heaptrack at 10,000 connections; docs/protocol.md §9). The copies keep the
//! same names, values (sensitivity included), URI and extensions, so nothing downstream sees a difference.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};

pub async fn detach(request: Request) -> Request {
    let (mut parts, body) = request.into_parts();
    parts.headers = copied_headers(&parts.headers);
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// A header map that shares no bytes with `headers`, sized for what it holds.
fn copied_headers(headers: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
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
    async fn the_copy_keeps_every_header_value_and_the_uri() {
        let request = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("upgrade", "websocket")
            .header("x-forwarded-for", "203.0.113.7")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(Body::empty())
            .unwrap();
        let copied = detach(request).await;
        assert_eq!(copied.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(copied.headers()["upgrade"], "websocket");
        assert_eq!(copied.headers()["x-forwarded-for"], "203.0.113.7");
        let cookies: Vec<_> = copied.headers().get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }
}
