//! What each `uses:` action of the repository's workflows does when a workflow is replayed here. Each
//! one either does locally what it does on GitHub, or does nothing for a reason given here:
//!
//! - `actions/checkout`: the replay's working directory *is* the checkout (a clone the test prepared).
//! - `dtolnay/rust-toolchain`, `Swatinem/rust-cache`, `actions/setup-python`: this machine's toolchain,
//!   cargo cache and python (scripts/ci/install-tools.sh) are already there.
//! - `shimataro/ssh-key-action`: the target engine is reached without ssh here (`DOCKER_HOST` names the
//!   local engine), so there is no key to install.
//! - `docker/login-action`: there is no registry on this machine; the release's images are already in the
//!   target's engine (the release replay built them there), so `--pull` finds them and needs no login. An
//!   image that is not there cannot be pulled, which is how the replay induces a pre-flight failure.
//! - `actions/upload-artifact` / `actions/download-artifact`: an artifact store in a directory, per run id
//!   and artifact name, with the actions' `path`, `if-no-files-found` and `run-id` semantics.

use std::path::{Path, PathBuf};

use super::replay::UsesCall;

pub struct LocalActions {
    /// Where uploaded artifacts are kept: `<store>/<run id>/<name>/…`.
    pub store: PathBuf,
    /// The run id of the workflow being replayed (uploads go under it).
    pub run_id: String,
}

impl LocalActions {
    pub fn perform(&self, call: &UsesCall) -> Result<String, String> {
        match call.action.as_str() {
            "actions/checkout" => Ok(format!(
                "checkout: the replay runs in the prepared clone {}",
                call.workdir.display()
            )),
            "dtolnay/rust-toolchain" | "Swatinem/rust-cache" | "actions/setup-python" => {
                Ok(format!("{}: this machine's toolchain is used", call.action))
            }
            "shimataro/ssh-key-action" => Ok(
                "ssh key: the target engine is local here (DOCKER_HOST), no key needed".to_owned(),
            ),
            "docker/login-action" => Ok(format!(
                "docker login {}: no registry here; the release's images are in the target's engine",
                call.with.get("registry").map_or("", String::as_str)
            )),
            "actions/upload-artifact" => self.upload(call),
            "actions/download-artifact" => self.download(call),
            other => Err(format!("the replay does not know what {other} does")),
        }
    }

    fn upload(&self, call: &UsesCall) -> Result<String, String> {
        let name = call
            .with
            .get("name")
            .cloned()
            .unwrap_or_else(|| "artifact".to_owned());
        let source = call.workdir.join(
            call.with
                .get("path")
                .ok_or("upload-artifact without path")?,
        );
        let target = self.store.join(&self.run_id).join(&name);
        if !source.exists() {
            return match call.with.get("if-no-files-found").map(String::as_str) {
                Some("ignore") => Ok(format!("upload {name}: no files, ignored")),
                Some("error") => Err(format!("upload {name}: {} has no files", source.display())),
                _ => Ok(format!("upload {name}: warning, no files")),
            };
        }
        copy_tree(&source, &target).map_err(|e| format!("upload {name}: {e}"))?;
        Ok(format!(
            "uploaded {} as {name} of run {}",
            source.display(),
            self.run_id
        ))
    }

    fn download(&self, call: &UsesCall) -> Result<String, String> {
        let name = call
            .with
            .get("name")
            .ok_or("download-artifact without name")?;
        let run = call
            .with
            .get("run-id")
            .cloned()
            .unwrap_or_else(|| self.run_id.clone());
        let source = self.store.join(&run).join(name);
        if !source.is_dir() {
            return Err(format!(
                "Unable to download artifact(s): {name} of run {run} not found"
            ));
        }
        let target = call
            .workdir
            .join(call.with.get("path").map_or(".", String::as_str));
        copy_tree(&source, &target).map_err(|e| format!("download {name}: {e}"))?;
        Ok(format!(
            "downloaded {name} of run {run} into {}",
            target.display()
        ))
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_file() {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to)?;
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}
