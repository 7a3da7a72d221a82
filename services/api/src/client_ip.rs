//! The client's IP: the TCP peer, unless the peer is a trusted proxy, in which case the right-most address
//! in `X-Forwarded-For` that is not itself a trusted proxy (addresses further left are client-controlled).

use std::net::IpAddr;

use axum::http::HeaderMap;

use avalon_runtime::config::IpBlock;

pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpBlock]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|block| block.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // A malformed entry ends the chain we can trust.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [IpBlock::parse("10.0.0.0/8").unwrap()];
        let spoofed = headers("6.6.6.6");
        assert_eq!(
            resolve(ip("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(ip("10.1.2.3"), &headers("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // The client prepended a fake hop: the right-most untrusted address wins.
        let chain = headers("6.6.6.6, 198.51.100.7, 10.0.0.5");
        assert_eq!(
            resolve(ip("10.1.2.3"), &chain, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("10.1.2.3"), &HeaderMap::new(), &trusted),
            ip("10.1.2.3")
        );
        assert_eq!(
            resolve(ip("10.1.2.3"), &headers("garbage"), &trusted),
            ip("10.1.2.3")
        );
        assert_eq!(
            resolve(ip("::ffff:10.1.2.3"), &headers("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
    }
}
