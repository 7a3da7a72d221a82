//! The probe's sign-in token for the game server. avalon-ws admits a Socket.IO session only with an HS256
//! access token signed with the stack's `JWT_SECRET` (`avalon_runtime::auth`). The API's dev-login exists
//! only in development, and a probe user with a password would be one more credential to keep, so the
//! probe signs its own token with the secret the target's containers run with, read through the engine
//! (so it works the same on a laptop, on the host and in CI, for dev, offline, staging and prod):
//!
//! - `JWT_SECRET_FILE` (every Compose stack: a Docker secret at /run/secrets/jwt_secret) is copied out with
//!   `docker container cp <container>:<file> -` — a tar stream on stdout; the images need no shell;
//! - else `JWT_SECRET` in the container's environment;
//! - else, when `APP_ENV=development`, the services' built-in development secret.
//!
//! The secret is read from the judged slot's API container (the issuer of players' tokens), so a game
//! server that refuses what the API issues fails the judgment like it fails players. It stays in memory,
//! never printed; the token names the user `deploy-probe-<slot>` and expires soon after the window.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use avalon_runtime::auth::issue_access_token;
use avalon_runtime::config::{Secret, spec};

use super::slots::Slot;
use super::target::{ContainerInfo, Target};

/// How long a probe token outlives the window it was made for.
const MARGIN: Duration = Duration::from_secs(120);

/// Where a container's JWT secret comes from, by the runtime's precedence (`*_FILE` wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(String),
    Value(String),
    DevelopmentDefault,
}

/// Reads the source from a container's `KEY=VALUE` environment list (`docker inspect` `.Config.Env`).
pub fn secret_source(env: &[String]) -> anyhow::Result<SecretSource> {
    let get = |name: &str| {
        env.iter()
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    };
    if let Some(path) = get("JWT_SECRET_FILE").filter(|path| !path.is_empty()) {
        return Ok(SecretSource::File(path));
    }
    if let Some(value) = get("JWT_SECRET").filter(|value| !value.is_empty()) {
        return Ok(SecretSource::Value(value));
    }
    match get("APP_ENV").as_deref() {
        None | Some("development") => Ok(SecretSource::DevelopmentDefault),
        Some(other) => bail!(
            "the container has neither JWT_SECRET_FILE nor JWT_SECRET, and APP_ENV={other} has no default \
             secret: the probe cannot sign in to the game server"
        ),
    }
}

/// The one file of a `docker cp … -` tar stream, without its trailing line break (as the runtime reads
/// secret files).
pub fn secret_from_tar(archive: &[u8]) -> anyhow::Result<String> {
    let mut archive = tar::Archive::new(archive);
    let mut entry = archive
        .entries()
        .context("unreadable `docker cp` output")?
        .next()
        .context("`docker cp` returned an empty archive")?
        .context("unreadable `docker cp` output")?;
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .context("the secret file is not UTF-8 text")?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        bail!("the secret file is empty");
    }
    Ok(secret)
}

/// The container the secret is read from: the judged slot's API (the token issuer), else its game
/// server.
fn source_container(containers: &[ContainerInfo], slot: Slot) -> anyhow::Result<&ContainerInfo> {
    let of_slot = |prefix: &str| {
        containers
            .iter()
            .find(|c| c.slot == Some(slot) && c.running() && c.service.starts_with(prefix))
    };
    of_slot("api")
        .or_else(|| of_slot("websocket"))
        .with_context(|| format!("slot {slot} has no running container to read JWT_SECRET from"))
}

/// Reads the stack's JWT secret from the slot's containers.
pub fn read_secret(
    target: &Target,
    containers: &[ContainerInfo],
    slot: Slot,
) -> anyhow::Result<Secret> {
    let container = source_container(containers, slot)?;
    let env_json = target
        .docker
        .inspect_format("{{json .Config.Env}}", std::slice::from_ref(&container.id))
        .capture(None)?;
    let env: Vec<String> = serde_json::from_str(env_json.trim())
        .with_context(|| format!("unexpected `docker inspect` output for {}", container.name))?;
    let value = match secret_source(&env).with_context(|| container.name.clone())? {
        SecretSource::File(path) => {
            let mut archive = Vec::new();
            target
                .docker
                .copy_out(&container.id, &path)
                .stream(None, &mut archive)
                .with_context(|| format!("reading {path} from {}", container.name))?;
            secret_from_tar(&archive).with_context(|| format!("{path} in {}", container.name))?
        }
        SecretSource::Value(value) => value,
        SecretSource::DevelopmentDefault => spec::EXAMPLE_JWT_SECRET.to_owned(),
    };
    Ok(Secret::new(value))
}

/// An access token for the probe user of `slot`, valid for `window` and a margin.
pub fn token(secret: &Secret, slot: Slot, window: Duration) -> anyhow::Result<String> {
    let user = format!("deploy-probe-{slot}");
    let (token, _) = issue_access_token(secret, &user, &user, "deploy-probe", window + MARGIN)
        .context("cannot sign the probe's token")?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn the_secret_source_follows_the_runtime_precedence() {
        assert_eq!(
            secret_source(&env(&[
                "JWT_SECRET=inline",
                "JWT_SECRET_FILE=/run/secrets/jwt_secret"
            ]))
            .unwrap(),
            SecretSource::File("/run/secrets/jwt_secret".to_owned())
        );
        assert_eq!(
            secret_source(&env(&["APP_ENV=staging", "JWT_SECRET=a=b"])).unwrap(),
            SecretSource::Value("a=b".to_owned())
        );
        assert_eq!(
            secret_source(&env(&["APP_ENV=development"])).unwrap(),
            SecretSource::DevelopmentDefault
        );
        let err = secret_source(&env(&["APP_ENV=production"])).unwrap_err();
        assert!(err.to_string().contains("APP_ENV=production"), "{err}");
    }

    #[test]
    fn the_secret_is_the_one_file_of_the_archive_without_its_line_break() {
        let mut builder = tar::Builder::new(Vec::new());
        let content = b"s3cret-value\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o400);
        header.set_cksum();
        builder
            .append_data(&mut header, "jwt_secret", &content[..])
            .unwrap();
        let archive = builder.into_inner().unwrap();
        assert_eq!(secret_from_tar(&archive).unwrap(), "s3cret-value");
        assert!(secret_from_tar(&[]).is_err());
    }

    #[test]
    fn the_token_passes_the_game_servers_check() {
        let secret = Secret::new("a-test-secret-that-is-long-enough-0123456789");
        let token = token(&secret, Slot::Green, Duration::from_secs(30)).unwrap();
        let claims = avalon_runtime::auth::verify_access_token(&secret, &token).unwrap();
        assert_eq!(claims.sub, "deploy-probe-green");
        assert!(claims.exp - claims.iat >= 150);
    }
}
