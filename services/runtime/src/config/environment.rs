//! The one reader of the process environment. Names and values are kept as the OS gave them (bytes, not
//! necessarily UTF-8) until validation decides what they mean: a value of one of our variables that is not
//! UTF-8 is a violation naming it, anything else that is not UTF-8 is none of our business.
//!
//! `std::env::vars()` would panic on the first non-UTF-8 byte anywhere in the environment, and the panic
//! message prints the value, secrets included.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;

/// A snapshot of environment variables. `Debug` shows the names only: values may be secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<OsString, OsString>,
}

/// A variable whose value is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;

impl Environment {
    /// The environment of this process, read once.
    pub fn of_process() -> Environment {
        std::env::vars_os().collect()
    }

    /// Sets (or replaces) one variable.
    pub fn set(&mut self, name: &str, value: impl Into<OsString>) {
        self.vars.insert(OsString::from(name), value.into());
    }

    pub fn remove(&mut self, name: &str) {
        self.vars.remove(OsStr::new(name));
    }

    /// The value of `name` as text: `None` when unset, `Some(Err(NotUtf8))` when it holds other bytes.
    pub fn text(&self, name: &str) -> Option<Result<&str, NotUtf8>> {
        self.vars
            .get(OsStr::new(name))
            .map(|value| value.to_str().ok_or(NotUtf8))
    }

    /// Names that are valid UTF-8 (ours all are), in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().filter_map(|name| name.to_str())
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.vars.keys().map(|name| name.to_string_lossy()))
            .finish()
    }
}

impl FromIterator<(OsString, OsString)> for Environment {
    fn from_iter<I: IntoIterator<Item = (OsString, OsString)>>(iter: I) -> Environment {
        Environment {
            vars: iter.into_iter().collect(),
        }
    }
}

impl From<BTreeMap<String, String>> for Environment {
    fn from(vars: BTreeMap<String, String>) -> Environment {
        vars.into_iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    #[test]
    fn non_utf8_values_are_kept_and_reported_not_panicked_on() {
        let env: Environment = [
            (
                OsString::from("JWT_SECRET"),
                OsString::from_vec(b"abc\xff".to_vec()),
            ),
            (OsString::from_vec(b"\xfeODD".to_vec()), OsString::from("x")),
            (OsString::from("PORT"), OsString::from("3000")),
        ]
        .into_iter()
        .collect();
        assert_eq!(env.text("JWT_SECRET"), Some(Err(NotUtf8)));
        assert_eq!(env.text("PORT"), Some(Ok("3000")));
        assert_eq!(env.text("MISSING"), None);
        assert_eq!(env.names().collect::<Vec<_>>(), ["JWT_SECRET", "PORT"]);
        let debug = format!("{env:?}");
        assert!(
            debug.contains("JWT_SECRET") && !debug.contains("abc"),
            "{debug}"
        );
    }
}
