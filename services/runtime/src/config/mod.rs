//! Configuration: defaults → `config/<APP_ENV>.toml` → environment → `<NAME>_FILE` secrets, validated as a
//! whole so that every broken rule is reported at once, before the process binds a port.
//!
//! `cargo xtask config check` calls [`check`], the same function the services call at start-up, so both reject
//! exactly the same things with the same messages.

mod environment;
mod lookalike;
mod parse;
mod reader;
mod secret;
mod settings;
mod sources;
pub mod spec;
mod violation;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use environment::{Environment, NotUtf8};
pub use secret::Secret;
pub use settings::{
    AdminAllowlist, ApiSettings, Common, IpBlock, Lifecycle, Live, LogFormat, Maintenance,
    MongoPool, RedisSettings, RegistrySettings, ServiceSettings, WechatSettings, WsSettings,
};
pub use sources::{Layers, Resolved, Sources};
pub use spec::{AppEnv, ServiceKind};
pub use violation::{Invalid, Violation};

/// A service's validated configuration at one moment.
#[derive(Debug, Clone)]
pub struct Config<S> {
    pub common: Common,
    pub service: S,
    pub live: Live,
    /// The TOML layer this configuration looked for (watched for hot reload).
    pub config_file: PathBuf,
    /// Non-reloadable values as loaded, to tell on reload which of them would need a restart.
    fixed_values: FixedValues,
    /// Accepted but suspicious (unknown variables that look like ours, in development): logged at start.
    pub warnings: Vec<Violation>,
}

/// Fingerprints of fixed values; secrets are hashed so that no copy of them sits in plain text here, and
/// `Debug` shows only the names.
#[derive(Clone, PartialEq, Eq)]
struct FixedValues(BTreeMap<&'static str, String>);

impl std::fmt::Debug for FixedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl<S: ServiceSettings> Config<S> {
    pub fn load(sources: &Sources) -> Result<Config<S>, Invalid> {
        let layers = sources.layer();
        let mut violations = layers.problems().to_vec();
        let mut reader = reader::Reader::new(&layers, layers.app_env());
        let common = settings::read_common(&mut reader);
        let service = S::read(&mut reader);
        let live = settings::read_live(&mut reader);
        violations.extend(reader.finish());
        match (common, service, live) {
            (Some(common), Some(service), Some(live)) if violations.is_empty() => Ok(Config {
                common,
                service,
                live,
                config_file: layers.config_file().to_path_buf(),
                fixed_values: fixed_values(&layers, S::KIND),
                warnings: layers.warnings().to_vec(),
            }),
            _ if violations.is_empty() => {
                // Every refused value records its rule; this guards the report against a reader that forgot,
                // so that an operator never sees "0 problems".
                Err(Invalid {
                    violations: vec![Violation::new(
                        "configuration",
                        "a value was refused without a rule being recorded (a bug: please report it)",
                    )],
                })
            }
            _ => Err(Invalid { violations }),
        }
    }

    /// This service's own listening port.
    pub fn port(&self) -> u16 {
        match S::KIND {
            ServiceKind::Api => self.common.api_port,
            ServiceKind::Ws => self.common.ws_port,
        }
    }

    /// Names of non-reloadable variables whose value differs in `newer`: they need a restart to apply.
    pub fn needs_restart(&self, newer: &Config<S>) -> Vec<&'static str> {
        let (before, after) = (&self.fixed_values.0, &newer.fixed_values.0);
        let mut changed: Vec<&'static str> = before
            .keys()
            .chain(after.keys())
            .filter(|name| before.get(*name) != after.get(*name))
            .copied()
            .collect();
        changed.sort_unstable();
        changed.dedup();
        changed
    }
}

fn fixed_values(layers: &Layers, service: ServiceKind) -> FixedValues {
    use std::hash::{Hash, Hasher};
    let fingerprint = |var: &spec::Var, value: String| {
        if !var.secret {
            return value;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        value.hash(&mut hasher);
        format!("hash:{:016x}", hasher.finish())
    };
    FixedValues(
        spec::ALL
            .iter()
            .filter(|var| !var.reloadable && var.scope.includes(service))
            .filter_map(|var| Some((var.name, fingerprint(var, layers.get(var)?.value))))
            .collect(),
    )
}

/// What would be accepted but looks wrong: unknown variables that look like ours, in development (they
/// are violations in staging and production).
pub fn warnings(sources: &Sources) -> Vec<Violation> {
    sources.layer().warnings().to_vec()
}

/// Validates the configuration of the given services; violations of all of them, without duplicates.
pub fn check(sources: &Sources, services: &[ServiceKind]) -> Vec<Violation> {
    let mut all: Vec<Violation> = Vec::new();
    for service in services {
        let violations = match service {
            ServiceKind::Api => Config::<ApiSettings>::load(sources).err(),
            ServiceKind::Ws => Config::<WsSettings>::load(sources).err(),
        };
        for violation in violations
            .map(|invalid| invalid.violations)
            .unwrap_or_default()
        {
            if !all.contains(&violation) {
                all.push(violation);
            }
        }
    }
    all
}

#[cfg(test)]
mod tests;
