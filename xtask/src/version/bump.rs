//! The version bump rules.
//!
//! From 1.0.0 on, plain semver: a breaking change bumps major, `feat` minor, `fix`/`perf` patch.
//! Below 1.0.0 we follow Cargo's reading of semver (also cargo-release's): the minor number is the
//! compatibility boundary, so a breaking change bumps **minor**, `feat` bumps minor, `fix`/`perf` patch, and
//! leaving 0.x is a deliberate `--bump major`, never an accident of a commit message.

use clap::ValueEnum;
use semver::Version;
use serde::Serialize;

use super::commits::ParsedCommit;

/// What `--bump` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BumpRequest {
    /// Derived from the commits since the last release.
    Auto,
    Major,
    Minor,
    Patch,
}

/// The size of a change, ordered so the largest commit wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    None,
    Patch,
    Minor,
    Major,
}

impl Level {
    pub fn of(commit: &ParsedCommit) -> Self {
        if commit.breaking {
            Level::Major
        } else if commit.is("feat") {
            Level::Minor
        } else if commit.is("fix") || commit.is("perf") {
            Level::Patch
        } else {
            Level::None
        }
    }

    pub fn of_all(commits: &[ParsedCommit]) -> Self {
        commits.iter().map(Self::of).max().unwrap_or(Level::None)
    }
}

/// The bump decided for a release: the level the commits call for and the level actually applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub requested: Level,
    pub applied: Level,
}

impl Decision {
    /// `applied` is `Level::None` when nothing in `commits` calls for a release and no bump was asked for.
    pub fn decide(current: &Version, request: BumpRequest, commits: &[ParsedCommit]) -> Self {
        match request {
            BumpRequest::Major => Self::explicit(Level::Major),
            BumpRequest::Minor => Self::explicit(Level::Minor),
            BumpRequest::Patch => Self::explicit(Level::Patch),
            BumpRequest::Auto => {
                let requested = Level::of_all(commits);
                let applied = if current.major == 0 && requested == Level::Major {
                    Level::Minor
                } else {
                    requested
                };
                Self { requested, applied }
            }
        }
    }

    fn explicit(level: Level) -> Self {
        Self {
            requested: level,
            applied: level,
        }
    }

    /// Why the bump is what it is, in one line for humans and `--json`.
    pub fn rule(&self, request: BumpRequest) -> &'static str {
        match (request, self.requested, self.applied) {
            (BumpRequest::Auto, Level::Major, Level::Minor) => {
                "breaking change below 1.0.0 bumps minor (0.x: minor is the compatibility boundary)"
            }
            (BumpRequest::Auto, Level::Major, _) => "breaking change bumps major",
            (BumpRequest::Auto, Level::Minor, _) => "feat bumps minor",
            (BumpRequest::Auto, Level::Patch, _) => "fix/perf bumps patch",
            (BumpRequest::Auto, Level::None, _) => "no feat, fix, perf or breaking change",
            _ => "bump requested with --bump",
        }
    }
}

pub fn apply(current: &Version, level: Level) -> Version {
    let mut next = match level {
        Level::Major => Version::new(current.major + 1, 0, 0),
        Level::Minor => Version::new(current.major, current.minor + 1, 0),
        Level::Patch if current.pre.is_empty() => {
            Version::new(current.major, current.minor, current.patch + 1)
        }
        // 1.2.3-rc.1 + patch = 1.2.3: the pre-release becomes the release.
        Level::Patch => Version::new(current.major, current.minor, current.patch),
        Level::None => current.clone(),
    };
    next.pre = semver::Prerelease::EMPTY;
    next.build = semver::BuildMetadata::EMPTY;
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(kind: &str, breaking: bool) -> ParsedCommit {
        ParsedCommit {
            hash: "abc".into(),
            kind: Some(kind.into()),
            scope: None,
            subject: "s".into(),
            breaking,
            breaking_description: None,
        }
    }

    fn next(current: &str, commits: &[ParsedCommit]) -> String {
        let current = Version::parse(current).unwrap();
        let decision = Decision::decide(&current, BumpRequest::Auto, commits);
        apply(&current, decision.applied).to_string()
    }

    #[test]
    fn rules_at_and_above_one() {
        assert_eq!(next("1.2.3", &[commit("feat", false)]), "1.3.0");
        assert_eq!(next("1.2.3", &[commit("fix", false)]), "1.2.4");
        assert_eq!(next("1.2.3", &[commit("perf", false)]), "1.2.4");
        assert_eq!(next("1.2.3", &[commit("fix", true)]), "2.0.0");
        assert_eq!(next("1.2.3", &[commit("docs", false)]), "1.2.3");
    }

    #[test]
    fn largest_commit_wins() {
        let commits = [
            commit("fix", false),
            commit("feat", false),
            commit("chore", false),
        ];
        assert_eq!(next("1.0.0", &commits), "1.1.0");
    }

    #[test]
    fn below_one_breaking_bumps_minor() {
        assert_eq!(next("0.1.0", &[commit("feat", false)]), "0.2.0");
        assert_eq!(next("0.1.0", &[commit("feat", true)]), "0.2.0");
        assert_eq!(next("0.1.0", &[commit("fix", false)]), "0.1.1");
    }

    #[test]
    fn explicit_major_leaves_zero() {
        let current = Version::parse("0.4.2").unwrap();
        let decision = Decision::decide(&current, BumpRequest::Major, &[]);
        assert_eq!(apply(&current, decision.applied).to_string(), "1.0.0");
    }

    #[test]
    fn patch_of_a_prerelease_releases_it() {
        let current = Version::parse("1.0.0-rc.1").unwrap();
        assert_eq!(apply(&current, Level::Patch).to_string(), "1.0.0");
    }
}
