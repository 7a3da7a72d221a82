//! Who this process is, as the registry names it: service, host, address, port, slot, start time. Read
//! once at start-up; only the load figures and the state change afterwards.

use std::net::{IpAddr, Ipv4Addr};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::ServiceKind;

use super::record::{instance_id, service_name};

/// The environment variable the Compose slot overlay sets to the slot's name (`blue`, `green`).
pub const SLOT_VARIABLE: &str = "AVALON_SLOT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub service: &'static str,
    pub host: String,
    pub address: String,
    pub port: u16,
    pub slot: Option<String>,
    pub started_at: String,
}

impl Identity {
    /// This process: its hostname, the address it is reached at, `AVALON_SLOT` and the time now. The
    /// address is the listener's own when it binds one IPv4 address (127.0.0.1 in development), else the
    /// first non-loopback IPv4 address of the host (loopback when it has none).
    pub fn of_this_process(kind: ServiceKind, bind: IpAddr, port: u16) -> Identity {
        let ip = match bind {
            IpAddr::V4(ip) if !ip.is_unspecified() => ip,
            _ => first_non_loopback_ipv4().unwrap_or(Ipv4Addr::LOCALHOST),
        };
        Identity::new(
            kind,
            hostname(),
            ip,
            port,
            slot_from(std::env::var(SLOT_VARIABLE).ok()),
        )
    }

    pub fn new(
        kind: ServiceKind,
        host: String,
        ip: Ipv4Addr,
        port: u16,
        slot: Option<String>,
    ) -> Identity {
        let service = service_name(kind);
        Identity {
            id: instance_id(service, &host, port),
            service,
            address: format!("{ip}:{port}"),
            host,
            port,
            slot,
            started_at: now_rfc3339(),
        }
    }
}

/// An unset or blank `AVALON_SLOT` means no slot (the unslotted `api`/`websocket` services).
pub fn slot_from(value: Option<String>) -> Option<String> {
    value
        .map(|slot| slot.trim().to_owned())
        .filter(|slot| !slot.is_empty())
}

/// The current time as RFC 3339 in UTC, with milliseconds.
pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The first IPv4 address of an interface that is up and not loopback, in the kernel's interface order.
/// In a container on several networks this is the first network's address; xtask joins records with the
/// engine's own view of each network (`cargo xtask instances` shows the backend network's address).
fn first_non_loopback_ipv4() -> Option<Ipv4Addr> {
    let interfaces = nix::ifaddrs::getifaddrs().ok()?;
    interfaces
        .filter(|interface| {
            interface
                .flags
                .contains(nix::net::if_::InterfaceFlags::IFF_UP)
        })
        .filter_map(|interface| {
            let address = interface.address?;
            let ip = address.as_sockaddr_in()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
        .next()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_identity_names_itself_by_service_host_and_port() {
        let identity = Identity::new(
            ServiceKind::Ws,
            "3f2a1b9c0d12".to_owned(),
            Ipv4Addr::new(172, 18, 0, 5),
            3001,
            Some("green".to_owned()),
        );
        assert_eq!(identity.id, "websocket-3f2a1b9c0d12-3001");
        assert_eq!(identity.address, "172.18.0.5:3001");
        assert_eq!(identity.slot.as_deref(), Some("green"));
        OffsetDateTime::parse(&identity.started_at, &Rfc3339).unwrap();
    }

    #[test]
    fn a_blank_slot_is_no_slot() {
        assert_eq!(slot_from(None), None);
        assert_eq!(slot_from(Some(" ".to_owned())), None);
        assert_eq!(slot_from(Some("blue".to_owned())).as_deref(), Some("blue"));
    }

    #[test]
    fn this_process_has_an_address_and_a_host() {
        let loopback =
            Identity::of_this_process(ServiceKind::Api, Ipv4Addr::LOCALHOST.into(), 3000);
        assert_eq!(loopback.address, "127.0.0.1:3000");
        let identity =
            Identity::of_this_process(ServiceKind::Api, Ipv4Addr::UNSPECIFIED.into(), 3000);
        assert!(identity.address.ends_with(":3000"), "{identity:?}");
        assert!(!identity.host.is_empty());
        let ip: Ipv4Addr = identity.address.trim_end_matches(":3000").parse().unwrap();
        assert!(!ip.is_unspecified());
    }
}
