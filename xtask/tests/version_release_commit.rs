//! `cargo xtask version` for real on scratch repositories: what it writes, commits and tags, and that a
//! second run and `--dry-run` change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::ScratchRepo;

fn released_repo() -> ScratchRepo {
    let repo = ScratchRepo::new().with_lockfile();
    repo.tag("v0.1.0");
    repo.change("feat(ws): lobby chat");
    repo.change("fix: close empty rooms");
    repo.change("perf(api): cache the history page");
    repo.change("docs: canary runbook");
    repo
}

#[test]
fn version_writes_manifest_lockfile_and_changelog_then_commits_and_tags() {
    let repo = released_repo();
    let manifest_before = repo.read("Cargo.toml");
    let plan = repo.xtask_json(&["version", "--json"]);
    assert_eq!(plan["status"], "released");
    assert_eq!(plan["next"], "0.2.0");

    // Only the version value changed; the comment above it survived.
    assert_eq!(
        repo.read("Cargo.toml"),
        manifest_before.replace("version = \"0.1.0\"", "version = \"0.2.0\"")
    );
    assert!(
        repo.read("Cargo.lock")
            .contains("name = \"app\"\nversion = \"0.2.0\"")
    );

    let changelog = repo.read("CHANGELOG.md");
    assert!(changelog.starts_with("# Changelog\n"), "{changelog}");
    let section = changelog
        .split_once("## [0.2.0] - 2025-11-26\n")
        .expect("section heading")
        .1;
    let features = section
        .find("### Features\n\n- **ws:** lobby chat (")
        .unwrap();
    let fixes = section.find("### Fixes\n\n- close empty rooms (").unwrap();
    let performance = section
        .find("### Performance\n\n- **api:** cache the history page (")
        .unwrap();
    let other = section
        .find("### Other\n\n- docs: canary runbook (")
        .unwrap();
    assert!(features < fixes && fixes < performance && performance < other);

    assert_eq!(
        repo.git(&["log", "-1", "--format=%s"]),
        "chore(release): v0.2.0"
    );
    assert_eq!(repo.git(&["describe", "--exact-match", "HEAD"]), "v0.2.0");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let committed = repo.git(&["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(committed, "CHANGELOG.md\nCargo.lock\nCargo.toml");
}

#[test]
fn second_run_changes_nothing() {
    let repo = released_repo();
    repo.xtask_json(&["version", "--json"]);
    let before = repo.snapshot();
    let head = repo.head();
    let again = repo.xtask_json(&["version", "--json"]);
    assert_eq!(again["status"], "nothing_to_release");
    assert_eq!(again["current"], "0.2.0");
    assert_eq!(repo.head(), head);
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn next_release_goes_above_the_previous_section() {
    let repo = released_repo();
    repo.xtask_json(&["version", "--json"]);
    repo.change("fix(ws)!: rename the vote event\n\nBREAKING CHANGE: clients send vote:cast");
    let plan = repo.xtask_json(&["version", "--json"]);
    assert_eq!(plan["next"], "0.3.0");
    let changelog = repo.read("CHANGELOG.md");
    let newer = changelog.find("## [0.3.0]").unwrap();
    let older = changelog.find("## [0.2.0]").unwrap();
    assert!(newer < older);
    assert!(changelog.contains("### Breaking changes\n\n- **ws:** rename the vote event ("));
    assert!(changelog.contains("  clients send vote:cast\n"));
    assert_eq!(changelog.matches("# Changelog").count(), 1);
}

#[test]
fn dry_run_leaves_the_repository_untouched() {
    let repo = released_repo();
    let before = repo.snapshot();
    let head = repo.head();
    let tags = repo.tags();
    let plan = repo.xtask_json(&["version", "--dry-run", "--json"]);
    assert_eq!(plan["status"], "planned");
    assert_eq!(plan["next"], "0.2.0");
    assert_eq!(repo.head(), head);
    assert_eq!(repo.tags(), tags);
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn human_output_names_the_next_version() {
    let repo = released_repo();
    let output = repo.xtask(&["version", "--dry-run"]);
    assert!(output.status.success());
    let stdout = support::stdout(&output);
    assert!(
        stdout.contains("next: 0.2.0 (minor: feat bumps minor)"),
        "{stdout}"
    );
    assert!(stdout.contains("would release v0.2.0"), "{stdout}");
    // Every git command is echoed before it runs.
    assert!(support::stderr(&output).contains("$ git status --porcelain"));
}
