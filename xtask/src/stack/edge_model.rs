//! The edge model `up` renders: the overlay's shipped model (or AVALON_EDGE_MODEL, or the built-in
//! plain-HTTP one), with the host's settings that the API also reads applied to it, so edge and API never
//! disagree: the body limit (`API_BODY_LIMIT`) and the admin addresses let through maintenance
//! (`AVALON_ADMIN_ALLOWLIST`, which the compose files hand the API as `ADMIN_ALLOWLIST`).

use std::path::PathBuf;

use anyhow::{Context, bail};

use super::compose::Stack;
use crate::nginx::EdgeModel;

/// Where the model came from, for messages.
pub struct ChosenModel {
    pub model: EdgeModel,
    pub origin: String,
}

pub fn for_stack(stack: &Stack) -> anyhow::Result<ChosenModel> {
    let file: Option<PathBuf> = stack
        .var("AVALON_EDGE_MODEL")
        .map(PathBuf::from)
        .or_else(|| stack.env.edge_model_file());
    let (mut model, origin) = match file {
        Some(path) => (EdgeModel::load(&path)?, path.display().to_string()),
        None => (EdgeModel::default(), "the built-in model".to_owned()),
    };
    apply_host_settings(
        &mut model,
        stack.var("API_BODY_LIMIT").as_deref(),
        stack.var("AVALON_ADMIN_ALLOWLIST").as_deref(),
    )?;
    model
        .validate()
        .with_context(|| format!("the edge model from {origin}"))?;
    Ok(ChosenModel { model, origin })
}

/// Applies the host's `API_BODY_LIMIT` and the address entries of its admin allow-list (the `user:<id>`
/// entries only mean something to the API). Errors name the variable and the rule.
pub fn apply_host_settings(
    model: &mut EdgeModel,
    body_limit: Option<&str>,
    admin_allowlist: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(text) = body_limit {
        let (least, most) = crate::nginx::API_BODY_LIMIT_RANGE;
        match text.trim().parse::<u32>() {
            Ok(bytes) if (least..=most).contains(&bytes) => model.api_body_limit = bytes,
            _ => bail!(
                "API_BODY_LIMIT: must be a number of bytes from {least} to {most}, got {text:?}"
            ),
        }
    }
    for entry in admin_allowlist
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty() && !entry.starts_with("user:"))
    {
        let block = avalon_runtime::config::IpBlock::parse(entry)
            .map_err(|rule| anyhow::anyhow!("AVALON_ADMIN_ALLOWLIST: {rule}"))?;
        let cidr = format!("{}/{}", block.network, block.prefix);
        if !model.maintenance.allow.contains(&cidr) {
            model.maintenance.allow.push(cidr);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_settings_reach_the_edge() {
        let mut model = EdgeModel::default();
        apply_host_settings(
            &mut model,
            Some("131072"),
            Some("203.0.113.7, user:u_admin, 198.51.100.0/24"),
        )
        .unwrap();
        assert_eq!(model.api_body_limit, 131_072);
        assert!(
            model
                .maintenance
                .allow
                .contains(&"203.0.113.7/32".to_owned())
        );
        assert!(
            model
                .maintenance
                .allow
                .contains(&"198.51.100.0/24".to_owned())
        );
        assert!(
            !model
                .maintenance
                .allow
                .iter()
                .any(|cidr| cidr.contains("user"))
        );
        model.validate().unwrap();
    }

    #[test]
    fn bad_host_settings_name_the_variable() {
        let mut model = EdgeModel::default();
        let err = apply_host_settings(&mut model, Some("1kb"), None).unwrap_err();
        assert!(err.to_string().starts_with("API_BODY_LIMIT:"), "{err}");
        let err = apply_host_settings(&mut model, None, Some("10.0.0.0/33")).unwrap_err();
        assert!(
            err.to_string().starts_with("AVALON_ADMIN_ALLOWLIST:"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_prod_model_serves_https() {
        let model =
            EdgeModel::load(&crate::project::root().join("nginx/models/prod.json")).unwrap();
        model.validate().unwrap();
        let tls = model.tls.expect("prod model has TLS");
        assert_eq!(tls.cert, "/etc/ssl/avalon/fullchain.pem");
        assert_eq!(model.listen.https, 443);
    }
}
