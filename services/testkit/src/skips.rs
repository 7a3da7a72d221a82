//! Skipping a test (or a check of `cargo xtask ci`) that cannot run here, and the one list of skips CI allows.
//!
//! Locally a skip prints `!!!!!!!! SKIPPED: <id>: <reason> !!!!!!!!` and the caller returns. Under `CI=true` a
//! skip fails, unless `.ci/skips.toml` names its id with the reason it cannot run on the CI machine: a tool
//! that went missing from `scripts/ci/install-tools.sh` must not turn a test into a silent "ok 0.00s".
//! Every skip is also appended to the file named by [`SKIP_LOG_VAR`], so `cargo xtask ci` can print the
//! skips it saw (the test harness hides a passing test's output).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The list, compiled in (a change to it rebuilds this crate), so no test depends on its working directory.
const LIST: &str = include_str!("../../../.ci/skips.toml");

/// Where the list lives, relative to the workspace root (for messages).
pub const LIST_PATH: &str = ".ci/skips.toml";

/// A file every skip appends `<id>\t<reason>` to, when set (`cargo xtask ci` sets it).
pub const SKIP_LOG_VAR: &str = "AVALON_SKIP_LOG";

/// One entry of `.ci/skips.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSkip {
    pub id: String,
    pub reason: String,
    /// The code that skips.
    pub location: String,
}

/// A skip that is not allowed here: under CI, for an id `.ci/skips.toml` does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipRefused {
    pub id: String,
    pub reason: String,
}

impl fmt::Display for SkipRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} — under CI=true nothing may skip unless {LIST_PATH} lists it; install what is missing \
             (scripts/ci/install-tools.sh) or add `[{}]` with the reason to {LIST_PATH}",
            self.id, self.reason, self.id
        )
    }
}

impl std::error::Error for SkipRefused {}

/// True when running under CI, where nothing may be skipped unless listed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Skips `id` (a stable name, such as `tool-nginx` or `mongodb-store-contract`) because of `reason`: prints
/// the loud line and returns; panics under CI unless the id is listed. The caller returns right after.
pub fn skip(id: &str, reason: &str) {
    if let Err(refused) = try_skip(id, reason) {
        panic!("not skipped: {refused}");
    }
}

/// [`skip`] for code that reports errors instead of panicking (the checks of `cargo xtask ci`).
pub fn try_skip(id: &str, reason: &str) -> Result<(), SkipRefused> {
    let allowed = allowed_skips().unwrap_or_else(|error| panic!("{error}"));
    decide(id, reason, in_ci(), &allowed)?;
    eprintln!("\n{}\n", skip_line(id, reason));
    record(id, reason);
    Ok(())
}

/// The loud line a skip prints.
pub fn skip_line(id: &str, reason: &str) -> String {
    format!("!!!!!!!! SKIPPED: {id}: {reason} !!!!!!!!")
}

/// Whether `id` may skip: always outside CI; under CI only when listed. An id that is not a plain name
/// (letters, digits, `-`, `_`) is refused everywhere, so the list can always name it.
pub fn decide(
    id: &str,
    reason: &str,
    in_ci: bool,
    allowed: &[AllowedSkip],
) -> Result<(), SkipRefused> {
    let plain = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain && (!in_ci || allowed.iter().any(|entry| entry.id == id)) {
        return Ok(());
    }
    Err(SkipRefused {
        id: id.to_owned(),
        reason: if plain {
            reason.to_owned()
        } else {
            format!("{reason} (and the skip id is not a plain name)")
        },
    })
}

/// The skips CI allows, by id.
pub fn allowed_skips() -> Result<Vec<AllowedSkip>, String> {
    parse_list(LIST)
}

fn parse_list(text: &str) -> Result<Vec<AllowedSkip>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|error| format!("{LIST_PATH} is not valid TOML: {error}"))?;
    let mut entries = Vec::new();
    for (id, entry) in table {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(toml::Value::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("{LIST_PATH}: [{id}] needs a non-empty `{name}`"))
        };
        entries.push(AllowedSkip {
            reason: field("reason")?,
            location: field("where")?,
            id,
        });
    }
    Ok(entries)
}

/// This process's skip log, when set by [`log_skips_to`] (for skips of the process itself; its children
/// are told through [`SKIP_LOG_VAR`]).
static LOG: OnceLock<PathBuf> = OnceLock::new();

/// Records this process's skips in `path` too (`cargo xtask ci`, whose own checks may skip). First call wins.
pub fn log_skips_to(path: &Path) {
    let _ = LOG.set(path.to_owned());
}

/// Appends the skip to the log `cargo xtask ci` reads, if it asked for one. One short `write` on an
/// append-mode file, so lines of tests running at once do not interleave.
fn record(id: &str, reason: &str) {
    let Some(path) = LOG
        .get()
        .cloned()
        .or_else(|| std::env::var_os(SKIP_LOG_VAR).map(PathBuf::from))
    else {
        return;
    };
    let line = format!("{id}\t{}\n", reason.replace(['\t', '\n'], " "));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        eprintln!(
            "warning: cannot record the skip in {}: {error}",
            path.display()
        );
    }
}

/// The skips recorded in a log written through [`SKIP_LOG_VAR`], as `(id, reason)`, in order.
pub fn read_skip_log(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, reason)| (id.to_owned(), reason.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn listed(id: &str) -> Vec<AllowedSkip> {
        vec![AllowedSkip {
            id: id.to_owned(),
            reason: "r".to_owned(),
            location: "l".to_owned(),
        }]
    }

    #[test]
    fn outside_ci_anything_plain_may_skip() {
        assert_eq!(decide("tool-nginx", "missing", false, &[]), Ok(()));
        assert!(decide("tool nginx", "missing", false, &[]).is_err());
        assert!(decide("", "missing", false, &[]).is_err());
    }

    #[test]
    fn under_ci_only_listed_ids_may_skip() {
        assert_eq!(
            decide("mongodb-x", "no server", true, &listed("mongodb-x")),
            Ok(())
        );
        let refused = decide("tool-nginx", "missing", true, &listed("mongodb-x")).unwrap_err();
        assert_eq!(refused.id, "tool-nginx");
        assert!(refused.to_string().contains(LIST_PATH));
    }

    #[test]
    fn the_shipped_list_parses_and_each_entry_has_a_reason_and_a_place() {
        let entries = allowed_skips().unwrap();
        assert!(entries.iter().any(|e| e.id == "mongodb-store-contract"));
        for entry in &entries {
            assert_eq!(decide(&entry.id, "x", true, &entries), Ok(()), "{entry:?}");
        }
    }

    #[test]
    fn a_list_entry_without_a_reason_is_an_error() {
        assert!(parse_list("[a]\nwhere = \"x\"\n").is_err());
        assert!(parse_list("[a]\nreason = \" \"\nwhere = \"x\"\n").is_err());
        assert_eq!(
            parse_list("[a]\nreason = \"why\"\nwhere = \"x.rs\"\n").unwrap(),
            vec![AllowedSkip {
                id: "a".to_owned(),
                reason: "why".to_owned(),
                location: "x.rs".to_owned()
            }]
        );
    }

    #[test]
    fn the_log_reads_back_what_was_recorded() {
        assert_eq!(
            read_skip_log("a\tno tool\nbroken line\nb\tno server\n"),
            vec![
                ("a".to_owned(), "no tool".to_owned()),
                ("b".to_owned(), "no server".to_owned())
            ]
        );
        assert_eq!(skip_line("a", "why"), "!!!!!!!! SKIPPED: a: why !!!!!!!!");
    }
}
