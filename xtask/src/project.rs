//! Where the project lives, independent of the directory `cargo xtask` was started from.

use std::path::{Path, PathBuf};

/// Overrides the project root. Tests point it at a scratch git repository so commands that commit, tag or
/// build (`version`, `release`) can be exercised without touching this checkout.
pub const ROOT_OVERRIDE_VAR: &str = "AVALON_PROJECT_ROOT";

/// The workspace root: `AVALON_PROJECT_ROOT` when set, else the directory above xtask's manifest.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os(ROOT_OVERRIDE_VAR).filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory, honouring CARGO_TARGET_DIR as cargo does.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        }
        None => root().join("target"),
    }
}
