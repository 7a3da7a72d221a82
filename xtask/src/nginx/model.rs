//! The edge model: everything the rendered nginx tree depends on, as one small JSON document.
//!
//! Every field has a default, so `{}` is the compose stack's model (one `blue` slot, `api:3000` and
//! `websocket:3001`, plain HTTP on port 80). Unknown fields are rejected so a typo cannot silently fall back
//! to a default. [`EdgeModel::validate`] reports every problem at once, naming the field and the rule; the
//! values that reach nginx syntax (names, paths, addresses) are restricted to characters that cannot break
//! out of a directive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeModel {
    /// `server_name` of the public server(s); `_` matches any host.
    pub server_name: String,
    pub listen: Listen,
    /// Deployment slots in routing order. Their weights add up to 100.
    pub slots: Vec<Slot>,
    pub canary: Canary,
    pub maintenance: Maintenance,
    /// Absent: one plain-HTTP listener serves the application (tests, offline stacks).
    pub tls: Option<Tls>,
    /// Networks that may read `/metrics` and the config id (loopback and private ranges by default).
    pub internal: Vec<String>,
    pub rate_limits: RateLimits,
    /// Largest `/api/` request body in bytes: the API's `API_BODY_LIMIT`, so a larger body gets the edge's
    /// 413 PAYLOAD_TOO_LARGE (in the API's JSON shape) before it is read or forwarded.
    pub api_body_limit: u32,
    pub upstream: UpstreamTuning,
    pub paths: Paths,
    /// `user` directive; absent keeps the binary's default (`nginx` in the official image).
    pub user: Option<String>,
    /// `auto` or a number.
    pub worker_processes: String,
    pub worker_connections: u32,
    /// Upstream membership, kept by `cargo xtask edge follow` (xtask/src/membership/): the `ip:port` of
    /// each ready instance of a service, keyed by the host part of a slot's server (`api-blue`, or `api`
    /// for the stack `cargo xtask up` started). Present and non-empty, the members are rendered in place of
    /// that DNS name; absent or empty, the name is (nginx 1.22 resolves it once, at load). A slot's identity
    /// stays its service name, so routing and deploys read the slots alone.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, Vec<String>>,
    /// The deploy lock's fencing number of the command that wrote this model (xtask/src/deploy/lock.rs):
    /// a command under an older fence may not replace it. Absent on models written without the lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// Address to bind; absent binds every address (`listen 80`).
    pub address: Option<String>,
    pub http: u16,
    /// Only used when `tls` is set.
    pub https: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Lower-case letters, digits and `_`; becomes part of the upstream names and the log's `slot`.
    pub name: String,
    /// `host:port` of each API replica.
    pub api: Vec<String>,
    /// `host:port` of each WebSocket (Socket.IO) replica.
    pub websocket: Vec<String>,
    /// Share of users (0–100) the split sends here; 0 keeps the slot reachable by the override cookie only.
    pub weight: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Canary {
    /// The slot testers reach with `<override_cookie>=always`; `never` sends them to the heaviest other slot.
    pub slot: Option<String>,
    /// Cookie holding a stable user id, the first choice of split key.
    pub user_cookie: String,
    /// Cookie with `always`, `never` or a slot name, overriding the split for testers.
    pub override_cookie: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Maintenance {
    pub enabled: bool,
    /// Shown on the HTML page and in the JSON body.
    pub message: String,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: u32,
    /// CIDRs still served normally while enabled (admins, monitoring).
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain path, as nginx sees it.
    pub cert: String,
    /// PEM private key path, as nginx sees it.
    pub key: String,
    /// DNS resolvers (IP addresses); OCSP stapling is enabled only when at least one is set.
    #[serde(default)]
    pub resolver: Vec<String>,
    /// CA chain used to verify stapled OCSP responses.
    #[serde(default)]
    pub trusted_certificate: Option<String>,
    /// `Strict-Transport-Security` max-age in seconds.
    #[serde(default = "default_hsts_max_age")]
    pub hsts_max_age: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Sustained API requests per second per client address.
    pub api_per_second: u32,
    /// Requests above the rate accepted at once before 429.
    pub api_burst: u32,
    /// `Retry-After` seconds on a 429.
    pub api_retry_after: u32,
    /// Concurrent `/socket.io/` connections per client address.
    pub ws_connections_per_ip: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamTuning {
    /// Failures within `fail_timeout_seconds` that take a replica out for that long.
    pub max_fails: u32,
    pub fail_timeout_seconds: u32,
    /// Idle keepalive connections cached per worker and upstream.
    pub keepalive: u32,
    /// Attempts per idempotent request, the first included.
    pub next_upstream_tries: u32,
    pub next_upstream_timeout_seconds: u32,
    pub connect_timeout_seconds: u32,
    pub read_timeout_seconds: u32,
    /// WebSocket read timeout; must exceed Socket.IO's ping interval + ping timeout (25 s + 20 s).
    pub ws_read_timeout_seconds: u32,
}

/// File locations. Relative paths resolve against nginx's prefix (`-p`), so a test can run the tree from a
/// temporary directory; the defaults suit the official nginx image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    pub pid: String,
    pub error_log: String,
    /// The JSON access log (one object per line).
    pub access_log: String,
    /// Directory for nginx's temporary files; absent keeps the binary's defaults.
    pub temp: Option<String>,
    /// Webroot for ACME HTTP-01 challenges (`/.well-known/acme-challenge/`).
    pub acme_root: String,
}

impl Default for EdgeModel {
    fn default() -> Self {
        Self {
            server_name: "_".to_owned(),
            listen: Listen::default(),
            slots: vec![Slot {
                name: "blue".to_owned(),
                api: vec!["api:3000".to_owned()],
                websocket: vec!["websocket:3001".to_owned()],
                weight: 100,
            }],
            canary: Canary::default(),
            maintenance: Maintenance::default(),
            tls: None,
            internal: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
            ]
            .map(str::to_owned)
            .to_vec(),
            rate_limits: RateLimits::default(),
            api_body_limit: default_api_body_limit(),
            upstream: UpstreamTuning::default(),
            paths: Paths::default(),
            user: None,
            worker_processes: "auto".to_owned(),
            worker_connections: 4096,
            members: BTreeMap::new(),
            fence: None,
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            address: None,
            http: 80,
            https: 443,
        }
    }
}

