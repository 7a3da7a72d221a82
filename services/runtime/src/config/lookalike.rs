//! Unknown variables that look like ours. A misspelt name (`RATE_LIMT_IP`, `JWT_SECRETT`) is silently
//! ignored by the loader, so the default applies where the operator meant a value; a `_FILE` form of a
//! variable that has none (`PORT_FILE`) is ignored the same way. Such names are found here; the caller
//! refuses them outside development and warns in development, where a developer's shell holds anything.
//!
//! A name looks like ours when it is one of ours in other letter case, one of ours with `_FILE` where only
//! secrets have a file form, within a small edit distance of one of ours (or of a secret's `_FILE` form),
//! or in one of our name families (`REDIS_URL` beside `REDIS_HOST`, `REDIS_PORT`…). Kubernetes service
//! links (`<SVC>_SERVICE_HOST`, `<SVC>_PORT_6379_TCP`…) are the platform's, never ours, and are skipped.

use std::collections::BTreeSet;

use super::spec::{self, Var};
use super::violation::Violation;

/// Every name in `names` that is not ours but looks like ours, with the reason.
pub fn lookalikes<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Violation> {
    let names: Vec<&str> = names.into_iter().collect();
    let link_prefixes: BTreeSet<&str> = names
        .iter()
        .filter_map(|name| name.strip_suffix("_SERVICE_HOST"))
        .collect();
    names
        .iter()
        .filter(|name| !is_ours(name) && !is_service_link(name, &link_prefixes))
        .filter_map(|name| Some(Violation::new(*name, reason(name)?)))
        .collect()
}

fn is_ours(name: &str) -> bool {
    spec::lookup(name).is_some() || secret_of_file_variant(name).is_some()
}

fn secret_of_file_variant(name: &str) -> Option<&'static Var> {
    spec::lookup(name.strip_suffix("_FILE")?).filter(|var| var.secret)
}

fn is_service_link(name: &str, link_prefixes: &BTreeSet<&str>) -> bool {
    link_prefixes.iter().any(|prefix| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|rest| {
                rest == "SERVICE_HOST"
                    || rest.starts_with("SERVICE_PORT")
                    || rest == "PORT"
                    || rest.starts_with("PORT_")
            })
    })
}

const NOT_OURS: &str = "is not an Avalon variable";

fn reason(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    if upper != name && is_ours(&upper) {
        return Some(format!(
            "{NOT_OURS} (names are upper case): did you mean {upper}?"
        ));
    }
    if let Some(var) = upper.strip_suffix("_FILE").and_then(spec::lookup) {
        return Some(format!(
            "{NOT_OURS}: {} has no file form (only the secrets {} are read from `<NAME>_FILE`); set {} itself",
            var.name,
            secret_names().join(", "),
            var.name
        ));
    }
    if let Some(closest) = closest(&upper) {
        return Some(format!("{NOT_OURS}: did you mean {closest}?"));
    }
    let (family, members) = family_of(&upper)?;
    Some(format!(
        "{NOT_OURS}, yet it is named like ours (the {family} family: {})",
        members.join(", ")
    ))
}

fn secret_names() -> Vec<&'static str> {
    spec::ALL
        .iter()
        .filter(|var| var.secret)
        .map(|var| var.name)
        .collect()
}

/// Our name nearest to `upper`, if it is near enough to be a typo: one edit for short names, two otherwise.
fn closest(upper: &str) -> Option<String> {
    let candidates = spec::ALL.iter().flat_map(|var| {
        let file = var.secret.then(|| var.file_variant());
        std::iter::once(var.name.to_owned()).chain(file)
    });
    candidates
        .map(|candidate| (strsim::osa_distance(upper, &candidate), candidate))
        .filter(|(distance, candidate)| {
            let allowed = if candidate.len() <= 6 { 1 } else { 2 };
            *distance <= allowed
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The first `_`-terminated word of a name is its family when two or more of our names share it.
fn family_of(upper: &str) -> Option<(String, Vec<&'static str>)> {
    let (word, _) = upper.split_once('_')?;
    let family = format!("{word}_");
    let members: Vec<&'static str> = spec::ALL
        .iter()
        .map(|var| var.name)
        .filter(|name| name.starts_with(&family))
        .collect();
    (members.len() >= 2).then_some((family, members))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<String> {
        lookalikes(names.iter().copied())
            .into_iter()
            .map(|violation| violation.to_string())
            .collect()
    }

    #[test]
    fn typos_file_forms_and_families_are_found() {
        let found = named(&[
            "RATE_LIMT_IP",
            "JWT_SECRETT",
            "PORT_FILE",
            "port",
            "REDIS_URL",
            "JWT_SECRETT_FILE",
        ]);
        assert!(
            found[0].contains("RATE_LIMT_IP") && found[0].contains("did you mean RATE_LIMIT_IP?")
        );
        assert!(found[1].contains("did you mean JWT_SECRET?"));
        assert!(found[2].contains("PORT has no file form"));
        assert!(found[3].contains("did you mean PORT?"));
        assert!(found[4].contains("the REDIS_ family"));
        assert!(
            found[5].contains("did you mean JWT_SECRET_FILE?"),
            "{found:?}"
        );
    }

    #[test]
    fn our_names_platform_names_and_service_links_pass() {
        let names = [
            "PORT",
            "JWT_SECRET_FILE",
            "MONGODB_URI_FILE",
            "HOME",
            "PATH",
            "HOST",
            "HOSTNAME",
            "USER",
            "TERM",
            "PWD",
            "LANG",
            "SHELL",
            "TZ",
            "RUST_LOG",
            "RUST_BACKTRACE",
            "TOKIO_WORKER_THREADS",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "CARGO_TARGET_DIR",
            "DOCKER_HOST",
            "GITHUB_ACTIONS",
            "CI",
            "REDIS_SERVICE_HOST",
            "REDIS_SERVICE_PORT",
            "REDIS_SERVICE_PORT_REDIS",
            "REDIS_PORT_6379_TCP",
            "REDIS_PORT_6379_TCP_ADDR",
            "AVALON_API_SERVICE_HOST",
            "AVALON_API_PORT",
            // Set by the slot overlay and read by the instance registry, not a configuration variable.
            "AVALON_SLOT",
        ];
        assert_eq!(named(&names), Vec::<String>::new());
    }
}
