//! `cargo xtask version --dry-run --json` on scratch repositories: one synthetic history per bump rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::ScratchRepo;

/// A repository released as `tag`, followed by `messages` as commits, and the planned next version.
fn plan_after(tag: &str, messages: &[&str], extra_args: &[&str]) -> serde_json::Value {
    let repo = ScratchRepo::with_version(tag.trim_start_matches('v'));
    repo.tag(tag);
    for message in messages {
        repo.change(message);
    }
    let mut args = vec!["version", "--dry-run", "--json"];
    args.extend_from_slice(extra_args);
    repo.xtask_json(&args)
}

fn next_after(tag: &str, messages: &[&str]) -> serde_json::Value {
    plan_after(tag, messages, &[])["next"].clone()
}

#[test]
fn feat_after_v0_1_0_plans_0_2_0() {
    let plan = plan_after("v0.1.0", &["feat: lobby chat"], &[]);
    assert_eq!(plan["current"], "0.1.0");
    assert_eq!(plan["next"], "0.2.0");
    assert_eq!(plan["bump"], "minor");
    assert_eq!(plan["status"], "planned");
    assert_eq!(plan["commit_count"], 1);
    let commit = &plan["commits"][0];
    assert_eq!(commit["type"], "feat");
    assert_eq!(commit["subject"], "lobby chat");
    assert_eq!(commit["breaking"], false);
}

#[test]
fn feat_bumps_minor() {
    assert_eq!(next_after("v1.2.3", &["feat(api): game history"]), "1.3.0");
}

#[test]
fn fix_bumps_patch() {
    assert_eq!(
        next_after("v1.2.3", &["fix(ws): resend view on reconnect"]),
        "1.2.4"
    );
}

#[test]
fn perf_bumps_patch() {
    assert_eq!(
        next_after("v1.2.3", &["perf: fan out once per instance"]),
        "1.2.4"
    );
}

#[test]
fn bang_bumps_major() {
    let plan = plan_after("v1.2.3", &["fix: typo", "feat(api)!: drop v0 routes"], &[]);
    assert_eq!(plan["next"], "2.0.0");
    assert_eq!(plan["commits"][1]["breaking"], true);
    assert_eq!(plan["commits"][1]["scope"], "api");
}

#[test]
fn breaking_change_footer_bumps_major() {
    let message = "refactor: rename vote event\n\nBREAKING CHANGE: clients must send vote:cast";
    assert_eq!(next_after("v1.2.3", &[message]), "2.0.0");
}

#[test]
fn breaking_change_below_one_bumps_minor() {
    let plan = plan_after("v0.3.1", &["feat!: new protocol"], &[]);
    assert_eq!(plan["next"], "0.4.0");
    assert_eq!(plan["bump"], "minor");
    assert!(plan["rule"].as_str().unwrap().contains("below 1.0.0"));
}

#[test]
fn fix_below_one_bumps_patch() {
    assert_eq!(next_after("v0.1.0", &["fix: off by one"]), "0.1.1");
}

#[test]
fn explicit_major_leaves_zero_x() {
    assert_eq!(
        plan_after("v0.9.0", &["fix: x"], &["--bump", "major"])["next"],
        "1.0.0"
    );
}

#[test]
fn chores_alone_are_nothing_to_release_unless_forced() {
    let plan = plan_after(
        "v0.1.0",
        &["docs: explain", "chore: tidy", "not conventional"],
        &[],
    );
    assert_eq!(plan["status"], "nothing_to_release");
    assert_eq!(plan["next"], serde_json::Value::Null);
    assert_eq!(plan["commit_count"], 3);
    assert_eq!(plan["commits"][2]["type"], serde_json::Value::Null);
    let forced = plan_after("v0.1.0", &["docs: explain"], &["--bump", "patch"]);
    assert_eq!(forced["next"], "0.1.1");
}

#[test]
fn no_commits_since_the_tag_is_nothing_to_release() {
    let repo = ScratchRepo::new();
    repo.tag("v0.1.0");
    let plan = repo.xtask_json(&["version", "--json"]);
    assert_eq!(plan["status"], "nothing_to_release");
    assert_eq!(plan["commit_count"], 0);
    let forced = repo.xtask_json(&["version", "--bump", "minor", "--json"]);
    assert_eq!(forced["status"], "nothing_to_release");
}

