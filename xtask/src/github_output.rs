//! `$GITHUB_OUTPUT`: how a GitHub Actions step hands values to later steps and jobs
//! (`steps.<id>.outputs.<name>`). Outside Actions the variable is unset and nothing is written.

use std::io::Write as _;

use anyhow::{Context, bail};

/// Appends `name=value` lines to the file `$GITHUB_OUTPUT` names; returns whether it was set.
pub fn append(pairs: &[(&str, &str)]) -> anyhow::Result<bool> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let mut text = String::new();
    for (name, value) in pairs {
        if value.contains('\n') || name.contains(['\n', '=']) {
            bail!("$GITHUB_OUTPUT: {name} must be one line without '='");
        }
        text.push_str(&format!("{name}={value}\n"));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .context("writing $GITHUB_OUTPUT")?;
    Ok(true)
}
