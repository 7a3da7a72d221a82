//! Reads typed values out of the merged layers, collecting every violation instead of stopping at the first.

use super::sources::{Layers, Resolved};
use super::spec::{AppEnv, Var};
use super::violation::Violation;

pub struct Reader<'a> {
    layers: &'a Layers,
    pub app_env: AppEnv,
    violations: Vec<Violation>,
}

impl<'a> Reader<'a> {
    pub fn new(layers: &'a Layers, app_env: AppEnv) -> Reader<'a> {
        Reader {
            layers,
            app_env,
            violations: Vec::new(),
        }
    }

    /// The layered value. Layers hold no empty value except an empty default: an empty input is either
    /// unset or refused where the layers are built (see `sources`).
    pub fn raw(&self, var: &Var) -> Option<Resolved> {
        self.layers.get(var)
    }

    /// The parsed value, its default when unset, or `None` (with a violation recorded when it was invalid).
    pub fn value<T>(
        &mut self,
        var: &Var,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let resolved = self.raw(var)?;
        match parse(&resolved.value) {
            Ok(value) => Some(value),
            Err(rule) => {
                self.violate_with_value(var, &resolved, &rule);
                None
            }
        }
    }

    /// Like [`Reader::value`], but an unset variable is itself a violation.
    pub fn required<T>(
        &mut self,
        var: &Var,
        why: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.raw(var).is_none() {
            self.violate(var, format!("is required {why}"));
            return None;
        }
        self.value(var, parse)
    }

    /// A development-only switch: parsed as a boolean and refused when on outside development.
    pub fn development_switch(&mut self, var: &Var) -> bool {
        let enabled = self.value(var, super::parse::boolean).unwrap_or(false);
        if enabled && self.app_env != AppEnv::Development {
            self.violate(
                var,
                format!(
                    "is a development-only switch and must be off when APP_ENV={}",
                    self.app_env.name()
                ),
            );
            return false;
        }
        enabled
    }

    pub fn violate(&mut self, var: &Var, rule: impl Into<String>) {
        if !self.layers.is_unresolved(var) {
            self.violations.push(Violation::new(var.name, rule));
        }
    }

    fn violate_with_value(&mut self, var: &Var, resolved: &Resolved, rule: &str) {
        if self.layers.is_unresolved(var) {
            return;
        }
        let shown = if var.secret {
            format!("(value hidden, from {})", resolved.origin)
        } else {
            format!("(got {:?} from {})", resolved.value, resolved.origin)
        };
        self.violations
            .push(Violation::new(var.name, format!("{rule} {shown}")));
    }

    pub fn finish(self) -> Vec<Violation> {
        self.violations
    }
}