#[test]
fn the_newest_semver_tag_is_the_base() {
    let repo = ScratchRepo::new();
    repo.tag("v0.1.0");
    repo.change("feat: a");
    repo.tag("v0.2.0");
    repo.tag("vnext-not-semver");
    repo.change("fix: b");
    let plan = repo.xtask_json(&["version", "--dry-run", "--json"]);
    assert_eq!(plan["last_tag"], "v0.2.0");
    assert_eq!(plan["next"], "0.2.1");
    assert_eq!(plan["commit_count"], 1);
}

#[test]
fn first_release_uses_the_manifest_version() {
    let repo = ScratchRepo::with_version("0.1.0");
    repo.change("runtime: layered config");
    let plan = repo.xtask_json(&["version", "--dry-run", "--json"]);
    assert_eq!(plan["last_tag"], serde_json::Value::Null);
    assert_eq!(plan["next"], "0.1.0");
    assert_eq!(plan["bump"], "initial");
    assert_eq!(plan["commit_count"], 2);
}

#[test]
fn dirty_tree_is_refused() {
    let repo = ScratchRepo::new();
    repo.tag("v0.1.0");
    repo.change("feat: x");
    repo.write("app/src/main.rs", "fn main() { println!(\"edited\"); }\n");
    let before = repo.snapshot();
    for args in [&["version"][..], &["version", "--dry-run", "--json"][..]] {
        let output = repo.xtask(args);
        assert!(!output.status.success(), "{args:?} accepted a dirty tree");
        let stderr = support::stderr(&output);
        assert!(stderr.contains("working tree is dirty"), "{stderr}");
        assert!(stderr.contains("app/src/main.rs"), "{stderr}");
    }
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn resolve_answers_the_newest_release_or_checks_the_requested_one() {
    let repo = ScratchRepo::new();
    repo.tag("v0.1.0");
    repo.change("feat: a");
    repo.tag("v0.2.0");
    repo.change("fix: unreleased");
    let output_file = repo.path().join("github_output");
    let newest = repo.xtask_json(&["version", "--resolve", "", "--json"]);
    assert_eq!(newest["version"], "0.2.0");
    assert_eq!(
        repo.xtask_json(&["version", "--resolve", "--json"])["tag"],
        "v0.2.0"
    );
    assert_eq!(
        repo.xtask_json(&["version", "--resolve", "v0.1.0", "--json"])["version"],
        "0.1.0"
    );

    // A manual deploy passes an empty outcome: the same as none.
    assert_eq!(
        repo.xtask_json(&[
            "version",
            "--resolve",
            "",
            "--release-outcome",
            "",
            "--json"
        ])["version"],
        "0.2.0"
    );
    let outcome = repo.path().join("outcome.json");
    std::fs::write(
        &outcome,
        r#"{"released": false, "reason": "no releasable commits", "current": "0.2.0"}"#,
    )
    .unwrap();
    let nothing = repo.xtask_json(&[
        "version",
        "--resolve",
        "--release-outcome",
        outcome.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(nothing["released"], false, "{nothing}");

    let missing = repo.xtask(&["version", "--resolve", "0.9.0"]);
    assert!(!missing.status.success());
    assert!(support::stderr(&missing).contains("0.9.0 was never released"));
    let garbage = repo.xtask(&["version", "--resolve", "latest"]);
    assert!(support::stderr(&garbage).contains("\"latest\" is not a version"));

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["version", "--resolve", ""])
        .env("AVALON_PROJECT_ROOT", repo.path())
        .env("GITHUB_OUTPUT", &output_file)
        .env("AVALON_IMAGE_REGISTRY", "ghcr.io/owner")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&output_file).unwrap(),
        "released=true\nversion=0.2.0\ntag=v0.2.0\n\
         api_image=ghcr.io/owner/avalon-api:0.2.0\nws_image=ghcr.io/owner/avalon-ws:0.2.0\n"
    );
}
