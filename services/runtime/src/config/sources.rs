//! Where configuration values come from, in increasing precedence:
//! defaults → `config/<APP_ENV>.toml` → environment variables → `<NAME>_FILE` secrets.
//! Layering and provenance are figment's; this module only decides which layers exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};

use super::environment::{Environment, NotUtf8};
use super::lookalike;
use super::spec::{self, AppEnv, Var};
use super::violation::Violation;

/// The inputs of one load: a snapshot of the environment and the directory of TOML layers.
#[derive(Debug, Clone)]
pub struct Sources {
    env: Environment,
    config_dir: PathBuf,
}

impl Sources {
    /// The process environment, with `CONFIG_DIR` resolved against the working directory.
    pub fn from_process() -> Sources {
        Sources::from_env(Environment::of_process())
    }

    /// An explicit environment (tests, `cargo xtask config check --env-file`).
    pub fn from_env(env: impl Into<Environment>) -> Sources {
        let env = env.into();
        let config_dir = env
            .text(spec::CONFIG_DIR.name)
            .and_then(Result::ok)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(spec::CONFIG_DIR.default.unwrap_or("config")));
        Sources { env, config_dir }
    }

    /// Reads a dotenv-style file (`KEY=value` lines, `#` comments) into an environment.
    pub fn read_env_file(path: &Path) -> Result<Environment, Violation> {
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
        Ok(env.into())
    }

    /// The value of a variable when it is set and valid UTF-8.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.text(name).and_then(Result::ok)
    }

    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The TOML layer for an environment name, whether or not it exists.
    pub fn config_file(&self, app_env: &str) -> PathBuf {
        self.config_dir.join(format!("{app_env}.toml"))
    }

    /// Resolves every layer. A broken input (a value that is not UTF-8, an empty value where a default
    /// exists, an unreadable or invalid file, an unknown key, a secret in the TOML file, an unreadable
    /// secret file) is left out and reported in [`Layers::problems`], so validation still reports
    /// everything else.
    pub fn layer(&self) -> Layers {
        let mut inputs = Inputs::default();
        let app_env = self.app_env(&mut inputs);
        let file_env = self
            .env_var(spec::APP_ENV.name)
            .filter(|name| !name.is_empty())
            .or(spec::APP_ENV.default)
            .unwrap_or("development");

        let mut figment = Figment::new().merge(NamedMap::new("default", defaults()));

        let file = self.config_file(file_env);
        if file.is_file()
            && let Some(values) = toml_layer(&file, &mut inputs)
        {
            figment = figment.merge(NamedMap::new(&file.display().to_string(), values));
        }

        figment = figment.merge(NamedMap::new(ENV_ORIGIN, self.known_env(&mut inputs)));

        for (key, (path, value)) in self.secret_files(&mut inputs) {
            let name = format!("secret file {}", path.display());
            figment = figment.merge(NamedMap::new(&name, BTreeMap::from([(key, value)])));
        }

        let mut warnings = Vec::new();
        let lookalikes = lookalike::lookalikes(self.env.names());
        if app_env == AppEnv::Development {
            warnings = lookalikes;
        } else {
            inputs.problems.extend(lookalikes);
        }

        Layers {
            figment,
            file,
            app_env,
            problems: inputs.problems,
            warnings,
            unresolved: inputs.unresolved,
        }
    }

    /// `APP_ENV` decides how strictly everything else is checked; a broken value is a problem and the
    /// rest is validated as production, the strictest.
    fn app_env(&self, inputs: &mut Inputs) -> AppEnv {
        let var = &spec::APP_ENV;
        match self.env.text(var.name) {
            None => AppEnv::Development,
            Some(Err(NotUtf8)) => {
                inputs.not_utf8(var, var.name);
                AppEnv::Production
            }
            Some(Ok("")) => {
                inputs.empty(var, var.name);
                AppEnv::Production
            }
            Some(Ok(text)) => AppEnv::parse(text).unwrap_or_else(|rule| {
                inputs.refuse(
                    var,
                    var.name,
                    format!("{rule} (got {text:?}); validating as production"),
                );
                AppEnv::Production
            }),
        }
    }

    fn known_env(&self, inputs: &mut Inputs) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        // APP_ENV was read first, by `app_env`; a refusal there is not repeated here.
        let already_refused = inputs.unresolved.clone();
        for var in spec::ALL
            .iter()
            .filter(|var| !already_refused.contains(var.name))
        {
            match self.env.text(var.name) {
                None => {}
                Some(Err(NotUtf8)) => inputs.not_utf8(var, var.name),
                Some(Ok(value)) => {
                    if let Some(value) = inputs.admit(var, var.name, value) {
                        values.insert(var.toml_key(), value.to_owned());
                    }
                }
            }
        }
        values
    }

    /// `<NAME>_FILE` secrets: path, and content without its trailing line break.
    fn secret_files(&self, inputs: &mut Inputs) -> BTreeMap<String, (PathBuf, String)> {
        let mut values = BTreeMap::new();
        for var in spec::ALL.iter().filter(|var| var.secret) {
            let file_var = var.file_variant();
            let path = match self.env.text(&file_var) {
                None | Some(Ok("")) => continue,
                Some(Err(NotUtf8)) => {
                    inputs.not_utf8(var, &file_var);
                    continue;
                }
                Some(Ok(path)) => path,
            };
            if self.env.text(var.name).is_some_and(|value| value != Ok("")) {
                inputs.refuse(
                    var,
                    &file_var,
                    format!("set either {} or {file_var}, not both", var.name),
                );
                continue;
            }
            let content = match std::fs::read_to_string(path) {
                Ok(content) => content,
                Err(err) => {
                    inputs.refuse(
                        var,
                        &file_var,
                        format!("cannot read secret file {path}: {err}"),
                    );
                    continue;
                }
            };
            // Secret files usually end with a line break (`echo secret > file`) that is not part of it.
            let secret = content.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                inputs.refuse(var, &file_var, format!("secret file {path} is empty"));
            } else if let Some(secret) = inputs.admit(var, &file_var, secret) {
                values.insert(var.toml_key(), (PathBuf::from(path), secret.to_owned()));
            }
        }
        values
    }
}