impl Default for Canary {
    fn default() -> Self {
        Self {
            slot: None,
            user_cookie: "avalon_uid".to_owned(),
            override_cookie: "avalon_canary".to_owned(),
        }
    }
}

impl Default for Maintenance {
    fn default() -> Self {
        Self {
            enabled: false,
            message: "Avalon is down for maintenance. Please try again in a few minutes."
                .to_owned(),
            retry_after: 300,
            allow: vec!["127.0.0.1/32".to_owned(), "::1/128".to_owned()],
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            api_per_second: 20,
            api_burst: 40,
            api_retry_after: 1,
            ws_connections_per_ip: 20,
        }
    }
}

impl Default for UpstreamTuning {
    fn default() -> Self {
        Self {
            max_fails: 3,
            fail_timeout_seconds: 10,
            keepalive: 32,
            next_upstream_tries: 3,
            next_upstream_timeout_seconds: 10,
            connect_timeout_seconds: 2,
            read_timeout_seconds: 30,
            ws_read_timeout_seconds: 90,
        }
    }
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            pid: "/var/run/nginx.pid".to_owned(),
            error_log: "/var/log/nginx/error.log".to_owned(),
            access_log: "/var/log/nginx/access.log".to_owned(),
            temp: None,
            acme_root: "/var/www/acme".to_owned(),
        }
    }
}

/// The API's own default (`API_BODY_LIMIT` in the runtime's config spec), so edge and API agree.
fn default_api_body_limit() -> u32 {
    avalon_runtime::config::spec::API_BODY_LIMIT
        .default
        .and_then(|text| text.parse().ok())
        .unwrap_or(65_536)
}

