//! Conventional-commit parsing (via `git-conventional`) into what the bump rules and the changelog need.

use serde::Serialize;

use super::git::RawCommit;

/// A commit as the release tooling sees it. Commits that do not follow the convention are kept (they go to
/// "Other" in the changelog) but never bump the version on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedCommit {
    pub hash: String,
    /// The conventional type (`feat`, `fix`, …), lower-cased; `None` when the message is not conventional.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub scope: Option<String>,
    pub subject: String,
    pub breaking: bool,
    /// The `BREAKING CHANGE:` footer's text, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaking_description: Option<String>,
}

impl ParsedCommit {
    pub fn parse(raw: &RawCommit) -> Self {
        match git_conventional::Commit::parse(&raw.message) {
            Ok(commit) => {
                let footer = commit
                    .footers()
                    .iter()
                    .find(|footer| footer.breaking())
                    .map(|footer| footer.value().trim().to_string());
                Self {
                    hash: raw.hash.clone(),
                    kind: Some(commit.type_().as_str().to_ascii_lowercase()),
                    scope: commit.scope().map(|scope| scope.as_str().to_string()),
                    subject: commit.description().trim().to_string(),
                    breaking: commit.breaking(),
                    breaking_description: footer,
                }
            }
            Err(_) => Self {
                hash: raw.hash.clone(),
                kind: None,
                scope: None,
                subject: raw
                    .message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                breaking: false,
                breaking_description: None,
            },
        }
    }

    pub fn short_hash(&self) -> &str {
        self.hash.get(..7).unwrap_or(&self.hash)
    }

    pub fn is(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(message: &str) -> ParsedCommit {
        ParsedCommit::parse(&RawCommit {
            hash: "0123456789abcdef".into(),
            message: message.into(),
        })
    }

    #[test]
    fn feature_with_scope() {
        let commit = parse("feat(api): add history paging");
        assert_eq!(commit.kind.as_deref(), Some("feat"));
        assert_eq!(commit.scope.as_deref(), Some("api"));
        assert_eq!(commit.subject, "add history paging");
        assert!(!commit.breaking);
    }

    #[test]
    fn bang_marks_breaking() {
        assert!(parse("fix(ws)!: rename the vote event").breaking);
    }

    #[test]
    fn footer_marks_breaking_and_keeps_its_text() {
        let commit = parse(
            "perf: cache views\n\nBody.\n\nBREAKING CHANGE: views are now eventually consistent",
        );
        assert!(commit.breaking);
        assert_eq!(
            commit.breaking_description.as_deref(),
            Some("views are now eventually consistent")
        );
    }

    #[test]
    fn non_conventional_message_keeps_its_first_line() {
        let commit = parse("Merge the thing\n\nlong body");
        assert_eq!(commit.kind, None);
        assert_eq!(commit.subject, "Merge the thing");
        assert_eq!(commit.short_hash(), "0123456");
    }

    #[test]
    fn type_is_case_insensitive() {
        assert!(parse("FEAT: shout").is("feat"));
    }
}
