//! `cargo xtask version --resolve [X.Y.Z] [--release-outcome FILE]`: which released version a deploy should
//! use, and its images — read-only.
//!
//! - With a release outcome (the `outcome.json` of the release run that triggered the deploy, from its
//!   artifact): whether that run released anything at all, and if so its version and images — by registry
//!   digest when they were pushed, so the target pulls exactly the bits the release built.
//! - Without one: the version asked for (its `v` tag must exist) or the newest release tag, and the images
//!   by tag in `AVALON_IMAGE_REGISTRY` (the target pins the digest it pulls; the ledger records it).

use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use xshell::Shell;

use super::git;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Resolved {
    /// False when the triggering release run released nothing: there is nothing to deploy.
    pub released: bool,
    pub version: String,
    pub tag: String,
    pub api_image: String,
    pub ws_image: String,
}

pub fn resolve(
    sh: &Shell,
    requested: &str,
    outcome: Option<&Path>,
    registry: Option<&str>,
) -> anyhow::Result<Resolved> {
    if let Some(path) = outcome.filter(|p| !p.as_os_str().is_empty()) {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "--release-outcome: cannot read {} (the release run's artifact)",
                path.display()
            )
        })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--release-outcome: {} is not JSON", path.display()))?;
        let resolved =
            from_outcome(&json).with_context(|| format!("--release-outcome {}", path.display()))?;
        if !requested.trim().is_empty() && resolved.released {
            let asked = requested.trim().trim_start_matches('v');
            if asked != resolved.version {
                bail!(
                    "--resolve {asked} and the release outcome ({}) disagree",
                    resolved.version
                );
            }
        }
        return Ok(resolved);
    }
    let (version, tag) = from_tags(sh, requested)?;
    let registry = registry.map(|r| r.trim_end_matches('/')).unwrap_or("");
    let prefix = if registry.is_empty() {
        String::new()
    } else {
        format!("{registry}/")
    };
    Ok(Resolved {
        released: true,
        api_image: format!("{prefix}avalon-api:{version}"),
        ws_image: format!("{prefix}avalon-ws:{version}"),
        version,
        tag,
    })
}

fn from_tags(sh: &Shell, requested: &str) -> anyhow::Result<(String, String)> {
    git::ensure_repository(sh)?;
    let requested = requested.trim();
    if requested.is_empty() {
        let Some(tag) = git::last_release_tag(sh)? else {
            bail!("--resolve: no release yet (no v<semver> tag reachable from HEAD)");
        };
        return Ok((tag.version.to_string(), tag.name));
    }
    let version = semver::Version::parse(requested.trim_start_matches('v')).with_context(|| {
        format!("--resolve: {requested:?} is not a version (expected X.Y.Z, e.g. 0.2.0)")
    })?;
    let tag = format!("v{version}");
    if !git::tag_exists(sh, &tag)? {
        bail!("--resolve: {version} was never released (no tag {tag})");
    }
    Ok((version.to_string(), tag))
}

/// The answer from a release run's outcome (`cargo xtask release` writes it on every run).
pub fn from_outcome(outcome: &serde_json::Value) -> anyhow::Result<Resolved> {
    match outcome["released"].as_bool() {
        Some(false) => {
            let current = outcome["current"].as_str().unwrap_or_default().to_owned();
            eprintln!(
                "resolve: the release run released nothing ({}); nothing to deploy",
                outcome["reason"].as_str().unwrap_or("no reason given")
            );
            return Ok(Resolved {
                released: false,
                tag: if current.is_empty() {
                    String::new()
                } else {
                    format!("v{current}")
                },
                version: current,
                api_image: String::new(),
                ws_image: String::new(),
            });
        }
        Some(true) => {}
        None => bail!("`released` must be true or false"),
    }
    let version = outcome["version"]
        .as_str()
        .context("`version` is missing")?
        .to_owned();
    let image = |service: &str| -> anyhow::Result<String> {
        let entry = outcome["images"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|image| image["service"] == service)
            .with_context(|| format!("`images` has no {service} image"))?;
        // Pushed: the registry digest pins the bits. Exported: the release tag, which `image import` gives.
        let digest = entry["digests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .find(|d| d.contains("@sha256:"));
        let tag = entry["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
            .find(|t| t.ends_with(&format!(":{version}")));
        digest.or(tag).map(str::to_owned).with_context(|| {
            format!("the {service} image has neither a registry digest nor a tag {version}")
        })
    };
    Ok(Resolved {
        released: true,
        tag: outcome["tag"]
            .as_str()
            .map_or_else(|| format!("v{version}"), str::to_owned),
        api_image: image("api")?,
        ws_image: image("ws")?,
        version,
    })
}

/// In GitHub Actions, later steps and jobs read the answer as `steps.<id>.outputs.<name>`.
pub fn write_github_output(resolved: &Resolved) -> anyhow::Result<()> {
    crate::github_output::append(&[
        ("released", if resolved.released { "true" } else { "false" }),
        ("version", &resolved.version),
        ("tag", &resolved.tag),
        ("api_image", &resolved.api_image),
        ("ws_image", &resolved.ws_image),
    ])
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_pushed_release_deploys_its_registry_digests() {
        let outcome = json!({
            "released": true, "version": "0.4.0", "tag": "v0.4.0", "pushed": true,
            "images": [
                {"service": "api", "tags": ["avalon-api:0.4.0", "avalon-api:sha-abc"],
                 "digests": ["ghcr.io/o/avalon-api@sha256:aaa", "ghcr.io/o/avalon-api@sha256:aaa"]},
                {"service": "ws", "tags": ["avalon-ws:0.4.0"], "digests": ["ghcr.io/o/avalon-ws@sha256:bbb"]}
            ]
        });
        assert_eq!(
            from_outcome(&outcome).unwrap(),
            Resolved {
                released: true,
                version: "0.4.0".to_owned(),
                tag: "v0.4.0".to_owned(),
                api_image: "ghcr.io/o/avalon-api@sha256:aaa".to_owned(),
                ws_image: "ghcr.io/o/avalon-ws@sha256:bbb".to_owned(),
            }
        );
    }

    #[test]
    fn an_exported_release_deploys_its_release_tags() {
        let outcome = json!({
            "released": true, "version": "0.4.0", "pushed": false,
            "images": [
                {"service": "api", "tags": ["avalon-api:0.4.0-abc", "avalon-api:0.4.0"], "exports": []},
                {"service": "ws", "tags": ["avalon-ws:0.4.0"], "exports": []}
            ]
        });
        let resolved = from_outcome(&outcome).unwrap();
        assert_eq!(resolved.api_image, "avalon-api:0.4.0");
        assert_eq!(resolved.tag, "v0.4.0");
    }

    #[test]
    fn nothing_released_means_nothing_to_deploy() {
        let outcome =
            json!({"released": false, "reason": "no releasable commits", "current": "0.3.0"});
        let resolved = from_outcome(&outcome).unwrap();
        assert!(!resolved.released);
        assert_eq!(resolved.version, "0.3.0");
        assert!(resolved.api_image.is_empty());
    }

    #[test]
    fn a_broken_outcome_names_what_is_missing() {
        let err = from_outcome(&json!({"released": true, "version": "1.0.0", "images": []}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`images` has no api image"), "{err}");
        assert!(
            from_outcome(&json!({}))
                .unwrap_err()
                .to_string()
                .contains("`released`")
        );
    }
}
