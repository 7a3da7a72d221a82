//! What the next release is, computed from git and the manifest without changing anything.

use std::path::Path;

use serde::Serialize;
use xshell::Shell;

use super::bump::{self, BumpRequest, Decision, Level};
use super::commits::ParsedCommit;
use super::{git, manifest};

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The last release (its tag's version), or the manifest's version before the first release.
    #[serde(serialize_with = "display")]
    pub current: semver::Version,
    pub last_tag: Option<String>,
    /// `None`: nothing to release.
    #[serde(serialize_with = "display_opt")]
    pub next: Option<semver::Version>,
    pub tag: Option<String>,
    /// `major`, `minor`, `patch`, `initial` (first release, version as in Cargo.toml) or `none`.
    pub bump: &'static str,
    pub rule: &'static str,
    pub commit_count: usize,
    pub commits: Vec<ParsedCommit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nothing_to_release: Option<String>,
}

impl Plan {
    pub fn compute(sh: &Shell, root: &Path, request: BumpRequest) -> anyhow::Result<Self> {
        let last = git::last_release_tag(sh)?;
        let raw = git::commits_since(sh, last.as_ref().map(|tag| tag.name.as_str()))?;
        let commits: Vec<ParsedCommit> = raw.iter().map(ParsedCommit::parse).collect();
        let (current, last_tag) = match last {
            Some(tag) => (tag.version, Some(tag.name)),
            None => (manifest::read_version(root)?, None),
        };
        Ok(Self::decide(current, last_tag, commits, request))
    }

    /// The pure part of `compute`: the rules applied to what git said.
    pub fn decide(
        current: semver::Version,
        last_tag: Option<String>,
        commits: Vec<ParsedCommit>,
        request: BumpRequest,
    ) -> Self {
        let mut plan = Self {
            current: current.clone(),
            last_tag,
            next: None,
            tag: None,
            bump: "none",
            rule: "",
            commit_count: commits.len(),
            commits,
            nothing_to_release: None,
        };
        if plan.commits.is_empty() {
            plan.rule = "no commits since the last release";
            plan.nothing_to_release = Some(match &plan.last_tag {
                Some(tag) => format!("nothing to release: no commits since {tag}"),
                None => "nothing to release: the repository has no commits".to_string(),
            });
            return plan;
        }
        if plan.last_tag.is_none() && request == BumpRequest::Auto {
            plan.bump = "initial";
            plan.rule = "first release: the version in Cargo.toml as it stands";
            plan.set_next(current);
            return plan;
        }
        let decision = Decision::decide(&current, request, &plan.commits);
        plan.rule = decision.rule(request);
        if decision.applied == Level::None {
            plan.nothing_to_release = Some(format!(
                "nothing to release: {} commit(s) since {}, none is feat, fix, perf or breaking \
                 (use --bump patch to release them anyway)",
                plan.commit_count,
                plan.last_tag.as_deref().unwrap_or("the start"),
            ));
            return plan;
        }
        plan.bump = match decision.applied {
            Level::Major => "major",
            Level::Minor => "minor",
            Level::Patch => "patch",
            Level::None => "none",
        };
        plan.set_next(bump::apply(&current, decision.applied));
        plan
    }

    fn set_next(&mut self, next: semver::Version) {
        self.tag = Some(format!("v{next}"));
        self.next = Some(next);
    }
}

fn display<S: serde::Serializer>(version: &semver::Version, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(version)
}

fn display_opt<S: serde::Serializer>(
    version: &Option<semver::Version>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match version {
        Some(version) => s.collect_str(version),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feat() -> ParsedCommit {
        ParsedCommit {
            hash: "abc".into(),
            kind: Some("feat".into()),
            scope: None,
            subject: "s".into(),
            breaking: false,
            breaking_description: None,
        }
    }

    #[test]
    fn first_release_keeps_the_manifest_version() {
        let plan = Plan::decide(
            semver::Version::new(0, 1, 0),
            None,
            vec![feat()],
            BumpRequest::Auto,
        );
        assert_eq!(plan.next, Some(semver::Version::new(0, 1, 0)));
        assert_eq!(plan.bump, "initial");
    }

    #[test]
    fn explicit_bump_before_the_first_release_applies_to_the_manifest_version() {
        let plan = Plan::decide(
            semver::Version::new(0, 1, 0),
            None,
            vec![feat()],
            BumpRequest::Major,
        );
        assert_eq!(plan.tag.as_deref(), Some("v1.0.0"));
    }

    #[test]
    fn no_commits_is_nothing_even_with_an_explicit_bump() {
        let plan = Plan::decide(
            semver::Version::new(0, 1, 0),
            Some("v0.1.0".into()),
            vec![],
            BumpRequest::Patch,
        );
        assert!(plan.next.is_none());
        assert!(plan.nothing_to_release.is_some());
    }
}
