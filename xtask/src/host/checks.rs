//! `host check`: every item of a prepared host — engine, files, secrets, env file, certificates, running
//! sysctls and units — reported as ok, missing, differs, placeholder, invalid or warning. Pure where it can
//! be: [`entry_items`] and [`env_items`] judge observations handed to them.

use std::collections::BTreeSet;

use anyhow::bail;

use super::init::{self, Prepared};
use super::layout::{CERT_FILE, ENV_FILE, KEY_FILE, Ownership, Root, SECRETS_DIR, XTASK_BIN};
use super::plan::{Entry, Found, Kind, Observed, trim_secret};
use super::secrets::{self, WECHAT_SECRET};
use super::{HostArgs, certs, env_file, system, units};

#[derive(serde::Serialize)]
struct Report<'a> {
    root: String,
    env: &'static str,
    owners: String,
    items: &'a [Item],
    ok: bool,
}

pub fn run(host: &HostArgs) -> anyhow::Result<()> {
    certs::check_domain(&host.domain)?;
    let sh = xshell::Shell::new()?;
    let prepared = init::prepare(host, &[], None)?;
    let items = survey(&sh, &prepared, crate::command::verbose());
    let failing: Vec<&str> = items
        .iter()
        .filter(|item| item.status.fails())
        .map(|item| item.item.as_str())
        .collect();
    if host.json {
        let report = Report {
            root: prepared.root.dir().display().to_string(),
            env: host.env.name(),
            owners: ownership_note(&prepared.ownership),
            items: &items,
            ok: failing.is_empty(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "host check: {} host at {}; {}",
            host.env.name(),
            prepared.root.dir().display(),
            ownership_note(&prepared.ownership)
        );
        print_items(&items);
        if failing.is_empty() {
            println!("host check: all {} items ok", items.len());
        }
    }
    if !failing.is_empty() {
        bail!(
            "host check: {} item(s) need attention: {} (`cargo xtask host init` makes what it can)",
            failing.len(),
            failing.join(", ")
        );
    }
    Ok(())
}

/// Every item of the host, judged: engine, entries, the env file with its secrets, the certificate pair, and
/// on the running system its sysctls and units.
pub fn survey(sh: &xshell::Shell, prepared: &Prepared, verbose: bool) -> Vec<Item> {
    let mut items = engine_items(sh, &prepared.root, verbose);
    items.extend(entry_items(
        &prepared.entries,
        &prepared.observed,
        &prepared.ownership,
    ));
    let missing_secrets: BTreeSet<String> = prepared
        .observed
        .iter()
        .filter(|(path, found)| {
            path.starts_with(&format!("{SECRETS_DIR}/")) && **found == Found::Missing
        })
        .filter_map(|(path, _)| path.rsplit('/').next().map(str::to_owned))
        .collect();
    if let Some(Found::File { content, .. }) = prepared.observed.get(ENV_FILE) {
        let text = String::from_utf8_lossy(content);
        let app_env = env_file::values(&text)
            .ok()
            .and_then(|values| values.get("APP_ENV").cloned())
            .unwrap_or_default();
        if app_env != prepared.env.app_env() {
            items.push(Item::new(
                "APP_ENV",
                Status::Differs,
                format!(
                    "{ENV_FILE} says APP_ENV={app_env}, but this host is checked as --env {}",
                    prepared.env.name()
                ),
            ));
        }
        let judged = env_file::placeholders(&text, &prepared.template).and_then(|placeholders| {
            let violations = env_file::validate(&text, &prepared.root)?;
            Ok(env_items(&placeholders, &violations, &missing_secrets))
        });
        match judged {
            Ok(found) => items.extend(found),
            Err(err) => items.push(Item::new(ENV_FILE, Status::Invalid, format!("{err:#}"))),
        }
    }
    let present = |path: &str| matches!(prepared.observed.get(path), Some(Found::File { .. }));
    if present(CERT_FILE) && present(KEY_FILE) {
        let (cert, key) = (prepared.root.join(CERT_FILE), prepared.root.join(KEY_FILE));
        items.push(match certs::inspect(sh, &cert, &key, verbose) {
            certs::CertState::Valid { subject, not_after } => Item::new(
                "certificate",
                Status::Ok,
                format!("{subject}, valid until {not_after}, key matches"),
            ),
            certs::CertState::Problem(problem) => {
                Item::new("certificate", Status::Invalid, problem)
            }
        });
    }
    if prepared.root.is_live_system() {
        items.extend(live_items(sh, &prepared.root, verbose));
    }
    items
}

/// The running system: sysctls at their floors, units enabled.
fn live_items(sh: &xshell::Shell, root: &Root, verbose: bool) -> Vec<Item> {
    let shortfalls = system::shortfalls(root);
    let mut items: Vec<Item> = shortfalls
        .iter()
        .map(|shortfall| {
            Item::new(
                format!("sysctl {}", shortfall.key),
                Status::Differs,
                format!(
                    "running {}, wanted at least {} (sysctl --system)",
                    shortfall.running, shortfall.wanted
                ),
            )
        })
        .collect();
    if shortfalls.is_empty() {
        items.push(Item::new(
            "sysctls",
            Status::Ok,
            "every floor of 60-avalon.conf is in effect",
        ));
    }
    if !units::systemd_running(root) {
        items.push(Item::new(
            "systemd units",
            Status::Warning,
            "systemd is not running this system: cannot tell whether the units are enabled",
        ));
        return items;
    }
    let not_enabled = units::not_enabled(sh, verbose);
    for unit in units::ENABLED {
        let status = if not_enabled.contains(&unit) {
            Status::Differs
        } else {
            Status::Ok
        };
        let detail = if status == Status::Ok {
            "enabled"
        } else {
            "not enabled (systemctl enable …)"
        };
        items.push(Item::new(unit, status, detail));
    }
    items
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Differs,
    Placeholder,
    Invalid,
    /// Worth knowing, not a failure (e.g. the engine of a host that is not the one being prepared).
    Warning,
}

impl Status {
    pub fn fails(self) -> bool {
        !matches!(self, Status::Ok | Status::Warning)
    }

    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "MISSING",
            Status::Differs => "DIFFERS",
            Status::Placeholder => "PLACEHOLDER",
            Status::Invalid => "INVALID",
            Status::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    pub item: String,
    pub status: Status,
    pub detail: String,
}

impl Item {
    pub fn new(item: impl Into<String>, status: Status, detail: impl Into<String>) -> Item {
        Item {
            item: item.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// The state of each entry's path against what it should be.
pub fn entry_items(entries: &[Entry], observed: &Observed, ownership: &Ownership) -> Vec<Item> {
    entries
        .iter()
        .map(|entry| {
            let found = observed.get(&entry.path).unwrap_or(&Found::Missing);
            let (status, detail) = judge(entry, found, ownership);
            Item::new(entry.path.clone(), status, detail)
        })
        .collect()
}

fn judge(entry: &Entry, found: &Found, ownership: &Ownership) -> (Status, String) {
    let wanted = ownership.wanted(entry.owner);
    let (mode, owner) = match found {
        Found::Missing => return (Status::Missing, missing_detail(&entry.kind)),
        Found::Other => return (Status::Differs, "neither a file nor a directory".to_owned()),
        Found::Dir { .. } if !matches!(entry.kind, Kind::Dir) => {
            return (
                Status::Differs,
                "a directory where a file belongs".to_owned(),
            );
        }
        Found::File { .. } if matches!(entry.kind, Kind::Dir) => {
            return (
                Status::Differs,
                "a file where a directory belongs".to_owned(),
            );
        }
        Found::Dir { mode, owner } | Found::File { mode, owner, .. } => (*mode, *owner),
    };
    let mut problems = Vec::new();
    if mode != entry.mode {
        problems.push(format!("mode {mode:04o}, wanted {:04o}", entry.mode));
    }
    if let Some(wanted) = wanted
        && owner != wanted
    {
        problems.push(format!("owner {owner}, wanted {wanted}"));
    }
    if let (Kind::Managed(content), Found::File { content: now, .. }) = (&entry.kind, found)
        && now != content
    {
        if entry.path == XTASK_BIN {
            return (
                Status::Warning,
                "another build of xtask than this one (host init installs the one it runs as)"
                    .to_owned(),
            );
        }
        problems.push("content differs from what host init writes".to_owned());
    }
    if entry.path.ends_with(&format!("/{WECHAT_SECRET}"))
        && let Found::File { content, .. } = found
    {
        let value = String::from_utf8_lossy(trim_secret(content)).into_owned();
        if let Some(problem) = secrets::wechat_secret_problem(&value) {
            return (Status::Placeholder, format!("WECHAT_SECRET {problem}"));
        }
    }
    if problems.is_empty() {
        let owner_note = if wanted.is_some() {
            format!(" {owner}")
        } else {
            String::new()
        };
        (Status::Ok, format!("{mode:04o}{owner_note}"))
    } else {
        (Status::Differs, problems.join("; "))
    }
}

fn missing_detail(kind: &Kind) -> String {
    match kind {
        Kind::Supplied { hint } => format!("to be supplied: {hint}"),
        Kind::KeyOf { .. } => "made with its certificate by host init".to_owned(),
        _ => "host init makes it".to_owned(),
    }
}

/// Placeholders left in the env file, and what the services' validator says of the env file with its
/// secrets, without repeating a variable already reported (as a placeholder or a missing secret file).
pub fn env_items(
    placeholders: &[String],
    violations: &[avalon_runtime::config::Violation],
    missing_secrets: &BTreeSet<String>,
) -> Vec<Item> {
    let mut items: Vec<Item> = placeholders
        .iter()
        .map(|key| {
            Item::new(
                key.clone(),
                Status::Placeholder,
                format!(
                    "set it: cargo xtask host init --set {key}=… (or edit {})",
                    super::layout::ENV_FILE
                ),
            )
        })
        .collect();
    let reported: BTreeSet<String> = placeholders
        .iter()
        .cloned()
        .chain(missing_secrets.iter().map(|name| name.to_ascii_uppercase()))
        .collect();
    for violation in violations {
        let variable = violation.variable.trim_end_matches("_FILE");
        if reported.contains(variable) {
            continue;
        }
        items.push(Item::new(
            violation.variable.clone(),
            Status::Invalid,
            violation.rule.clone(),
        ));
    }
    if items.is_empty() {
        items.push(Item::new(
            "configuration",
            Status::Ok,
            "avalon.env has no placeholders and is valid with its secrets (the services' own validator)",
        ));
    }
    items
}

/// A version `major.minor.patch` from text such as `20.10.24+dfsg1` or `v2.40.3`.
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().trim_start_matches('v').split('.').map(|part| {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Docker Engine 20.10: the oldest engine this project runs on (CI's), with cgroup v2 and `--wait` support.
pub const MIN_ENGINE: (u64, u64, u64) = (20, 10, 0);
/// Compose 2.20: `depends_on: required:` in docker/compose.yml needs it.
pub const MIN_COMPOSE: (u64, u64, u64) = (2, 20, 0);

/// Judges a tool's reported version against its minimum.
pub fn version_item(
    name: &str,
    reported: Result<String, String>,
    minimum: (u64, u64, u64),
) -> Item {
    let wanted = format!("{}.{}.{}", minimum.0, minimum.1, minimum.2);
    match reported {
        Err(err) => Item::new(name, Status::Missing, format!("{err} (need ≥ {wanted})")),
        Ok(text) => match parse_version(&text) {
            Some(version) if version >= minimum => {
                Item::new(name, Status::Ok, format!("{text} (≥ {wanted})"))
            }
            Some(_) => Item::new(
                name,
                Status::Differs,
                format!("{text} is older than {wanted}"),
            ),
            None => Item::new(
                name,
                Status::Invalid,
                format!("cannot read the version `{text}`"),
            ),
        },
    }
}

/// The engine and Compose versions (read-only calls). Under `--root` the engine is not the prepared host's,
/// so its problems are warnings.
pub fn engine_items(sh: &xshell::Shell, root: &Root, verbose: bool) -> Vec<Item> {
    let ask = |args: &[&str]| -> Result<String, String> {
        let output = read_only(xshell::cmd!(sh, "docker {args...}"), verbose)
            .ignore_status()
            .output()
            .map_err(|err| format!("docker CLI not found ({err})"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(format!(
                "not reachable: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    };
    let mut items = vec![
        version_item(
            "docker engine",
            ask(&["version", "--format", "{{.Server.Version}}"]),
            MIN_ENGINE,
        ),
        version_item(
            "docker compose",
            ask(&["compose", "version", "--short"]),
            MIN_COMPOSE,
        ),
    ];
    if !root.is_live_system() {
        for item in &mut items {
            if item.status.fails() {
                item.detail = format!("{} (not required under --root)", item.detail);
                item.status = Status::Warning;
            }
        }
    }
    items
}

/// A read-only command: printed first with `-v` only (xshell echoes nothing for captured output).
pub fn read_only(command: xshell::Cmd<'_>, verbose: bool) -> xshell::Cmd<'_> {
    if verbose {
        eprintln!("$ {command}");
    }
    command.quiet()
}

/// Whether owners are checked, as a line for the report.
pub fn ownership_note(ownership: &Ownership) -> String {
    match ownership {
        Ownership::Apply => "owners are set and checked".to_owned(),
        Ownership::Skip { reason } => format!("owners are not set or checked: {reason}"),
    }
}

pub fn print_items(items: &[Item]) {
    for item in items {
        println!(
            "  {:<11} {:<52} {}",
            item.status.label(),
            item.item,
            item.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::Owner;
    use super::*;
    use avalon_runtime::config::Violation;

    fn secret_entry() -> Entry {
        Entry {
            path: "/etc/avalon/secrets/jwt_secret".to_owned(),
            mode: 0o600,
            owner: Owner::SECRET,
            kind: Kind::Once(super::super::plan::Source::Random {
                bytes: 64,
                encoding: super::super::plan::Encoding::Base64Url,
            }),
        }
    }

    #[test]
    fn entries_are_ok_missing_or_differ_with_the_reason() {
        let entries = vec![secret_entry()];
        let mut observed = Observed::new();
        let items = entry_items(&entries, &observed, &Ownership::Apply);
        assert_eq!(items[0].status, Status::Missing);

        observed.insert(
            entries[0].path.clone(),
            Found::File {
                mode: 0o644,
                owner: Owner::ROOT,
                content: b"x".to_vec(),
            },
        );
        let items = entry_items(&entries, &observed, &Ownership::Apply);
        assert_eq!(items[0].status, Status::Differs);
        assert!(
            items[0].detail.contains("mode 0644, wanted 0600"),
            "{}",
            items[0].detail
        );
        assert!(
            items[0].detail.contains("owner 0:0, wanted 0:10001"),
            "{}",
            items[0].detail
        );

        // Without root, owners are not judged.
        let unprivileged = Ownership::for_effective_uid(1000);
        observed.insert(
            entries[0].path.clone(),
            Found::File {
                mode: 0o600,
                owner: Owner::ROOT,
                content: b"x".to_vec(),
            },
        );
        assert_eq!(
            entry_items(&entries, &observed, &unprivileged)[0].status,
            Status::Ok
        );
    }

    #[test]
    fn a_placeholder_wechat_secret_is_reported() {
        let entry = Entry {
            path: "/etc/avalon/secrets/wechat_secret".to_owned(),
            mode: 0o600,
            owner: Owner::SECRET,
            kind: Kind::Supplied {
                hint: "…".to_owned(),
            },
        };
        let mut observed = Observed::new();
        observed.insert(
            entry.path.clone(),
            Found::File {
                mode: 0o600,
                owner: Owner::SECRET,
                content: b"your-secret\n".to_vec(),
            },
        );
        let items = entry_items(&[entry], &observed, &Ownership::Apply);
        assert_eq!(items[0].status, Status::Placeholder);
    }

    #[test]
    fn env_problems_are_reported_once_per_variable() {
        let violations = vec![
            Violation::new("WECHAT_APPID", "is required outside development"),
            Violation::new("WECHAT_SECRET_FILE", "cannot read secret file"),
            Violation::new("RATE_LIMIT_IP", "must be a positive integer"),
        ];
        let missing: BTreeSet<String> = ["wechat_secret".to_owned()].into();
        let items = env_items(&["WECHAT_APPID".to_owned()], &violations, &missing);
        let named: Vec<(&str, Status)> = items
            .iter()
            .map(|item| (item.item.as_str(), item.status))
            .collect();
        assert_eq!(
            named,
            [
                ("WECHAT_APPID", Status::Placeholder),
                ("RATE_LIMIT_IP", Status::Invalid)
            ]
        );
        assert_eq!(env_items(&[], &[], &BTreeSet::new())[0].status, Status::Ok);
    }

    #[test]
    fn versions_are_compared_with_their_minimum() {
        assert_eq!(parse_version("20.10.24+dfsg1"), Some((20, 10, 24)));
        assert_eq!(parse_version("v2.40.3"), Some((2, 40, 3)));
        assert_eq!(parse_version("27.0"), Some((27, 0, 0)));
        assert_eq!(
            version_item("e", Ok("20.10.24+dfsg1".to_owned()), MIN_ENGINE).status,
            Status::Ok
        );
        assert_eq!(
            version_item("e", Ok("19.03.2".to_owned()), MIN_ENGINE).status,
            Status::Differs
        );
        assert_eq!(
            version_item("c", Ok("2.17.0".to_owned()), MIN_COMPOSE).status,
            Status::Differs
        );
        assert_eq!(
            version_item("c", Err("not found".to_owned()), MIN_COMPOSE).status,
            Status::Missing
        );
    }
}
