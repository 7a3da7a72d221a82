//! Every shell script of the project is shellcheck-clean: the host wrappers, the CI entry point, the image
//! staging script, and the scripts xtask runs inside containers (the edge writer `xtask/src/nginx/edge.sh`
//! and its request loop, both compiled in with `include_str!`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `*.sh` files under `dir`, recursively (build output and dependencies left out).
fn scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(
                name.as_str(),
                "target" | ".git" | "node_modules" | ".avalon"
            ) {
                scripts(&path, found);
            }
        } else if name.ends_with(".sh") {
            found.push(path);
        }
    }
}

#[test]
fn every_shell_script_is_shellcheck_clean() {
    let root = workspace_root();
    let mut found = vec![root.join(".ci/run")];
    for dir in ["scripts", "docker", "xtask/src"] {
        scripts(&root.join(dir), &mut found);
    }
    let edge = root.join("xtask/src/nginx/edge.sh");
    assert!(found.contains(&edge), "{found:?}");
    if avalon_testkit::require_tool("shellcheck").is_none() {
        return;
    }
    // The edge scripts run under the container's `sh` (busybox in the alpine and offline images).
    let (inside, on_hosts): (Vec<&PathBuf>, Vec<&PathBuf>) = found
        .iter()
        .partition(|path| path.starts_with(root.join("xtask")));
    shellcheck(&root, &["--shell", "sh"], &inside);
    shellcheck(&root, &[], &on_hosts);
}

fn shellcheck(root: &Path, options: &[&str], files: &[&PathBuf]) {
    let output = Command::new("shellcheck")
        .current_dir(root)
        .args(options)
        .args(files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shellcheck {options:?} findings:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
