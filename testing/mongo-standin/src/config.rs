//! What the container is given, read the way the official image and the stack's init script read it:
//! - root: `MONGO_INITDB_ROOT_USERNAME` with `MONGO_INITDB_ROOT_PASSWORD_FILE` (or `…_PASSWORD`), in `admin`;
//! - the application user `avalon_app`, readWrite on `MONGO_INITDB_DATABASE` (default `avalon`) and
//!   authenticating there, with the password in `/run/secrets/mongodb_app_password` (the contract of the
//!   init script the real mongo service runs from /docker-entrypoint-initdb.d/).
//!
//! With no user at all the server runs without access control, as mongod does without `--auth`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::auth::{Scope, User};

pub const APP_USER: &str = "avalon_app";
pub const DEFAULT_APP_PASSWORD_FILE: &str = "/run/secrets/mongodb_app_password";
pub const DEFAULT_BIND: &str = "0.0.0.0:27017";

#[derive(Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub users: Vec<User>,
}

/// Reads a secret file as the official entrypoint does (`$(< file)`: trailing newlines dropped).
fn read_secret(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what}: cannot read {}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        bail!("{what}: {} is empty", path.display());
    }
    Ok(secret)
}

impl Config {
    /// `args` are the command-line arguments after the program name.
    pub fn from_env_and_args(args: &[String]) -> anyhow::Result<Config> {
        let mut bind =
            std::env::var("MONGO_STANDIN_BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--bind" => {
                    bind = rest
                        .next()
                        .context("--bind needs an address, e.g. 0.0.0.0:27017")?
                        .clone()
                }
                other => bail!(
                    "unknown argument `{other}`: the MongoDB stand-in takes only --bind ADDR (or MONGO_STANDIN_BIND); \
                     users come from MONGO_INITDB_* and /run/secrets/mongodb_app_password"
                ),
            }
        }
        let bind = bind.parse().with_context(|| {
            format!("--bind / MONGO_STANDIN_BIND: `{bind}` is not an address like 0.0.0.0:27017")
        })?;
        Ok(Config {
            bind,
            users: users_from_env()?,
        })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn users_from_env() -> anyhow::Result<Vec<User>> {
    let mut users = Vec::new();
    if let Some(root) = env("MONGO_INITDB_ROOT_USERNAME") {
        let password = match (
            env("MONGO_INITDB_ROOT_PASSWORD_FILE"),
            env("MONGO_INITDB_ROOT_PASSWORD"),
        ) {
            (Some(file), _) => read_secret(file.as_ref(), "MONGO_INITDB_ROOT_PASSWORD_FILE")?,
            (None, Some(password)) => password,
            (None, None) => bail!(
                "MONGO_INITDB_ROOT_USERNAME is set but neither MONGO_INITDB_ROOT_PASSWORD_FILE nor MONGO_INITDB_ROOT_PASSWORD is"
            ),
        };
        users.push(
            User::new(&root, "admin", Scope::AnyDatabase, &password).map_err(anyhow::Error::msg)?,
        );
    }
    let database = env("MONGO_INITDB_DATABASE").unwrap_or_else(|| "avalon".to_owned());
    let app_file = PathBuf::from(
        env("MONGO_STANDIN_APP_PASSWORD_FILE")
            .unwrap_or_else(|| DEFAULT_APP_PASSWORD_FILE.to_owned()),
    );
    if app_file.exists() {
        let password = read_secret(&app_file, "the application user's password file")?;
        users.push(
            User::new(
                APP_USER,
                &database,
                Scope::Database(database.clone()),
                &password,
            )
            .map_err(anyhow::Error::msg)?,
        );
    } else {
        eprintln!(
            "mongo-standin: {} does not exist: no `{APP_USER}` user (as when the init script has no secret)",
            app_file.display()
        );
    }
    Ok(users)
}
