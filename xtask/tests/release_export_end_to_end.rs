//! `cargo xtask release` end to end on this machine, through the export path (no registry): a clone of
//! this repository gets a `feat:` commit, and the release cuts the version, builds both images with the
//! release tags, exports them as tarballs with checksums and writes the notes. Nothing is pushed anywhere.
//!
//! ci is skipped (`--skip-ci`): it is the suite this test is part of. The clone builds into this build's
//! target directory so only the workspace crates compile again; the binaries it places at the top of that
//! directory (target/debug/xtask, target/release/avalon-*) are put back afterwards, see `TopLevelBinaries`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stack_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use stack_support::top_level_binaries::TopLevelBinaries;

fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// target/ of this build: the xtask binary lives in target/<profile>/.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn docker_usable() -> bool {
    avalon_testkit::require_tool("docker").is_some()
        && Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// About 3 minutes on 2 cores: the clone's workspace crates compile again (the dependencies are shared
/// with the image test that runs before it in the same target directory).
#[test]
fn release_builds_and_exports_images_for_the_new_version() {
    if !docker_usable() {
        avalon_testkit::skip(
            "docker-engine",
            "no usable Docker engine (`docker info` fails): start dockerd to run this test",
        );
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("avalon-ops");
    git(
        scratch.path(),
        &[
            "clone",
            "--quiet",
            "--no-hardlinks",
            project_root().to_str().unwrap(),
            "avalon-ops",
        ],
    );
    if !clone.join("xtask/src/image/mod.rs").is_file() {
        avalon_testkit::skip(
            "release-export-without-image-command",
            "this commit has no `cargo xtask image` (xtask/src/image) to release with",
        );
        return;
    }
    for (key, value) in [
        ("user.name", "Release Test"),
        ("user.email", "release-test@example.invalid"),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
    ] {
        git(&clone, &["config", key, value]);
    }
    // An unusual version, so the image tags cannot collide with the project's own.
    git(&clone, &["tag", "--annotate", "v0.90.0", "-m", "test base"]);
    std::fs::write(clone.join("RELEASE_TEST.md"), "release test\n").unwrap();
    git(&clone, &["add", "RELEASE_TEST.md"]);
    git(
        &clone,
        &["commit", "--quiet", "-m", "feat: release end to end test"],
    );

    let _binaries = TopLevelBinaries::save(
        &target_dir(),
        &["debug/xtask", "release/avalon-api", "release/avalon-ws"],
    );
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["release", "--skip-ci"])
        .current_dir(&clone)
        .env("AVALON_PROJECT_ROOT", &clone)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("AVALON_IMAGE_REGISTRY")
        .env_remove("AVALON_IMAGE_FROM")
        .output()
        .unwrap();
    // Remove the images whatever happened: the tags follow from the release commit.
    let revision = git(&clone, &["rev-parse", "--short=12", "HEAD"]);
    let mut rmi = Command::new("docker");
    rmi.arg("rmi");
    for repository in ["avalon-api", "avalon-ws"] {
        for tag in [
            "0.91.0".to_string(),
            format!("0.91.0-{revision}"),
            format!("sha-{revision}"),
        ] {
            rmi.arg(format!("{repository}:{tag}"));
        }
    }
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let summary: Option<serde_json::Value> = serde_json::from_slice(&output.stdout).ok();
    let result = std::panic::catch_unwind(|| {
        assert!(output.status.success(), "release failed:\n{stderr}");
        check(
            &clone,
            summary.as_ref().expect("summary JSON on stdout"),
            &stderr,
        );
    });
    let _ = rmi.output();
    result.unwrap();
}

fn check(clone: &Path, summary: &serde_json::Value, stderr: &str) {
    assert_eq!(summary["released"], true);
    assert_eq!(summary["version"], "0.91.0");
    assert_eq!(summary["pushed"], false);
    assert_eq!(
        git(clone, &["describe", "--exact-match", "HEAD"]),
        "v0.91.0"
    );
    assert!(
        std::fs::read_to_string(clone.join("Cargo.toml"))
            .unwrap()
            .contains("version = \"0.91.0\"")
    );
    assert!(
        stderr.contains("$ cargo xtask image build --json"),
        "{stderr}"
    );

    let images = summary["images"].as_array().unwrap();
    let services: Vec<&str> = images
        .iter()
        .map(|i| i["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["api", "ws"]);
    for image in images {
        let tags: Vec<&str> = image["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(tags.iter().any(|t| t.ends_with(":0.91.0")), "{tags:?}");
        assert!(image["id"].as_str().unwrap().starts_with("sha256:"));
        let export = &image["exports"][0];
        let file = PathBuf::from(export["file"].as_str().unwrap());
        assert!(
            file.starts_with(clone.join(".avalon/release/v0.91.0/images")),
            "{}",
            file.display()
        );
        let digest = format!("{:x}", Sha256::digest(std::fs::read(&file).unwrap()));
        assert_eq!(export["sha256"].as_str().unwrap(), digest);
        let sums = std::fs::read_to_string(file.with_extension("tar.sha256")).unwrap();
        assert!(sums.starts_with(&digest), "{sums}");
    }

    let notes = std::fs::read_to_string(summary["notes"].as_str().unwrap()).unwrap();
    assert!(notes.starts_with("# Avalon Ops v0.91.0\n"), "{notes}");
    assert!(
        notes.contains("### Features\n\n- release end to end test ("),
        "{notes}"
    );
    assert!(notes.contains("## Exported images"), "{notes}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(clone.join(".avalon/release/v0.91.0/state.json")).unwrap(),
    )
    .unwrap();
    for step in ["ci", "version", "images", "publish", "notes"] {
        assert!(
            state["steps"].get(step).is_some(),
            "{step} not recorded: {state}"
        );
    }
}
