//! What an image build is called: the workspace version, the git revision and whether the tree is dirty.

use anyhow::Context;
use xshell::{Shell, cmd};

/// The identity stamped into tags, OCI labels and the binaries (AVALON_GIT_REVISION).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildIdentity {
    pub version: String,
    /// Short git revision (12 hex digits), `unknown` outside a git checkout.
    pub sha: String,
    pub dirty: bool,
}

impl BuildIdentity {
    /// Reads the revision and dirtiness from git in the project root.
    pub fn from_git(sh: &Shell) -> anyhow::Result<BuildIdentity> {
        let sha = cmd!(sh, "git rev-parse --short=12 HEAD")
            .quiet()
            .read()
            .unwrap_or_else(|_| "unknown".to_owned());
        let status = cmd!(sh, "git status --porcelain --untracked-files=no")
            .quiet()
            .read()
            .context("reading git status")?;
        Ok(BuildIdentity {
            version: workspace_version()?,
            sha,
            dirty: !status.trim().is_empty(),
        })
    }

    /// The revision as the binaries and labels record it: the sha, `-dirty` when the tree had changes.
    pub fn revision(&self) -> String {
        if self.dirty {
            format!("{}-dirty", self.sha)
        } else {
            self.sha.clone()
        }
    }

    /// `<version>`, `<version>-<sha>` and `sha-<sha>`, each with `-dirty` after the sha when the tree was
    /// dirty. A dirty build never takes the bare version tag: that name belongs to committed code.
    pub fn tags(&self) -> Vec<String> {
        let revision = self.revision();
        let mut tags = Vec::new();
        if !self.dirty {
            tags.push(self.version.clone());
        }
        tags.push(format!("{}-{revision}", self.version));
        tags.push(format!("sha-{revision}"));
        tags
    }
}

/// The version the binaries will carry: the workspace manifest's, read now rather than compiled into
/// xtask, so a build right after `cargo xtask version` tags the new version even from an older xtask.
pub fn workspace_version() -> anyhow::Result<String> {
    crate::version::manifest::read_version(&crate::project::root())
        .map(|version| version.to_string())
        .context("reading the image version from the workspace Cargo.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dirty: bool) -> BuildIdentity {
        BuildIdentity {
            version: "1.4.2".to_owned(),
            sha: "0123456789ab".to_owned(),
            dirty,
        }
    }

    #[test]
    fn a_clean_tree_gets_version_version_sha_and_sha_tags() {
        assert_eq!(
            identity(false).tags(),
            ["1.4.2", "1.4.2-0123456789ab", "sha-0123456789ab"]
        );
    }

    #[test]
    fn a_dirty_tree_is_marked_and_never_takes_the_bare_version() {
        assert_eq!(
            identity(true).tags(),
            ["1.4.2-0123456789ab-dirty", "sha-0123456789ab-dirty"]
        );
        assert_eq!(identity(true).revision(), "0123456789ab-dirty");
    }
}
