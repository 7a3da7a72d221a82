//! `cargo xtask release` on scratch repositories: the dry run changes nothing, nothing to release is a clean
//! no-op, and an interrupted release resumes without cutting the version twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::ScratchRepo;

fn repo_with_a_feature() -> ScratchRepo {
    let repo = ScratchRepo::new().with_lockfile();
    repo.tag("v0.1.0");
    repo.change("feat(api): game history");
    repo
}

#[test]
fn release_dry_run_prints_the_plan_and_changes_nothing() {
    let repo = repo_with_a_feature();
    let before = repo.snapshot();
    let plan = repo.xtask_json(&["release", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["version"], "0.2.0");
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["ci", "version", "images", "publish", "notes"]);
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "pending")
    );
    assert_eq!(
        plan["steps"][2]["commands"][0],
        "cargo xtask image build --json"
    );
    assert!(
        plan["steps"][3]["commands"][0]
            .as_str()
            .unwrap()
            .starts_with("cargo xtask image export --out ")
    );
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn push_without_a_registry_is_refused_before_anything_runs() {
    let repo = repo_with_a_feature();
    let before = repo.snapshot();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["release", "--push", "--skip-ci"])
        .env("AVALON_PROJECT_ROOT", repo.path())
        .env_remove("AVALON_IMAGE_REGISTRY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(support::stderr(&output).contains("--push needs a registry"));
    assert_eq!(repo.snapshot(), before);
}

#[test]
fn nothing_to_release_is_a_clean_no_op() {
    let repo = ScratchRepo::new();
    repo.tag("v0.1.0");
    repo.change("docs: typo");
    let before = repo.snapshot();
    let summary = repo.xtask_json(&["release", "--skip-ci"]);
    assert_eq!(summary["released"], false);
    assert!(
        summary["reason"]
            .as_str()
            .unwrap()
            .contains("none is feat, fix, perf or breaking")
    );
    // The one thing written: the git-ignored outcome record the deploy workflow reads ("nothing released").
    let after = repo.snapshot();
    let outcome: serde_json::Value = serde_json::from_slice(
        after
            .file(".avalon/release/outcome.json")
            .expect("outcome.json"),
    )
    .unwrap();
    assert_eq!(outcome["released"], false, "{outcome}");
    assert_eq!(after.without(".avalon/release/outcome.json"), before);
}

/// The scratch repository has no `cargo xtask image` (no xtask at all), so the images step fails every
/// time: exactly an interruption after the version was cut.
#[test]
fn an_interrupted_release_resumes_after_the_finished_steps() {
    let repo = repo_with_a_feature();
    let first = repo.xtask(&["release", "--skip-ci"]);
    assert!(
        !first.status.success(),
        "the images step cannot succeed here"
    );
    let stderr = support::stderr(&first);
    assert!(stderr.contains("image build failed"), "{stderr}");
    assert!(
        stderr.contains("$ cargo xtask image build --json"),
        "{stderr}"
    );

    // The version was cut once and recorded.
    assert_eq!(repo.git(&["describe", "--exact-match", "HEAD"]), "v0.2.0");
    let release_commit = repo.head();
    let state: serde_json::Value =
        serde_json::from_str(&repo.read(".avalon/release/v0.2.0/state.json")).unwrap();
    assert_eq!(state["steps"]["ci"]["report"]["skipped"], "--skip-ci");
    assert_eq!(state["steps"]["version"]["report"]["created"], true);
    assert!(state["steps"].get("images").is_none());

    let second = repo.xtask(&["release", "--skip-ci"]);
    assert!(!second.status.success());
    let stderr = support::stderr(&second);
    assert!(
        stderr.contains("release v0.2.0: ci already done, skipping"),
        "{stderr}"
    );
    assert!(
        stderr.contains("release v0.2.0: version already done, skipping"),
        "{stderr}"
    );
    assert_eq!(repo.head(), release_commit, "no second release commit");
    assert_eq!(repo.tags(), ["v0.1.0", "v0.2.0"]);

    let plan = repo.xtask_json(&["release", "--dry-run"]);
    assert_eq!(plan["version"], "0.2.0");
    let status: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(status, ["done", "done", "pending", "pending", "pending"]);
}