/// The API's accepted range for `API_BODY_LIMIT`.
pub const API_BODY_LIMIT_RANGE: (u32, u32) = (1024, 10 * 1024 * 1024);

fn default_hsts_max_age() -> u32 {
    63_072_000
}

/// One broken rule, e.g. `slots[1].weight: must be 0–100, got 120`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub rule: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Every problem found in a model.
#[derive(Debug, thiserror::Error)]
#[error("invalid edge model:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ModelError {
    pub problems: Vec<Problem>,
}

impl EdgeModel {
    /// Reads and validates a model file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read edge model {}", path.display()))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates a model; `origin` names where the text came from in errors.
    pub fn from_json(text: &str, origin: &str) -> anyhow::Result<Self> {
        let model: Self = serde_json::from_str(text)
            .with_context(|| format!("{origin} is not a valid edge model"))?;
        model.validate()?;
        Ok(model)
    }

    /// The named slot, if any.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|slot| slot.name == name)
    }

    /// Where `never` sends a tester: the heaviest slot other than the canary.
    pub fn stable_slot(&self) -> Option<&Slot> {
        let canary = self.canary.slot.as_deref();
        self.slots
            .iter()
            .filter(|slot| Some(slot.name.as_str()) != canary)
            .max_by_key(|slot| slot.weight)
    }

    /// The servers of `servers` as rendered: each `host:port` whose host has members becomes those members.
    pub fn upstream_servers(&self, servers: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for server in servers {
            match self.members_of(server) {
                Some(members) => out.extend(members.iter().cloned()),
                None => out.push(server.clone()),
            }
        }
        out
    }

    /// The members rendered in place of `server` (`host:port`), when it has any.
    fn members_of(&self, server: &str) -> Option<&Vec<String>> {
        let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
        self.members.get(host).filter(|members| !members.is_empty())
    }

    /// The hosts (service names) the slots' servers name: what `members` may be keyed by.
    pub fn server_hosts(&self) -> BTreeSet<&str> {
        self.slots
            .iter()
            .flat_map(|slot| slot.api.iter().chain(&slot.websocket))
            .map(|server| {
                server
                    .rsplit_once(':')
                    .map_or(server.as_str(), |(host, _)| host)
            })
            .collect()
    }

    /// Drops members of services no slot names any more (a slot a deploy stopped): a slot that comes back
    /// starts on its DNS name until the follower fills its members again.
    pub fn prune_members(&mut self) {
        let hosts: BTreeSet<String> = self.server_hosts().into_iter().map(str::to_owned).collect();
        self.members.retain(|service, _| hosts.contains(service));
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let mut v = Validator::default();
        v.server_name(&self.server_name);
        self.validate_listen(&mut v);
        self.validate_slots(&mut v);
        self.validate_members(&mut v);
        self.validate_canary(&mut v);
        self.validate_maintenance(&mut v);
        let (least, most) = API_BODY_LIMIT_RANGE;
        v.range("api_body_limit", self.api_body_limit, least, most);
        if let Some(tls) = &self.tls {
            v.path("tls.cert", &tls.cert);
            v.path("tls.key", &tls.key);
            if let Some(ca) = &tls.trusted_certificate {
                v.path("tls.trusted_certificate", ca);
            }
            for (i, resolver) in tls.resolver.iter().enumerate() {
                if resolver.parse::<IpAddr>().is_err() {
                    v.fail(
                        format!("tls.resolver[{i}]"),
                        format!("must be an IP address, got {resolver:?}"),
                    );
                }
            }
            v.range("tls.hsts_max_age", tls.hsts_max_age, 1, u32::MAX);
        }
        for (i, cidr) in self.internal.iter().enumerate() {
            v.cidr(&format!("internal[{i}]"), cidr);
        }
        let limits = &self.rate_limits;
        v.range(
            "rate_limits.api_per_second",
            limits.api_per_second,
            1,
            100_000,
        );
        v.range("rate_limits.api_burst", limits.api_burst, 0, 100_000);
        v.range(
            "rate_limits.api_retry_after",
            limits.api_retry_after,
            1,
            3600,
        );
        v.range(
            "rate_limits.ws_connections_per_ip",
            limits.ws_connections_per_ip,
            1,
            100_000,
        );
        let up = &self.upstream;
        v.range("upstream.max_fails", up.max_fails, 1, 100);
        v.range(
            "upstream.fail_timeout_seconds",
            up.fail_timeout_seconds,
            1,
            3600,
        );
        v.range("upstream.keepalive", up.keepalive, 1, 10_000);
        v.range(
            "upstream.next_upstream_tries",
            up.next_upstream_tries,
            1,
            10,
        );
        v.range(
            "upstream.next_upstream_timeout_seconds",
            up.next_upstream_timeout_seconds,
            1,
            600,
        );
        v.range(
            "upstream.connect_timeout_seconds",
            up.connect_timeout_seconds,
            1,
            60,
        );
        v.range(
            "upstream.read_timeout_seconds",
            up.read_timeout_seconds,
            1,
            3600,
        );
        v.range(
            "upstream.ws_read_timeout_seconds",
            up.ws_read_timeout_seconds,
            46,
            86_400,
        );
        v.path("paths.pid", &self.paths.pid);
        v.path("paths.error_log", &self.paths.error_log);
        v.path("paths.access_log", &self.paths.access_log);
        v.path("paths.acme_root", &self.paths.acme_root);
        if let Some(temp) = &self.paths.temp {
            v.path("paths.temp", temp);
        }
        if let Some(user) = &self.user {
            v.word("user", user);
        }
        if self.worker_processes != "auto"
            && !self.worker_processes.parse::<u16>().is_ok_and(|n| n > 0)
        {
            v.fail(
                "worker_processes",
                format!(
                    "must be `auto` or a positive number, got {:?}",
                    self.worker_processes
                ),
            );
        }
        v.range("worker_connections", self.worker_connections, 64, 1_000_000);
        v.finish()
    }

    fn validate_listen(&self, v: &mut Validator) {
        if let Some(address) = &self.listen.address
            && address.parse::<IpAddr>().is_err()
        {
            v.fail(
                "listen.address",
                format!("must be an IP address, got {address:?}"),
            );
        }
        v.range("listen.http", u32::from(self.listen.http), 1, 65_535);
        if self.tls.is_some() {
            v.range("listen.https", u32::from(self.listen.https), 1, 65_535);
            if self.listen.http == self.listen.https {
                v.fail("listen.https", "must differ from listen.http".to_owned());
            }
        }
    }

    fn validate_slots(&self, v: &mut Validator) {
        if self.slots.is_empty() {
            v.fail("slots", "at least one slot is required".to_owned());
        }
        let mut names = BTreeSet::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let field = format!("slots[{i}]");
            if !is_slot_name(&slot.name) {
                v.fail(
                    format!("{field}.name"),
                    format!(
                        "must be 1–32 of a-z, 0-9, _ starting with a letter, got {:?}",
                        slot.name
                    ),
                );
            } else if matches!(slot.name.as_str(), "always" | "never") {
                v.fail(
                    format!("{field}.name"),
                    "`always` and `never` are override values".to_owned(),
                );
            } else if !names.insert(slot.name.as_str()) {
                v.fail(
                    format!("{field}.name"),
                    format!("duplicate slot name {:?}", slot.name),
                );
            }
            for (kind, servers) in [("api", &slot.api), ("websocket", &slot.websocket)] {
                if servers.is_empty() {
                    v.fail(
                        format!("{field}.{kind}"),
                        "at least one host:port is required".to_owned(),
                    );
                }
                for (j, server) in servers.iter().enumerate() {
                    if let Err(rule) = check_host_port(server) {
                        v.fail(format!("{field}.{kind}[{j}]"), rule);
                    }
                }
            }
            v.range(&format!("{field}.weight"), u32::from(slot.weight), 0, 100);
        }
        let total: u32 = self.slots.iter().map(|slot| u32::from(slot.weight)).sum();
        if !self.slots.is_empty() && total != 100 {
            v.fail("slots", format!("weights must add up to 100, got {total}"));
        }
    }

    fn validate_members(&self, v: &mut Validator) {
        let hosts = self.server_hosts();
        for (service, members) in &self.members {
            let field = format!("members.{service}");
            if !hosts.contains(service.as_str()) {
                v.fail(
                    field.clone(),
                    "names no server host of any slot (a slot's members go when the slot goes)"
                        .to_owned(),
                );
            }
            for (j, member) in members.iter().enumerate() {
                let is_address = member
                    .parse::<std::net::SocketAddr>()
                    .is_ok_and(|address| address.port() > 0);
                if !is_address {
                    v.fail(
                        format!("{field}[{j}]"),
                        format!("must be ip:port (IPv6 in brackets), got {member:?}"),
                    );
                }
            }
        }
    }

    fn validate_canary(&self, v: &mut Validator) {
        if let Some(name) = &self.canary.slot {
            if self.slot(name).is_none() {
                v.fail("canary.slot", format!("names no slot: {name:?}"));
            } else if self.slots.len() < 2 {
                v.fail(
                    "canary.slot",
                    "a canary needs a second slot to compare with".to_owned(),
                );
            }
        }
        v.cookie("canary.user_cookie", &self.canary.user_cookie);
        v.cookie("canary.override_cookie", &self.canary.override_cookie);
    }

    fn validate_maintenance(&self, v: &mut Validator) {
        let m = &self.maintenance;
        if m.message.trim().is_empty() || m.message.chars().count() > 500 {
            v.fail("maintenance.message", "must be 1–500 characters".to_owned());
        }
        v.range("maintenance.retry_after", m.retry_after, 1, 86_400);
        for (i, cidr) in m.allow.iter().enumerate() {
            v.cidr(&format!("maintenance.allow[{i}]"), cidr);
        }
    }
}

