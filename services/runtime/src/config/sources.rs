//! Where configuration values come from, in increasing precedence:
//! defaults → `config/<APP_ENV>.toml` → environment variables → `<NAME>_FILE` secrets.
//! Layering and provenance are figment's; this module only decides which layers exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};

use super::spec::{self, Var};
use super::violation::Violation;

/// The inputs of one load: a snapshot of the environment and the directory of TOML layers.
#[derive(Debug, Clone)]
pub struct Sources {
    env: BTreeMap<String, String>,
    config_dir: PathBuf,
}

impl Sources {
    /// The process environment, with `CONFIG_DIR` resolved against the working directory.
    pub fn from_process() -> Sources {
        Sources::from_env(std::env::vars().collect())
    }

    /// An explicit environment (tests, `cargo xtask config check --env-file`).
    pub fn from_env(env: BTreeMap<String, String>) -> Sources {
        let config_dir = env
            .get(spec::CONFIG_DIR.name)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(spec::CONFIG_DIR.default.unwrap_or("config")));
        Sources { env, config_dir }
    }

    /// Reads a dotenv-style file (`KEY=value` lines, `#` comments) into an environment map.
    pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, Violation> {
        let entries = dotenvy::from_path_iter(path).map_err(|err| {
            Violation::new(
                path.display().to_string(),
                format!("cannot read env file: {err}"),
            )
        })?;
        let mut env = BTreeMap::new();
        for entry in entries {
            let (key, value) = entry.map_err(|err| {
                Violation::new(
                    path.display().to_string(),
                    format!("not a valid env file: {err}"),
                )
            })?;
            env.insert(key, value);
        }
        Ok(env)
    }

    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The TOML layer for an environment name, whether or not it exists.
    pub fn config_file(&self, app_env: &str) -> PathBuf {
        self.config_dir.join(format!("{app_env}.toml"))
    }

    /// Resolves every layer. A broken layer (unreadable or invalid file, unknown key, unreadable secret file)
    /// is left out and reported in [`Layers::problems`], so validation still reports everything else.
    pub fn layer(&self) -> Layers {
        let mut violations = Vec::new();
        let app_env = self
            .env_var(spec::APP_ENV.name)
            .or(spec::APP_ENV.default)
            .unwrap_or("development");

        let mut figment = Figment::new().merge(NamedMap::new("default", defaults()));

        let file = self.config_file(app_env);
        if file.is_file() {
            match toml_layer(&file) {
                Ok(provider) => figment = figment.merge(provider),
                Err(violation) => violations.push(violation),
            }
        }

        figment = figment.merge(NamedMap::new("environment variable", self.known_env()));

        let (secret_files, secret_violations, unresolved) = self.secret_files();
        violations.extend(secret_violations);
        for (key, (path, value)) in secret_files {
            let name = format!("secret file {}", path.display());
            figment = figment.merge(NamedMap::new(&name, BTreeMap::from([(key, value)])));
        }

        Layers {
            figment,
            file,
            problems: violations,
            unresolved,
        }
    }

    fn known_env(&self) -> BTreeMap<String, String> {
        spec::ALL
            .iter()
            .filter_map(|var| Some((var.toml_key(), self.env.get(var.name)?.clone())))
            .collect()
    }

    #[allow(clippy::type_complexity)]
    fn secret_files(
        &self,
    ) -> (
        BTreeMap<String, (PathBuf, String)>,
        Vec<Violation>,
        BTreeSet<&'static str>,
    ) {
        let mut values = BTreeMap::new();
        let mut violations = Vec::new();
        let mut unresolved = BTreeSet::new();
        for var in spec::ALL.iter().filter(|var| var.secret) {
            let file_var = var.file_variant();
            let Some(path) = self.env.get(&file_var) else {
                continue;
            };
            if self.env.contains_key(var.name) {
                violations.push(Violation::new(
                    &file_var,
                    format!("set either {} or {file_var}, not both", var.name),
                ));
                continue;
            }
            match std::fs::read_to_string(path) {
                // Secret files usually end with a newline that is not part of the secret.
                Ok(content) => {
                    let secret = content.trim_end_matches(['\n', '\r']).to_owned();
                    values.insert(var.toml_key(), (PathBuf::from(path), secret));
                }
                Err(err) => {
                    violations.push(Violation::new(
                        &file_var,
                        format!("cannot read secret file {path}: {err}"),
                    ));
                    unresolved.insert(var.name);
                }
            }
        }
        (values, violations, unresolved)
    }
}

fn defaults() -> BTreeMap<String, String> {
    spec::ALL
        .iter()
        .filter_map(|var| Some((var.toml_key(), var.default?.to_owned())))
        .collect()
}

fn toml_layer(file: &Path) -> Result<NamedMap, Violation> {
    let origin = file.display().to_string();
    let data = Toml::file_exact(file)
        .data()
        .map_err(|err| Violation::new(&origin, format!("not valid TOML: {err}")))?;
    let mut values = BTreeMap::new();
    for (key, value) in data.into_values().flatten() {
        let Some(var) = spec::ALL.iter().find(|var| var.toml_key() == key) else {
            return Err(Violation::new(
                &origin,
                format!("unknown key `{key}` (keys are the variable names in lower case)"),
            ));
        };
        if var.name == spec::APP_ENV.name || var.name == spec::CONFIG_DIR.name {
            return Err(Violation::new(
                &origin,
                format!("`{key}` selects the file itself and can only be set in the environment"),
            ));
        }
        let text = match value.deserialize::<serde_json::Value>() {
            Ok(serde_json::Value::String(text)) => text,
            Ok(serde_json::Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join(","),
            Ok(other) => other.to_string(),
            Err(err) => return Err(Violation::new(&origin, format!("`{key}`: {err}"))),
        };
        values.insert(key, text);
    }
    Ok(NamedMap::new(&origin, values))
}

/// A flat string map as a figment layer whose name shows up as the value's origin.
struct NamedMap {
    name: String,
    values: BTreeMap<String, String>,
}

impl NamedMap {
    fn new(name: &str, values: BTreeMap<String, String>) -> NamedMap {
        NamedMap {
            name: name.to_owned(),
            values,
        }
    }
}

impl Provider for NamedMap {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = self
            .values
            .iter()
            .map(|(key, value)| (key.clone(), value.clone().into()))
            .collect();
        Ok(Map::from([(Profile::Default, dict)]))
    }
}

/// A value after layering, with the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: String,
    pub origin: String,
}

/// The merged layers of one load.
#[derive(Debug, Clone)]
pub struct Layers {
    figment: Figment,
    file: PathBuf,
    problems: Vec<Violation>,
    /// Variables whose own source failed (an unreadable secret file): their other rules are not checked, as
    /// the default would stand in for the value the operator meant.
    unresolved: BTreeSet<&'static str>,
}

impl Layers {
    pub fn get(&self, var: &Var) -> Option<Resolved> {
        let key = var.toml_key();
        let value = self.figment.extract_inner::<String>(&key).ok()?;
        let origin = self
            .figment
            .find_metadata(&key)
            .map_or_else(|| "unknown".to_owned(), |meta| meta.name.to_string());
        Some(Resolved { value, origin })
    }

    /// Problems with the layers themselves.
    pub fn problems(&self) -> &[Violation] {
        &self.problems
    }

    pub fn is_unresolved(&self, var: &Var) -> bool {
        self.unresolved.contains(var.name)
    }

    /// The TOML layer this load looked for (it may not exist).
    pub fn config_file(&self) -> &Path {
        &self.file
    }
}
