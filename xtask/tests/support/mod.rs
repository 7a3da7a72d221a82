//! Scratch git repositories shaped like this workspace, and a way to run `xtask` against them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throwaway git repository with a one-member Cargo workspace at version `0.1.0`.
pub struct ScratchRepo {
    dir: tempfile::TempDir,
}

impl ScratchRepo {
    pub fn new() -> Self {
        Self::with_version("0.1.0")
    }

    pub fn with_version(version: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Self { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        for (key, value) in [
            ("user.name", "Release Test"),
            ("user.email", "release-test@example.invalid"),
            ("commit.gpgsign", "false"),
            ("tag.gpgsign", "false"),
        ] {
            repo.git(&["config", key, value]);
        }
        repo.write(
            "Cargo.toml",
            &format!(
                "[workspace]\nmembers = [\"app\"]\nresolver = \"3\"\n\n# The release version; members inherit it.\n\
                 [workspace.package]\nversion = \"{version}\"\nedition = \"2024\"\n"
            ),
        );
        repo.write(
            "app/Cargo.toml",
            "[package]\nname = \"app\"\nversion.workspace = true\nedition.workspace = true\n",
        );
        repo.write("app/src/main.rs", "fn main() {}\n");
        repo.write(".gitignore", "/target\n/.avalon/\n");
        repo.commit_all("chore: initial import");
        repo
    }

    /// Adds a Cargo.lock so the lockfile update path runs (offline: the workspace has no dependencies).
    pub fn with_lockfile(self) -> Self {
        let status = Command::new(env!("CARGO"))
            .args(["generate-lockfile", "--offline"])
            .current_dir(self.path())
            .status()
            .unwrap();
        assert!(status.success());
        self.commit_all("chore: lock");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path().join(relative)).unwrap()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
    }

    /// A commit that changes a file, so every synthetic commit is a real change.
    pub fn change(&self, message: &str) {
        let count = self.git(&["rev-list", "--count", "HEAD"]);
        self.write(&format!("app/changes/{count}.txt"), message);
        self.commit_all(message);
    }

    pub fn tag(&self, name: &str) {
        self.git(&["tag", "--annotate", name, "-m", name]);
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn tags(&self) -> Vec<String> {
        self.git(&["tag", "--list"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every file outside .git with its contents, plus git's view of refs: equal snapshots mean untouched.
    pub fn snapshot(&self) -> Snapshot {
        let mut files = BTreeMap::new();
        collect(self.path(), self.path(), &mut files);
        Snapshot {
            files,
            refs: self.git(&["show-ref"]),
            status: self.git(&["status", "--porcelain", "--ignored"]),
        }
    }

    /// Runs the xtask binary with this repository as the project root.
    pub fn xtask(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .current_dir(self.path())
            .env("AVALON_PROJECT_ROOT", self.path())
            .env("SOURCE_DATE_EPOCH", "1764115200") // 2025-11-26
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    }

    pub fn xtask_json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.xtask(args);
        assert!(
            output.status.success(),
            "xtask {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not JSON ({error}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    files: BTreeMap<PathBuf, Vec<u8>>,
    refs: String,
    status: String,
}

impl Snapshot {
    /// The snapshot without one file (e.g. the outcome record every release run writes, git-ignored).
    pub fn without(mut self, relative: &str) -> Snapshot {
        self.files.remove(Path::new(relative));
        // `git status --ignored` names the ignored top-level directory once it holds anything.
        if let Some(top) = Path::new(relative).components().next() {
            let top = Path::new(top.as_os_str());
            if !self.files.keys().any(|file| file.starts_with(top)) {
                let line = format!("!! {}/", top.display());
                self.status = self
                    .status
                    .lines()
                    .filter(|status| *status != line)
                    .collect::<Vec<_>>()
                    .join("\n");
            }
        }
        self
    }

    pub fn file(&self, relative: &str) -> Option<&[u8]> {
        self.files.get(Path::new(relative)).map(Vec::as_slice)
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name == ".git") {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            files.insert(relative, std::fs::read(&path).unwrap());
        }
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
