//! The secret files of `/etc/avalon/secrets/`: which exist, who reads them, how they are made.
//!
//! Compose (without Swarm) bind-mounts a secret file as it is on the host, owner and mode included, so every
//! file is root's, readable by group 10001: the services run as 10001:10001 and every other container that
//! reads a secret joins that group (`group_add` in docker/compose.prod.yml). The directory is 0750 root:10001.

use anyhow::{Context, bail};
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::TryRngCore;

use super::layout::{Owner, SECRETS_DIR};
use super::plan::{Encoding, Entry, Kind, Source};

/// A secret file, owned by the uid of the container that reads it (the table in docs/deployment.md).
pub struct SecretSpec {
    pub name: &'static str,
    pub owner: Owner,
    pub mode: u32,
}

pub const JWT_SECRET: &str = "jwt_secret";
pub const REDIS_PASSWORD: &str = "redis_password";
pub const MONGODB_ROOT_PASSWORD: &str = "mongodb_root_password";
pub const MONGODB_APP_PASSWORD: &str = "mongodb_app_password";
pub const MONGODB_URI: &str = "mongodb_uri";
pub const WECHAT_SECRET: &str = "wechat_secret";

/// Every secret file, in the order they are made (the URI after the password it carries).
pub const SECRETS: [SecretSpec; 6] = [
    SecretSpec {
        name: JWT_SECRET,
        owner: Owner::SECRET,
        mode: 0o640,
    },
    SecretSpec {
        name: REDIS_PASSWORD,
        owner: Owner::SECRET,
        mode: 0o640,
    },
    SecretSpec {
        name: MONGODB_ROOT_PASSWORD,
        owner: Owner::SECRET,
        mode: 0o640,
    },
    SecretSpec {
        name: MONGODB_APP_PASSWORD,
        owner: Owner::SECRET,
        mode: 0o640,
    },
    SecretSpec {
        name: MONGODB_URI,
        owner: Owner::SECRET,
        mode: 0o640,
    },
    SecretSpec {
        name: WECHAT_SECRET,
        owner: Owner::SECRET,
        mode: 0o640,
    },
];

/// Random bytes behind the JWT signing key: the issue asks for at least 64; the runtime needs 32 bytes and
/// 10 distinct characters, which 86 base64url characters of 64 random bytes always exceed in practice.
pub const JWT_SECRET_BYTES: usize = 64;
/// Random bytes behind each password (64 hex characters).
pub const PASSWORD_BYTES: usize = 32;
/// The runtime's rule for WECHAT_SECRET (services/runtime/src/config/settings.rs).
pub const WECHAT_SECRET_MIN_LEN: usize = 16;

pub fn path(name: &str) -> String {
    format!("{SECRETS_DIR}/{name}")
}

/// The secrets directory and its files. `wechat_secret` holds the operator's value when one was given.
pub fn entries(wechat_secret: Option<&str>) -> Vec<Entry> {
    let mut entries = vec![Entry {
        path: SECRETS_DIR.to_owned(),
        mode: 0o750,
        owner: Owner::SECRET,
        kind: Kind::Dir,
    }];
    for spec in &SECRETS {
        let kind = match spec.name {
            JWT_SECRET => Kind::Once(Source::Random {
                bytes: JWT_SECRET_BYTES,
                encoding: Encoding::Base64Url,
            }),
            MONGODB_URI => Kind::Once(Source::MongoUri {
                password: path(MONGODB_APP_PASSWORD),
            }),
            WECHAT_SECRET => match wechat_secret {
                Some(value) => Kind::Once(Source::Given(value.to_owned())),
                None => Kind::Supplied {
                    hint: format!(
                        "the AppSecret from the WeChat console: --wechat-secret-file FILE, or write it to {} \
                         (mode 0640, group 10001)",
                        path(WECHAT_SECRET)
                    ),
                },
            },
            _ => Kind::Once(Source::Random {
                bytes: PASSWORD_BYTES,
                encoding: Encoding::Hex,
            }),
        };
        entries.push(Entry {
            path: path(spec.name),
            mode: spec.mode,
            owner: spec.owner,
            kind,
        });
    }
    entries
}

/// Reads and checks `--wechat-secret-file`: bad input is refused before anything changes.
pub fn read_wechat_secret(file: &std::path::Path) -> anyhow::Result<String> {
    let content = std::fs::read(file)
        .with_context(|| format!("reading --wechat-secret-file {}", file.display()))?;
    let value = String::from_utf8(super::plan::trim_secret(&content).to_vec())
        .with_context(|| format!("--wechat-secret-file {}: not UTF-8 text", file.display()))?;
    if let Some(problem) = wechat_secret_problem(&value) {
        bail!("--wechat-secret-file {}: {problem}", file.display());
    }
    Ok(value)
}

/// Why `value` cannot be a WeChat AppSecret, if it cannot.
pub fn wechat_secret_problem(value: &str) -> Option<String> {
    if super::env_file::is_placeholder_value(value) {
        return Some("is a placeholder, not the AppSecret from the WeChat console".to_owned());
    }
    if value.len() < WECHAT_SECRET_MIN_LEN || value.chars().any(char::is_whitespace) {
        return Some(format!(
            "must be the AppSecret from the WeChat console (at least {WECHAT_SECRET_MIN_LEN} characters, no spaces)"
        ));
    }
    None
}

pub fn encode(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        Encoding::Hex => bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
    }
}

/// `n` bytes from the operating system's CSPRNG (getrandom).
pub fn os_random(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .context("reading the operating system's random number generator")?;
    Ok(bytes)
}

/// Characters kept as they are in the userinfo of a URI (RFC 3986 unreserved).
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The API's connection string: the application user, authenticated against the `avalon` database.
pub fn mongodb_uri(app_password: &str) -> String {
    format!(
        "mongodb://avalon_app:{}@mongodb:27017/avalon?authSource=avalon",
        utf8_percent_encode(app_password, USERINFO)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_and_encode_printably() {
        let first = os_random(JWT_SECRET_BYTES).unwrap();
        assert_ne!(first, os_random(JWT_SECRET_BYTES).unwrap());
        let token = encode(&first, Encoding::Base64Url);
        assert_eq!(token.len(), 86);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(encode(&[0, 255, 16], Encoding::Hex), "00ff10");
    }

    #[test]
    fn uri_passwords_are_percent_encoded() {
        assert_eq!(
            mongodb_uri("a b@c"),
            "mongodb://avalon_app:a%20b%40c@mongodb:27017/avalon?authSource=avalon"
        );
        assert_eq!(
            mongodb_uri("00ff"),
            "mongodb://avalon_app:00ff@mongodb:27017/avalon?authSource=avalon"
        );
    }

    #[test]
    fn wechat_secrets_follow_the_runtime_rule_and_refuse_placeholders() {
        assert!(wechat_secret_problem("0123456789abcdef0123456789abcdef").is_none());
        assert!(wechat_secret_problem("short").is_some());
        assert!(wechat_secret_problem("your-secret-goes-here-please").is_some());
    }

    #[test]
    fn every_secret_is_private_to_its_readers() {
        let entries = entries(None);
        assert_eq!(entries[0].mode, 0o750);
        for entry in &entries[1..] {
            assert_eq!(
                entry.mode & 0o007,
                0,
                "{} is readable by others",
                entry.path
            );
        }
        assert!(matches!(
            entries.last().map(|entry| &entry.kind),
            Some(Kind::Supplied { .. })
        ));
    }
}
