//! The release's progress on disk (`.avalon/release/v<version>/state.json`), so an interrupted release
//! resumes where it stopped instead of repeating a push or cutting a second version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The steps of a release, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Ci,
    Version,
    Images,
    Publish,
    Notes,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Ci,
        Step::Version,
        Step::Images,
        Step::Publish,
        Step::Notes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Ci => "ci",
            Step::Version => "version",
            Step::Images => "images",
            Step::Publish => "publish",
            Step::Notes => "notes",
        }
    }
}

/// What one finished step left behind (its report, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub at: String,
    #[serde(default)]
    pub report: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: String,
    pub tag: String,
    #[serde(default)]
    pub steps: BTreeMap<Step, Done>,
}

impl State {
    pub fn new(version: &semver::Version) -> Self {
        Self {
            version: version.to_string(),
            tag: format!("v{version}"),
            steps: BTreeMap::new(),
        }
    }

    /// The directory of one release's state, notes and exported images.
    pub fn dir(root: &Path, version: &semver::Version) -> PathBuf {
        root.join(".avalon/release").join(format!("v{version}"))
    }

    /// The saved state for `version`, or a fresh one.
    pub fn load(root: &Path, version: &semver::Version) -> anyhow::Result<Self> {
        let path = Self::dir(root, version).join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is corrupt; delete it to start this release over",
                    path.display()
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::new(version)),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn is_done(&self, step: Step) -> bool {
        self.steps.contains_key(&step)
    }

    pub fn report(&self, step: Step) -> Option<&serde_json::Value> {
        self.steps.get(&step).map(|done| &done.report)
    }

    /// Records a finished step and saves at once: a crash right after loses nothing.
    pub fn complete(
        &mut self,
        root: &Path,
        step: Step,
        report: serde_json::Value,
    ) -> anyhow::Result<()> {
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting the time")?;
        self.steps.insert(step, Done { at, report });
        self.save(root)
    }

    /// Write-then-rename, so the file is always either the old or the new state.
    fn save(&self, root: &Path) -> anyhow::Result<()> {
        let version =
            semver::Version::parse(&self.version).context("state has an invalid version")?;
        let dir = Self::dir(root, &version);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let partial = dir.join("state.json.partial");
        std::fs::write(&partial, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, dir.join("state.json")).context("saving the release state")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_steps_survive_a_restart() {
        let root = tempfile::tempdir().unwrap();
        let version = semver::Version::new(0, 2, 0);
        let mut state = State::load(root.path(), &version).unwrap();
        assert!(!state.is_done(Step::Ci));
        state
            .complete(root.path(), Step::Ci, serde_json::json!({"ran": true}))
            .unwrap();
        state
            .complete(
                root.path(),
                Step::Version,
                serde_json::json!({"tag": "v0.2.0"}),
            )
            .unwrap();

        let resumed = State::load(root.path(), &version).unwrap();
        assert!(resumed.is_done(Step::Ci) && resumed.is_done(Step::Version));
        assert!(!resumed.is_done(Step::Images));
        assert_eq!(resumed.report(Step::Version).unwrap()["tag"], "v0.2.0");
        assert!(
            root.path()
                .join(".avalon/release/v0.2.0/state.json")
                .is_file()
        );
        assert!(
            !root
                .path()
                .join(".avalon/release/v0.2.0/state.json.partial")
                .exists()
        );
    }

    #[test]
    fn state_is_per_version() {
        let root = tempfile::tempdir().unwrap();
        let mut state = State::load(root.path(), &semver::Version::new(0, 2, 0)).unwrap();
        state
            .complete(root.path(), Step::Ci, serde_json::Value::Null)
            .unwrap();
        let other = State::load(root.path(), &semver::Version::new(0, 3, 0)).unwrap();
        assert!(other.steps.is_empty());
    }

    #[test]
    fn a_corrupt_state_file_is_named() {
        let root = tempfile::tempdir().unwrap();
        let version = semver::Version::new(1, 0, 0);
        let dir = State::dir(root.path(), &version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("state.json"), "{").unwrap();
        let error = State::load(root.path(), &version).unwrap_err().to_string();
        assert!(error.contains("state.json is corrupt"), "{error}");
    }
}
