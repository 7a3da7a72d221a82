//! The workspace version in the root Cargo.toml (`[workspace.package] version`) and Cargo.lock.

use std::path::Path;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

pub const MANIFEST: &str = "Cargo.toml";
pub const LOCKFILE: &str = "Cargo.lock";

pub fn read_version(root: &Path) -> anyhow::Result<semver::Version> {
    let document = load(root)?;
    let Some(version) = document
        .get("workspace")
        .and_then(|workspace| workspace.get("package"))
        .and_then(|package| package.get("version"))
    else {
        bail!(
            "{MANIFEST}: `[workspace.package] version` is missing; members inherit the release version from it"
        );
    };
    let text = version
        .as_str()
        .context("Cargo.toml: `[workspace.package] version` must be a string")?;
    semver::Version::parse(text).with_context(|| {
        format!("Cargo.toml: `[workspace.package] version` = {text:?} is not semver")
    })
}

/// Rewrites only the version value; comments, order and formatting stay as they are.
pub fn write_version(root: &Path, version: &semver::Version) -> anyhow::Result<()> {
    let mut document = load(root)?;
    let package = document
        .get_mut("workspace")
        .and_then(|workspace| workspace.get_mut("package"))
        .and_then(|package| package.as_table_like_mut())
        .context("Cargo.toml: `[workspace.package]` table is missing")?;
    let Some(item) = package.get_mut("version") else {
        bail!("{MANIFEST}: `[workspace.package] version` is missing");
    };
    let decor = item.as_value().map(|value| value.decor().clone());
    let mut value = toml_edit::Value::from(version.to_string());
    if let Some(decor) = decor {
        *value.decor_mut() = decor;
    }
    *item = toml_edit::Item::Value(value);
    let path = root.join(MANIFEST);
    std::fs::write(&path, document.to_string())
        .with_context(|| format!("writing {}", path.display()))
}

/// Brings the workspace members' entries in Cargo.lock to the new version without touching dependencies.
pub fn update_lockfile(sh: &Shell, root: &Path) -> anyhow::Result<bool> {
    if !root.join(LOCKFILE).exists() {
        return Ok(false);
    }
    cmd!(sh, "cargo update --workspace --offline")
        .run()
        .context("cargo update --workspace --offline failed")?;
    Ok(true)
}

fn load(root: &Path) -> anyhow::Result<toml_edit::DocumentMut> {
    let path = root.join(MANIFEST);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let original = "[workspace]\nmembers = [\"a\"]\n\n[workspace.package]\nversion = \"0.1.0\" # the release\nedition = \"2024\"\n";
        std::fs::write(dir.path().join(MANIFEST), original).unwrap();
        write_version(dir.path(), &semver::Version::new(0, 2, 0)).unwrap();
        let updated = std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap();
        assert_eq!(updated, original.replace("0.1.0", "0.2.0"));
        assert_eq!(
            read_version(dir.path()).unwrap(),
            semver::Version::new(0, 2, 0)
        );
    }

    #[test]
    fn missing_workspace_version_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "[workspace]\nmembers = []\n").unwrap();
        let error = read_version(dir.path()).unwrap_err().to_string();
        assert!(error.contains("[workspace.package] version"), "{error}");
    }
}
