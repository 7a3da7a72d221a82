//! The Secrets an operator creates before applying an overlay (docs/operations.md, "Kubernetes"), made as
//! an operator would: strong random values, one file per key in a private directory, handed to `kubectl
//! create secret generic --from-file`, so no value is ever on a command line or in the output.
//!
//! The smoke's MongoDB stand-in (k8s/kind/datastores.yaml) takes its root password from a Secret of its
//! own; `mongodb_uri` of `avalon-secrets` carries the same password to the API.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The keys of `avalon-secrets` the manifests read (k8s/base/kustomization.yaml).
pub const AVALON_SECRET_KEYS: [&str; 5] = [
    "jwt_secret",
    "redis_password",
    "mongodb_uri",
    "wechat_appid",
    "wechat_secret",
];
pub const AVALON_SECRET: &str = "avalon-secrets";
/// The stand-in MongoDB's root password (k8s/kind/datastores.yaml).
pub const MONGODB_SECRET: &str = "smoke-mongodb";
pub const MONGODB_SECRET_KEY: &str = "root_password";
/// The stand-in MongoDB's Service and root user (k8s/kind/datastores.yaml).
const MONGODB_SERVICE: &str = "mongodb";
const MONGODB_USER: &str = "avalon";

/// Where each key's file is, for `--from-file=KEY=PATH`.
pub fn avalon_files(dir: &Path) -> Vec<(String, PathBuf)> {
    AVALON_SECRET_KEYS
        .iter()
        .map(|key| ((*key).to_owned(), dir.join(key)))
        .collect()
}

pub fn mongodb_files(dir: &Path) -> Vec<(String, PathBuf)> {
    vec![(
        MONGODB_SECRET_KEY.to_owned(),
        dir.join(format!("mongodb_{MONGODB_SECRET_KEY}")),
    )]
}

/// The URI the API gets: the stand-in's Service, its root user, authenticated against `admin` (where the
/// official image creates the root user).
pub fn mongodb_uri(password: &str) -> String {
    format!("mongodb://{MONGODB_USER}:{password}@{MONGODB_SERVICE}:27017/avalon?authSource=admin")
}

/// Writes every file (0600) into `dir`, which the caller made private.
pub fn write(dir: &Path) -> anyhow::Result<()> {
    let root_password = crate::k8s_startup::operator_secret("redis_password");
    for (key, path) in avalon_files(dir) {
        let value = match key.as_str() {
            "mongodb_uri" => mongodb_uri(&root_password),
            // Shapes and strength the services' validator accepts in staging and production.
            other => crate::k8s_startup::operator_secret(other),
        };
        write_private(&path, &value)?;
    }
    for (_, path) in mongodb_files(dir) {
        write_private(&path, &root_password)?;
    }
    Ok(())
}

fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(value.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn every_key_is_written_privately_and_the_uri_carries_the_root_password() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path()).unwrap();
        for (_, path) in avalon_files(dir.path())
            .into_iter()
            .chain(mongodb_files(dir.path()))
        {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            assert!(!fs::read_to_string(&path).unwrap().is_empty());
        }
        let password = fs::read_to_string(dir.path().join("mongodb_root_password")).unwrap();
        assert!(password.len() >= 32, "strong: {}", password.len());
        let uri = fs::read_to_string(dir.path().join("mongodb_uri")).unwrap();
        assert_eq!(uri, mongodb_uri(&password));
        assert!(uri.starts_with("mongodb://avalon:") && uri.contains("@mongodb:27017/"));
        let appid = fs::read_to_string(dir.path().join("wechat_appid")).unwrap();
        assert!(appid.starts_with("wx") && appid.len() == 18, "{appid}");
        assert_ne!(
            fs::read_to_string(dir.path().join("jwt_secret")).unwrap(),
            fs::read_to_string(dir.path().join("redis_password")).unwrap()
        );
    }
}
