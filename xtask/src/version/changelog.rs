//! CHANGELOG.md: one section per release, newest first, commits grouped by what they mean to a user.

use std::fmt::Write as _;

use super::commits::ParsedCommit;

pub const FILE: &str = "CHANGELOG.md";

const HEADER: &str = "# Changelog\n\n\
All notable changes to Avalon Ops. Each section is written by `cargo xtask version` from the conventional \
commits since the previous release (see docs/release.md).\n";

/// Whether a commit belongs in a changelog group.
type Claims = fn(&ParsedCommit) -> bool;

/// Section order in the changelog; a commit lands in the first group that claims it.
const GROUPS: [(&str, Claims); 5] = [
    ("Breaking changes", |c| c.breaking),
    ("Features", |c| c.is("feat")),
    ("Fixes", |c| c.is("fix")),
    ("Performance", |c| c.is("perf")),
    ("Other", |_| true),
];

/// The release's section: `## [X.Y.Z] - YYYY-MM-DD` then one `###` group per non-empty kind of change.
pub fn render_section(version: &semver::Version, date: &str, commits: &[ParsedCommit]) -> String {
    let mut out = format!("## [{version}] - {date}\n");
    let mut remaining: Vec<&ParsedCommit> = commits.iter().collect();
    for (title, claims) in GROUPS {
        let (mine, rest): (Vec<&ParsedCommit>, Vec<&ParsedCommit>) =
            remaining.into_iter().partition(|commit| claims(commit));
        remaining = rest;
        if mine.is_empty() {
            continue;
        }
        let _ = write!(out, "\n### {title}\n\n");
        for commit in mine {
            out.push_str(&entry(commit, title == "Other"));
        }
    }
    if commits.is_empty() {
        out.push_str("\nNo changes recorded.\n");
    }
    out
}

fn entry(commit: &ParsedCommit, show_type: bool) -> String {
    let mut line = String::from("- ");
    if show_type && let Some(kind) = &commit.kind {
        let _ = write!(line, "{kind}: ");
    }
    if let Some(scope) = &commit.scope {
        let _ = write!(line, "**{scope}:** ");
    }
    let _ = writeln!(line, "{} ({})", commit.subject, commit.short_hash());
    if let Some(description) = &commit.breaking_description {
        for text in description.lines() {
            let _ = writeln!(line, "  {}", text.trim_end());
        }
    }
    line
}

/// The changelog with `section` placed above the newest existing release section.
pub fn prepend(existing: Option<&str>, section: &str) -> String {
    let existing = existing.unwrap_or(HEADER);
    match existing.find("\n## ") {
        Some(at) => {
            let (head, releases) = existing.split_at(at + 1);
            format!("{head}{section}\n{releases}")
        }
        None => {
            let head = existing.trim_end();
            format!("{head}\n\n{section}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(
        kind: Option<&str>,
        scope: Option<&str>,
        subject: &str,
        breaking: bool,
    ) -> ParsedCommit {
        ParsedCommit {
            hash: "a1b2c3d4e5f6".into(),
            kind: kind.map(str::to_string),
            scope: scope.map(str::to_string),
            subject: subject.into(),
            breaking,
            breaking_description: None,
        }
    }

    #[test]
    fn groups_in_order_and_each_commit_once() {
        let commits = vec![
            commit(Some("fix"), None, "close the lobby on leave", false),
            commit(Some("feat"), Some("ws"), "chat", false),
            commit(Some("feat"), Some("api"), "drop v0 routes", true),
            commit(Some("perf"), None, "cache views", false),
            commit(Some("docs"), None, "explain canary", false),
            commit(None, None, "Initial import", false),
        ];
        let version = semver::Version::new(0, 2, 0);
        let section = render_section(&version, "2026-11-26", &commits);
        assert_eq!(
            section,
            "## [0.2.0] - 2026-11-26\n\
             \n### Breaking changes\n\n- **api:** drop v0 routes (a1b2c3d)\n\
             \n### Features\n\n- **ws:** chat (a1b2c3d)\n\
             \n### Fixes\n\n- close the lobby on leave (a1b2c3d)\n\
             \n### Performance\n\n- cache views (a1b2c3d)\n\
             \n### Other\n\n- docs: explain canary (a1b2c3d)\n- Initial import (a1b2c3d)\n"
        );
    }

    #[test]
    fn breaking_footer_text_is_indented_under_its_entry() {
        let mut breaking = commit(Some("fix"), None, "rename vote", true);
        breaking.breaking_description = Some("clients must send `vote:cast`".into());
        let section = render_section(&semver::Version::new(1, 0, 0), "2026-01-01", &[breaking]);
        assert!(section.contains("- rename vote (a1b2c3d)\n  clients must send `vote:cast`\n"));
    }

    #[test]
    fn new_changelog_gets_a_header() {
        let out = prepend(None, "## [0.1.0] - 2026-01-01\n");
        assert!(out.starts_with("# Changelog\n"));
        assert!(out.ends_with("\n\n## [0.1.0] - 2026-01-01\n"));
    }

    #[test]
    fn newest_section_goes_first() {
        let old = "# Changelog\n\nintro\n\n## [0.1.0] - 2026-01-01\n\n- a\n";
        let out = prepend(Some(old), "## [0.2.0] - 2026-02-01\n\n- b\n");
        assert_eq!(
            out,
            "# Changelog\n\nintro\n\n## [0.2.0] - 2026-02-01\n\n- b\n\n## [0.1.0] - 2026-01-01\n\n- a\n"
        );
    }
}
