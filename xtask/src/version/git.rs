//! The git operations `version` and `release` need, each printed before it runs.

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

/// Runs a read-only git command, echoing it first (xshell only echoes `run`).
fn read(command: xshell::Cmd<'_>) -> anyhow::Result<String> {
    eprintln!("$ {command}");
    Ok(command.read()?)
}

/// One commit as git stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommit {
    pub hash: String,
    pub message: String,
}

/// The newest release tag reachable from HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTag {
    pub name: String,
    pub version: semver::Version,
}

pub fn ensure_repository(sh: &Shell) -> anyhow::Result<()> {
    read(cmd!(sh, "git rev-parse --verify HEAD"))
        .map(|_| ())
        .context("not a git repository with at least one commit")
}

/// Refuses uncommitted changes and untracked files: a release must be reproducible from its tag.
pub fn ensure_clean(sh: &Shell) -> anyhow::Result<()> {
    let status = read(cmd!(sh, "git status --porcelain"))?;
    if status.trim().is_empty() {
        return Ok(());
    }
    let paths: Vec<&str> = status.lines().take(10).collect();
    bail!(
        "the working tree is dirty; commit or remove these changes first (a release must be reproducible from its tag):\n  {}",
        paths.join("\n  ")
    )
}

/// The highest-versioned `v<semver>` tag merged into HEAD; tags that are not semver are ignored.
pub fn last_release_tag(sh: &Shell) -> anyhow::Result<Option<ReleaseTag>> {
    let tags = read(cmd!(sh, "git tag --merged HEAD --list v*"))?;
    Ok(tags
        .lines()
        .filter_map(|name| {
            let version = semver::Version::parse(name.strip_prefix('v')?).ok()?;
            Some(ReleaseTag {
                name: name.to_string(),
                version,
            })
        })
        .max_by(|a, b| a.version.cmp(&b.version)))
}

/// Release tags pointing at HEAD itself, highest first (a tag-triggered or resumed release).
pub fn release_tags_at_head(sh: &Shell) -> anyhow::Result<Vec<ReleaseTag>> {
    let tags = read(cmd!(sh, "git tag --points-at HEAD --list v*"))?;
    let mut found: Vec<ReleaseTag> = tags
        .lines()
        .filter_map(|name| {
            let version = semver::Version::parse(name.strip_prefix('v')?).ok()?;
            Some(ReleaseTag {
                name: name.to_string(),
                version,
            })
        })
        .collect();
    found.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(found)
}

pub fn head(sh: &Shell) -> anyhow::Result<String> {
    read(cmd!(sh, "git rev-parse HEAD"))
}

/// The checked-out branch, `None` on a detached HEAD (a tag checkout).
pub fn current_branch(sh: &Shell) -> anyhow::Result<Option<String>> {
    eprintln!("$ git symbolic-ref --quiet --short HEAD");
    let output = cmd!(sh, "git symbolic-ref --quiet --short HEAD")
        .quiet()
        .ignore_status()
        .output()?;
    Ok(output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
}

pub fn tag_exists(sh: &Shell, tag: &str) -> anyhow::Result<bool> {
    let reference = format!("refs/tags/{tag}");
    eprintln!("$ git show-ref --verify --quiet {reference}");
    Ok(cmd!(sh, "git show-ref --verify --quiet {reference}")
        .quiet()
        .ignore_status()
        .output()?
        .status
        .success())
}

/// Non-merge commits after `since` (or the whole history), oldest first.
pub fn commits_since(sh: &Shell, since: Option<&str>) -> anyhow::Result<Vec<RawCommit>> {
    const FIELD: char = '\u{1f}';
    const RECORD: char = '\u{1e}';
    let range = match since {
        Some(tag) => format!("{tag}..HEAD"),
        None => "HEAD".to_string(),
    };
    let log = read(cmd!(
        sh,
        "git log --no-merges --reverse --format=%H%x1f%B%x1e {range}"
    ))?;
    Ok(log
        .split(RECORD)
        .filter_map(|record| {
            let record = record.trim_start_matches('\n');
            let (hash, message) = record.split_once(FIELD)?;
            Some(RawCommit {
                hash: hash.trim().to_string(),
                message: message.trim().to_string(),
            })
        })
        .collect())
}

/// Commits the given paths only, so nothing else staged by accident rides along.
pub fn commit_paths(sh: &Shell, message: &str, paths: &[&str]) -> anyhow::Result<()> {
    cmd!(sh, "git add -- {paths...}").run()?;
    cmd!(sh, "git commit --quiet -m {message} -- {paths...}")
        .run()
        .context(
            "git commit failed (is user.name/user.email or GIT_AUTHOR_*/GIT_COMMITTER_* set?)",
        )?;
    Ok(())
}

pub fn annotated_tag(sh: &Shell, tag: &str, message: &str) -> anyhow::Result<()> {
    cmd!(sh, "git tag --annotate {tag} -m {message}").run()?;
    Ok(())
}