const ENV_ORIGIN: &str = "environment variable";

/// What the inputs of one load broke, gathered while the layers are built.
#[derive(Default)]
struct Inputs {
    problems: Vec<Violation>,
    /// Variables whose own input was refused: their other rules are not checked, as the default (or a
    /// lower layer) would stand in for the value the operator meant.
    unresolved: BTreeSet<&'static str>,
}

impl Inputs {
    fn refuse(&mut self, var: &'static Var, variable: &str, rule: impl Into<String>) {
        self.problems.push(Violation::new(variable, rule));
        self.unresolved.insert(var.name);
    }

    fn not_utf8(&mut self, var: &'static Var, variable: &str) {
        self.refuse(
            var,
            variable,
            "must be UTF-8 text: the value holds other bytes (value hidden)",
        );
    }

    fn empty(&mut self, var: &'static Var, variable: &str) {
        let default = match var.default {
            Some(_) if var.secret => {
                "the development value (refused outside development)".to_owned()
            }
            Some(default) => format!("the default `{default}`"),
            None => "no value".to_owned(),
        };
        self.refuse(
            var,
            variable,
            format!("must not be empty; unset it to use {default}"),
        );
    }

    /// The one rule for a raw value of any layer: an empty value is unset where the variable has no
    /// default (or an empty one) and refused where it has one, so an empty value never silently becomes
    /// the default; a secret must be one line of printable text.
    fn admit<'v>(&mut self, var: &'static Var, variable: &str, value: &'v str) -> Option<&'v str> {
        if value.is_empty() {
            match var.default {
                None => return None,
                Some("") => return Some(value),
                Some(_) => {
                    self.empty(var, variable);
                    return None;
                }
            }
        }
        if var.secret && value.chars().any(char::is_control) {
            self.refuse(
                var,
                variable,
                "must be one line: no line break or other control character (value hidden)",
            );
            return None;
        }
        Some(value)
    }
}

fn defaults() -> BTreeMap<String, String> {
    spec::ALL
        .iter()
        .filter_map(|var| Some((var.toml_key(), var.default?.to_owned())))
        .collect()
}

/// The values of a TOML layer, or `None` (with the problems recorded) when the file cannot be used as a
/// whole: a half-applied file would be worse than none.
fn toml_layer(file: &Path, inputs: &mut Inputs) -> Option<BTreeMap<String, String>> {
    let origin = file.display().to_string();
    let data = match Toml::file_exact(file).data() {
        Ok(data) => data,
        Err(err) => {
            inputs
                .problems
                .push(Violation::new(&origin, format!("not valid TOML: {err}")));
            return None;
        }
    };
    let before = inputs.problems.len();
    let mut values = BTreeMap::new();
    for (key, value) in data.into_values().flatten() {
        let Some(var) = spec::ALL.iter().copied().find(|var| var.toml_key() == key) else {
            inputs.problems.push(Violation::new(
                &origin,
                format!("unknown key `{key}` (keys are the variable names in lower case)"),
            ));
            continue;
        };
        if var.name == spec::APP_ENV.name || var.name == spec::CONFIG_DIR.name {
            inputs.problems.push(Violation::new(
                &origin,
                format!("`{key}` selects the file itself and can only be set in the environment"),
            ));
            continue;
        }
        if var.secret {
            inputs.refuse(
                var,
                var.name,
                format!(
                    "must not be set in {origin} (`{key}`): secrets come only from the environment or {} (value hidden)",
                    var.file_variant()
                ),
            );
            continue;
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
            Err(err) => {
                inputs
                    .problems
                    .push(Violation::new(&origin, format!("`{key}`: {err}")));
                continue;
            }
        };
        if let Some(text) = inputs.admit(var, var.name, &text) {
            values.insert(key, text.to_owned());
        }
    }
    (inputs.problems.len() == before).then_some(values)
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
    app_env: AppEnv,
    problems: Vec<Violation>,
    warnings: Vec<Violation>,
    /// Variables whose own input was refused (see `Inputs`): their other rules are not checked.
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

    /// The environment to validate for; production when `APP_ENV` itself is broken.
    pub fn app_env(&self) -> AppEnv {
        self.app_env
    }

    /// Problems with the layers themselves.
    pub fn problems(&self) -> &[Violation] {
        &self.problems
    }

    /// What is suspicious but allowed here: unknown variables that look like ours, in development.
    pub fn warnings(&self) -> &[Violation] {
        &self.warnings
    }

    pub fn is_unresolved(&self, var: &Var) -> bool {
        self.unresolved.contains(var.name)
    }

    /// The TOML layer this load looked for (it may not exist).
    pub fn config_file(&self) -> &Path {
        &self.file
    }
}
