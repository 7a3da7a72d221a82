//! A broken configuration rule, naming the variable (or file) and the rule.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The variable, `<NAME>_FILE` variant or file the rule is about.
    pub variable: String,
    /// The rule, phrased as what is required, with the offending value unless it is secret.
    pub rule: String,
}

impl Violation {
    pub fn new(variable: impl Into<String>, rule: impl Into<String>) -> Violation {
        Violation {
            variable: variable.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.rule)
    }
}

/// Every violation of one load, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    pub violations: Vec<Violation>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.violations.len();
        writeln!(
            f,
            "invalid configuration ({count} problem{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for violation in &self.violations {
            writeln!(f, "  - {violation}")?;
        }
        Ok(())
    }
}