fn is_slot_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `host:port` with a DNS name, an IPv4 address or a bracketed IPv6 address.
fn check_host_port(server: &str) -> Result<(), String> {
    let Some((host, port)) = server.rsplit_once(':') else {
        return Err(format!("must be host:port, got {server:?}"));
    };
    if !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return Err(format!("port must be 1–65535, got {server:?}"));
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
    };
    if host_ok {
        Ok(())
    } else {
        Err(format!(
            "host must be a DNS name, an IPv4 address or [IPv6], got {server:?}"
        ))
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn fail(&mut self, field: impl Into<String>, rule: String) {
        self.problems.push(Problem {
            field: field.into(),
            rule,
        });
    }

    fn range(&mut self, field: &str, value: u32, min: u32, max: u32) {
        if value < min || value > max {
            self.fail(field, format!("must be {min}–{max}, got {value}"));
        }
    }

    /// A file path nginx reads: no whitespace, quotes, `;`, braces, `$` or `#`, which would end or alter
    /// the directive it is written into.
    fn path(&mut self, field: &str, value: &str) {
        let bad = value.is_empty()
            || value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"';{}$#\\".contains(c));
        if bad {
            self.fail(
                field,
                format!("must be a non-empty path without spaces, quotes, ;, {{, }}, $, # or \\, got {value:?}"),
            );
        }
    }

    fn word(&mut self, field: &str, value: &str) {
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            self.fail(
                field,
                format!("must be letters, digits, _ or -, got {value:?}"),
            );
        }
    }

    /// Cookie names become nginx variable names (`$cookie_<name>`).
    fn cookie(&mut self, field: &str, value: &str) {
        if value.is_empty()
            || value.len() > 64
            || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.fail(
                field,
                format!("must be 1–64 letters, digits or _, got {value:?}"),
            );
        }
    }

    fn server_name(&mut self, value: &str) {
        let ok = !value.trim().is_empty()
            && value.split(' ').all(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_*".contains(c))
            });
        if !ok {
            self.fail(
                "server_name",
                format!(
                    "must be space-separated host names (letters, digits, . - _ *), got {value:?}"
                ),
            );
        }
    }

    fn cidr(&mut self, field: &str, value: &str) {
        if value.parse::<ipnet::IpNet>().is_err() {
            self.fail(
                field,
                format!("must be a CIDR such as 10.0.0.0/8, got {value:?}"),
            );
        }
    }

    fn finish(self) -> Result<(), ModelError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError {
                problems: self.problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn two_slots() -> EdgeModel {
        let mut model = EdgeModel::default();
        model.slots.push(Slot {
            name: "green".to_owned(),
            api: vec!["api-green:3000".to_owned()],
            websocket: vec!["websocket-green:3001".to_owned()],
            weight: 10,
        });
        model.slots[0].weight = 90;
        model.canary.slot = Some("green".to_owned());
        model
    }

    #[test]
    fn default_model_is_valid_and_round_trips_from_an_empty_document() {
        EdgeModel::default().validate().unwrap();
        let parsed: EdgeModel = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, EdgeModel::default());
        two_slots().validate().unwrap();
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut model = two_slots();
        model.slots[0].weight = 95;
        model.slots[1].name = "Green!".to_owned();
        model.slots[1].api = vec!["api-green".to_owned(), "x:0".to_owned()];
        model.canary.slot = Some("purple".to_owned());
        model.maintenance.allow = vec!["10.0.0.0/33".to_owned()];
        model.paths.access_log = "logs/a.log; evil".to_owned();
        let problems = model.validate().unwrap_err().problems;
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for expected in [
            "slots[1].name",
            "slots[1].api[0]",
            "slots[1].api[1]",
            "slots",
            "canary.slot",
            "maintenance.allow[0]",
            "paths.access_log",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {problems:?}"
            );
        }
        assert!(
            problems
                .iter()
                .any(|p| p.rule.contains("add up to 100, got 105"))
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<EdgeModel>(r#"{"slotz": []}"#).unwrap_err();
        assert!(err.to_string().contains("slotz"), "{err}");
    }

    #[test]
    fn members_replace_their_service_name_and_are_validated() {
        let mut model = two_slots();
        model.members.insert(
            "websocket-green".to_owned(),
            vec!["172.18.0.5:3001".to_owned(), "172.18.0.6:3001".to_owned()],
        );
        model.members.insert("api-green".to_owned(), vec![]);
        model.validate().unwrap();
        assert_eq!(
            model.upstream_servers(&model.slots[1].websocket),
            ["172.18.0.5:3001", "172.18.0.6:3001"]
        );
        // Empty members: the DNS name, as without members.
        assert_eq!(
            model.upstream_servers(&model.slots[1].api),
            ["api-green:3000"]
        );
        assert_eq!(model.upstream_servers(&model.slots[0].api), ["api:3000"]);

        model.members.insert("api-purple".to_owned(), vec![]);
        model
            .members
            .insert("api".to_owned(), vec!["api-3:3000".to_owned()]);
        let problems = model.validate().unwrap_err().problems;
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["members.api[0]", "members.api-purple"],
            "{problems:?}"
        );

        model.prune_members();
        assert!(!model.members.contains_key("api-purple"));
        assert!(model.members.contains_key("websocket-green"));
    }

    #[test]
    fn a_model_without_members_serialises_as_before() {
        let text = serde_json::to_string(&EdgeModel::default()).unwrap();
        assert!(!text.contains("members"), "{text}");
    }

    #[test]
    fn stable_slot_is_the_heaviest_non_canary_slot() {
        assert_eq!(two_slots().stable_slot().unwrap().name, "blue");
    }

    #[test]
    fn host_ports_accept_names_ipv4_and_bracketed_ipv6() {
        for ok in [
            "api:3000",
            "api-blue.internal:1",
            "127.0.0.1:8080",
            "[::1]:3000",
        ] {
            assert!(check_host_port(ok).is_ok(), "{ok}");
        }
        for bad in [
            "api",
            ":80",
            "api:",
            "api:70000",
            "a b:80",
            "[zz]:80",
            "api;x:80",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
    }
}
