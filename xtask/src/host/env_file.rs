//! `/etc/avalon/avalon.env`: written once from the repository's template for the environment, then only
//! filled in. `--set KEY=VALUE` sets a value that is absent, commented out, empty or a placeholder; a value
//! the operator chose is never changed (asking to change it is an error naming the key).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use avalon_runtime::config::{self, ServiceKind, Sources, Violation, spec};

use super::HostEnv;
use super::layout::{Root, SECRETS_DIR};

/// Variables of the deployment commands (`cargo xtask up|deploy|…` on this host) that the env file may carry
/// besides the services' own: compose interpolates them.
pub const DEPLOYMENT_VARS: [&str; 12] = [
    "AVALON_SECRETS_DIR",
    "AVALON_CERTS_DIR",
    "AVALON_ADMIN_ALLOWLIST",
    "AVALON_TRUSTED_PROXIES",
    "AVALON_API_IMAGE",
    "AVALON_WS_IMAGE",
    "AVALON_HTTP_PORT",
    "AVALON_HTTPS_PORT",
    "AVALON_EDGE_MODEL",
    "AVALON_API_REPLICAS",
    "AVALON_WS_REPLICAS",
    "AVALON_STACK_PROJECT",
];

/// Text that marks a value as a stand-in for the real one.
const PLACEHOLDER_MARKS: [&str; 7] = [
    "your-secret",
    "your_secret",
    "change-me",
    "changeme",
    "change_me",
    "wx0000000000",
    "…",
];

pub fn template_path(env: HostEnv) -> PathBuf {
    crate::project::root().join(format!(".env.{}.example", env.app_env()))
}

/// One `--set KEY=VALUE`, checked against the variables the services and the deployment commands know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
}

