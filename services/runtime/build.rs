//! Records the git revision for `build_info`. Image builds pass AVALON_GIT_REVISION because they have no `.git`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=AVALON_GIT_REVISION");
    let git_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    // HEAD moves on checkout, refs/heads on commit; watching these keeps rebuilds to revision changes.
    for watched in ["HEAD", "refs/heads"] {
        println!("cargo:rerun-if-changed={}", git_dir.join(watched).display());
    }
    let revision = std::env::var("AVALON_GIT_REVISION")
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=AVALON_GIT_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}
