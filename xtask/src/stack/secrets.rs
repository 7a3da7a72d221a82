//! Throwaway secrets for the dev and offline stacks, generated once per checkout under
//! `.avalon/secrets/<env>/` (git-ignored). Production never uses these: its overlay requires
//! AVALON_SECRETS_DIR, the operator's own directory.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::compose::StackEnv;
use crate::project;

/// The secret files the compose files reference, besides those only production needs.
const GENERATED: [&str; 3] = ["jwt_secret", "redis_password", "mongodb_root_password"];

pub fn dir(env: StackEnv) -> PathBuf {
    project::root().join(".avalon/secrets").join(env.name())
}

/// Creates any missing secret file (existing ones are kept, so volumes stay usable across runs).
pub fn ensure(env: StackEnv) -> anyhow::Result<PathBuf> {
    let dir = dir(env);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Only root on the host may list or read the directory; the files inside are world-readable because
    // compose bind-mounts them and the services run as uid 10001, redis as 999.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    for name in GENERATED {
        let path = dir.join(name);
        if !path.exists() {
            write_secret(&path, &random_token()?)?;
        }
    }
    let uri = dir.join("mongodb_uri");
    if !uri.exists() {
        let password = fs::read_to_string(dir.join("mongodb_root_password"))?;
        let value = format!(
            "mongodb://avalon:{}@mongodb:27017/avalon?authSource=admin",
            password.trim()
        );
        write_secret(&uri, &value)?;
    }
    Ok(dir)
}

fn write_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    fs::write(path, value).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o444))?;
    Ok(())
}

/// 32 random bytes as 64 hex characters: long enough for JWT_SECRET's 32-byte rule and safe in a URI.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_characters_and_differ() {
        let first = random_token().unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first, random_token().unwrap());
    }
}