impl Assignment {
    pub fn parse(text: &str, env: HostEnv) -> anyhow::Result<Assignment> {
        let Some((key, value)) = text.split_once('=') else {
            bail!("--set {text}: expected KEY=VALUE");
        };
        let key = key.trim();
        if let Some(var) = spec::lookup(key) {
            if var.secret {
                bail!(
                    "--set {key}: a secret never goes into the env file; it is the file {}/{} (see `cargo xtask host init --help`)",
                    SECRETS_DIR,
                    key.to_ascii_lowercase()
                );
            }
            if var.name == spec::APP_ENV.name && value != env.app_env() {
                bail!(
                    "--set APP_ENV={value}: this host is prepared for --env {}",
                    env.name()
                );
            }
        } else if !DEPLOYMENT_VARS.contains(&key) {
            bail!(
                "--set {key}: unknown variable (the services' variables are listed in docs/configuration.md; \
                 deployment ones: {})",
                DEPLOYMENT_VARS.join(", ")
            );
        }
        if value.contains(['\n', '\r', '\'']) {
            bail!("--set {key}: the value must be one line without single quotes");
        }
        if is_placeholder_value(value) {
            bail!("--set {key}: `{value}` is a placeholder, not a real value");
        }
        Ok(Assignment {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    fn line(&self) -> String {
        let plain = self
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:,@+=".contains(c));
        if plain {
            format!("{}={}", self.key, self.value)
        } else {
            format!("{}='{}'", self.key, self.value)
        }
    }
}

/// The env file to hold: the existing one with `sets` filled in, or a new one from `template`.
/// Fails, naming every key, when a `--set` would change a value the operator chose.
pub fn desired(
    existing: Option<&str>,
    template: &str,
    env: HostEnv,
    sets: &[Assignment],
) -> anyhow::Result<String> {
    let mut lines: Vec<String> = match existing {
        Some(text) => text.lines().map(str::to_owned).collect(),
        None => fresh(template, env).lines().map(str::to_owned).collect(),
    };
    let mut conflicts = Vec::new();
    for set in sets {
        if let Err(conflict) = apply_set(&mut lines, set) {
            conflicts.push(conflict);
        }
    }
    if !conflicts.is_empty() {
        bail!(
            "host init never changes a value already set in {}: {}. Edit the file to change it.",
            super::layout::ENV_FILE,
            conflicts.join("; ")
        );
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

fn fresh(template: &str, env: HostEnv) -> String {
    let mut body: Vec<&str> = template
        .lines()
        .skip_while(|line| line.starts_with("# Template for"))
        .collect();
    while body.last().is_some_and(|line| line.trim().is_empty()) {
        body.pop();
    }
    format!(
        "# {env_file}: the configuration of this host (APP_ENV={app_env}), written by `cargo xtask host init` from\n\
         # .env.{app_env}.example. host init only fills in values that are missing or placeholders (--set KEY=VALUE);\n\
         # it never changes one you set. Secrets are files in {SECRETS_DIR}/, never values here.\n\
         {body}\n\
         \n\
         # --- Deployment: read by `cargo xtask` on this host (compose interpolation), not by the services. ---\n\
         # Load this file before running xtask here:  set -a; . {env_file}; set +a\n\
         # The secrets directory, mounted into the containers as Docker secrets.\n\
         AVALON_SECRETS_DIR={SECRETS_DIR}\n",
        env_file = super::layout::ENV_FILE,
        app_env = env.app_env(),
        body = body.join("\n"),
    )
}

/// Sets one value in `lines`: an active line with an empty or placeholder value is replaced, a commented-out
/// one (`# KEY=…`) is replaced by the active line, else the line is appended.
fn apply_set(lines: &mut Vec<String>, set: &Assignment) -> Result<(), String> {
    let active = lines
        .iter()
        .position(|line| assignment_key(line) == Some(set.key.as_str()));
    if let Some(index) = active {
        let current = line_value(&lines[index]).unwrap_or_default();
        if current == set.value {
            return Ok(());
        }
        if !current.is_empty() && !is_placeholder_value(&current) {
            return Err(format!("{} is already `{current}`", set.key));
        }
        lines[index] = set.line();
        return Ok(());
    }
    let commented = lines.iter().position(|line| {
        line.strip_prefix('#')
            .map(str::trim_start)
            .is_some_and(|rest| assignment_key(rest) == Some(set.key.as_str()))
    });
    match commented {
        Some(index) => lines[index] = set.line(),
        None => lines.push(set.line()),
    }
    Ok(())
}

/// The key of an active `KEY=value` line.
fn assignment_key(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && key.starts_with(|c: char| c.is_ascii_uppercase());
    valid.then_some(key)
}

fn line_value(line: &str) -> Option<String> {
    let mut entries = dotenvy::from_read_iter(line.as_bytes());
    let (_, value) = entries.next()?.ok()?;
    Some(value)
}

/// The active assignments of an env file, as the services and a shell would read them.
pub fn values(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut values = BTreeMap::new();
    for entry in dotenvy::from_read_iter(text.as_bytes()) {
        let (key, value) = entry.context("not a valid env file")?;
        values.insert(key, value);
    }
    Ok(values)
}

/// Whether a value is a stand-in (`wx0000…`, `your-secret`, `<…>`, …) rather than a real one.
pub fn is_placeholder_value(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    PLACEHOLDER_MARKS.iter().any(|mark| lower.contains(mark))
        || (lower.starts_with('<') && lower.ends_with('>'))
        || lower == "..."
}

/// Keys of `text` still waiting for a real value: left empty where the template leaves them for the operator
/// (`WECHAT_APPID=`), an example value with no default behind it (`wx0000000000000000`), or a placeholder.
pub fn placeholders(text: &str, template: &str) -> anyhow::Result<Vec<String>> {
    let to_fill: BTreeSet<String> = values(template)?
        .into_iter()
        .filter(|(_, value)| value.is_empty())
        .map(|(key, _)| key)
        .collect();
    let mut keys = Vec::new();
    for (key, value) in values(text)? {
        let example_only = spec::lookup(&key).is_some_and(|var| {
            var.default.is_none() && !var.example.is_empty() && value == var.example
        });
        let empty_to_fill = value.trim().is_empty() && to_fill.contains(&key);
        if empty_to_fill || example_only || is_placeholder_value(&value) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Checks the env file together with the secrets it names, with the services' own validator (the one
/// `cargo xtask config check` runs): the container paths `/run/secrets/<name>` are read from this tree's
/// secrets directory, and CONFIG_DIR is the repository's `config/`, which compose mounts there.
pub fn validate(text: &str, root: &Root) -> anyhow::Result<Vec<Violation>> {
    let mut env = values(text)?;
    for (key, value) in env.iter_mut() {
        if key.ends_with("_FILE")
            && let Some(name) = value.strip_prefix("/run/secrets/")
        {
            *value = root.join(SECRETS_DIR).join(name).display().to_string();
        }
    }
    env.insert(
        spec::CONFIG_DIR.name.to_owned(),
        crate::project::root().join("config").display().to_string(),
    );
    Ok(config::check(&Sources::from_env(env), &ServiceKind::ALL))
}

pub fn read_template(env: HostEnv) -> anyhow::Result<String> {
    let path = template_path(env);
    read(&path)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "# Template for APP_ENV=staging. generated; do not edit.\n\
        APP_ENV=staging\n\
        # (services: api)\n\
        WECHAT_APPID=\n\
        # PORT=3000\n\
        LOG_FORMAT=json\n";

    fn set(text: &str) -> Assignment {
        Assignment::parse(text, HostEnv::Staging).unwrap()
    }

    #[test]
    fn a_fresh_file_names_the_secrets_dir_and_leaves_the_appid_to_fill() {
        let text = desired(None, TEMPLATE, HostEnv::Staging, &[]).unwrap();
        assert!(!text.contains("do not edit"), "{text}");
        assert!(text.contains("AVALON_SECRETS_DIR=/etc/avalon/secrets\n"));
        assert_eq!(placeholders(&text, TEMPLATE).unwrap(), ["WECHAT_APPID"]);
    }

    #[test]
    fn sets_fill_empty_commented_and_absent_values() {
        let text = desired(
            None,
            TEMPLATE,
            HostEnv::Staging,
            &[
                set("WECHAT_APPID=wx1234567890abcdef"),
                set("PORT=3100"),
                set("ADMIN_ALLOWLIST=10.0.0.0/8, user:abc"),
            ],
        )
        .unwrap();
        let values = values(&text).unwrap();
        assert_eq!(values["WECHAT_APPID"], "wx1234567890abcdef");
        assert_eq!(values["PORT"], "3100");
        assert_eq!(values["ADMIN_ALLOWLIST"], "10.0.0.0/8, user:abc");
        assert!(
            text.contains("ADMIN_ALLOWLIST='10.0.0.0/8, user:abc'"),
            "{text}"
        );
        assert!(
            !text.contains("# PORT=3000"),
            "the commented line became the value: {text}"
        );
        assert!(placeholders(&text, TEMPLATE).unwrap().is_empty());
        // Run again with the same values: byte-identical.
        let again = desired(
            Some(&text),
            TEMPLATE,
            HostEnv::Staging,
            &[set("WECHAT_APPID=wx1234567890abcdef")],
        )
        .unwrap();
        assert_eq!(again, text);
    }

    #[test]
    fn a_value_the_operator_chose_is_never_changed() {
        let text = desired(
            None,
            TEMPLATE,
            HostEnv::Staging,
            &[set("WECHAT_APPID=wx1234567890abcdef")],
        )
        .unwrap();
        let err = desired(
            Some(&text),
            TEMPLATE,
            HostEnv::Staging,
            &[
                set("WECHAT_APPID=wxffffffffffffffff"),
                set("LOG_FORMAT=pretty"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("WECHAT_APPID is already `wx1234567890abcdef`"),
            "{err}"
        );
        assert!(err.contains("LOG_FORMAT is already `json`"), "{err}");
    }

    #[test]
    fn placeholder_values_are_found_and_replaced() {
        let text = "APP_ENV=staging\nWECHAT_APPID=wx0000000000000000\nCORS_ALLOWED_ORIGINS='<your origin>'\n";
        assert_eq!(
            placeholders(text, TEMPLATE).unwrap(),
            ["CORS_ALLOWED_ORIGINS", "WECHAT_APPID"]
        );
        let filled = desired(
            Some(text),
            TEMPLATE,
            HostEnv::Staging,
            &[set("WECHAT_APPID=wx1234567890abcdef")],
        )
        .unwrap();
        assert_eq!(
            placeholders(&filled, TEMPLATE).unwrap(),
            ["CORS_ALLOWED_ORIGINS"]
        );
    }

    #[test]
    fn bad_sets_name_the_key_and_the_rule() {
        let env = HostEnv::Staging;
        let message = |text: &str| Assignment::parse(text, env).unwrap_err().to_string();
        assert!(message("NOT_A_VARIABLE=1").contains("NOT_A_VARIABLE: unknown variable"));
        assert!(message("JWT_SECRET=abc").contains("a secret never goes into the env file"));
        assert!(message("APP_ENV=production").contains("--env staging"));
        assert!(message("WECHAT_APPID=wx0000000000000000").contains("placeholder"));
        assert!(message("WECHAT_APPID").contains("KEY=VALUE"));
        assert!(message("MAINTENANCE_MESSAGE=it's down").contains("single quotes"));
        assert!(Assignment::parse("AVALON_API_IMAGE=ghcr.io/a/avalon-api:1.0.0", env).is_ok());
    }

    #[test]
    fn the_shipped_templates_have_exactly_the_appid_to_fill() {
        for env in [HostEnv::Prod, HostEnv::Staging] {
            let template = read_template(env).unwrap();
            let text = desired(None, &template, env, &[]).unwrap();
            assert_eq!(
                placeholders(&text, &template).unwrap(),
                ["WECHAT_APPID"],
                "{}",
                env.name()
            );
        }
    }
}
