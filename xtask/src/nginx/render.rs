//! Renders the edge model into a complete nginx tree with minijinja.
//!
//! The templates under `nginx/templates/` are compiled into xtask, so a deploy renders exactly what this
//! checkout tested. The tree's config id is a digest of the model and the template sources: the same
//! inputs give the same id, and the running nginx serves it at `/.avalon/config` so a reload can be verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::edge_errors::{EdgeError, edge_errors};
use super::model::EdgeModel;

/// Output path (relative to the tree) and template source, for every file of the tree.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "nginx.conf",
        include_str!("../../../nginx/templates/nginx.conf"),
    ),
    (
        "conf.d/routing.conf",
        include_str!("../../../nginx/templates/conf.d/routing.conf"),
    ),
    (
        "conf.d/maintenance.conf",
        include_str!("../../../nginx/templates/conf.d/maintenance.conf"),
    ),
    (
        "conf.d/upstreams.conf",
        include_str!("../../../nginx/templates/conf.d/upstreams.conf"),
    ),
    (
        "conf.d/servers.conf",
        include_str!("../../../nginx/templates/conf.d/servers.conf"),
    ),
    (
        "snippets/app.conf",
        include_str!("../../../nginx/templates/snippets/app.conf"),
    ),
    (
        "snippets/health.conf",
        include_str!("../../../nginx/templates/snippets/health.conf"),
    ),
    (
        "snippets/internal.conf",
        include_str!("../../../nginx/templates/snippets/internal.conf"),
    ),
    (
        "snippets/maintenance_gate.conf",
        include_str!("../../../nginx/templates/snippets/maintenance_gate.conf"),
    ),
    (
        "snippets/errors_json.conf",
        include_str!("../../../nginx/templates/snippets/errors_json.conf"),
    ),
    (
        "snippets/errors_html.conf",
        include_str!("../../../nginx/templates/snippets/errors_html.conf"),
    ),
    (
        "snippets/security_headers.conf",
        include_str!("../../../nginx/templates/snippets/security_headers.conf"),
    ),
    (
        "snippets/proxy.conf",
        include_str!("../../../nginx/templates/snippets/proxy.conf"),
    ),
    (
        "snippets/tls.conf",
        include_str!("../../../nginx/templates/snippets/tls.conf"),
    ),
    (
        "html/_edge/maintenance.html",
        include_str!("../../../nginx/templates/html/_edge/maintenance.html"),
    ),
    (
        "html/_edge/config.json",
        include_str!("../../../nginx/templates/html/_edge/config.json"),
    ),
];

/// The model as the tree was rendered from it, kept beside the config so the live state can be read back.
pub const MODEL_FILE: &str = "model.json";

/// What [`render`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedTree {
    pub dir: PathBuf,
    /// Digest of model + templates (16 hex digits).
    pub config_id: String,
    /// Files written, relative to `dir`.
    pub files: Vec<String>,
}

#[derive(Serialize)]
struct SplitEntry {
    share: String,
    slot: String,
}

#[derive(Serialize)]
struct OverrideEntry {
    value: String,
    slot: String,
}

/// A slot's upstream servers as rendered: its service names, or their members where the follower set any.
#[derive(Serialize)]
struct UpstreamEntry<'a> {
    name: &'a str,
    weight: u8,
    api: Vec<String>,
    websocket: Vec<String>,
}

#[derive(Serialize)]
struct TemplateContext<'a> {
    #[serde(flatten)]
    model: &'a EdgeModel,
    config_id: &'a str,
    http_listen: String,
    https_listen: String,
    https_port_suffix: String,
    split: Vec<SplitEntry>,
    overrides: Vec<OverrideEntry>,
    slot_weights: BTreeMap<&'a str, u8>,
    upstreams: Vec<UpstreamEntry<'a>>,
    retry_minutes: u32,
    edge_errors: Vec<EdgeError>,
}

/// The config id of `model` with this build's templates.
pub fn config_id(model: &EdgeModel) -> anyhow::Result<String> {
    let mut digest = Sha256::new();
    digest.update(serde_json::to_vec(model).context("cannot serialise the edge model")?);
    for (name, source) in TEMPLATES {
        digest.update(name.as_bytes());
        digest.update(source.as_bytes());
    }
    Ok(digest
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Validates `model` and writes the whole tree into `out` (created if missing; files of the same name are
/// overwritten, others left alone — render into an empty directory for a clean tree).
pub fn render(model: &EdgeModel, out: &Path) -> anyhow::Result<RenderedTree> {
    model.validate()?;
    let config_id = config_id(model)?;
    let context = minijinja::Value::from(minijinja::value::Serde(build_context(model, &config_id)));
    let env = environment()?;
    let mut files = Vec::new();
    for (name, _) in TEMPLATES {
        if name.ends_with("tls.conf") && model.tls.is_none() {
            continue;
        }
        let text = env
            .get_template(name)
            .and_then(|template| template.render(&context))
            .with_context(|| format!("cannot render template {name}"))?;
        write_file(&out.join(name), &text)?;
        files.push((*name).to_owned());
    }
    let model_json =
        serde_json::to_string_pretty(model).context("cannot serialise the edge model")?;
    write_file(&out.join(MODEL_FILE), &format!("{model_json}\n"))?;
    files.push(MODEL_FILE.to_owned());
    Ok(RenderedTree {
        dir: out.to_path_buf(),
        config_id,
        files,
    })
}

/// Reads back the model a rendered tree was made from.
pub fn read_tree_model(tree: &Path) -> anyhow::Result<EdgeModel> {
    EdgeModel::load(&tree.join(MODEL_FILE))
}

fn environment() -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .context("minijinja syntax configuration")?;
    env.set_syntax(syntax);
    // A missing variable is a template bug; fail rather than render an empty directive argument.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .with_context(|| format!("template {name} does not parse"))?;
    }
    Ok(env)
}

fn build_context<'a>(model: &'a EdgeModel, config_id: &'a str) -> TemplateContext<'a> {
    let listen = |port: u16| match &model.listen.address {
        Some(address) if address.contains(':') => format!("[{address}]:{port}"),
        Some(address) => format!("{address}:{port}"),
        None => port.to_string(),
    };
    TemplateContext {
        model,
        config_id,
        http_listen: listen(model.listen.http),
        https_listen: listen(model.listen.https),
        https_port_suffix: if model.listen.https == 443 {
            String::new()
        } else {
            format!(":{}", model.listen.https)
        },
        split: split_entries(model),
        overrides: override_entries(model),
        slot_weights: model
            .slots
            .iter()
            .map(|slot| (slot.name.as_str(), slot.weight))
            .collect(),
        upstreams: model
            .slots
            .iter()
            .map(|slot| UpstreamEntry {
                name: &slot.name,
                weight: slot.weight,
                api: model.upstream_servers(&slot.api),
                websocket: model.upstream_servers(&slot.websocket),
            })
            .collect(),
        retry_minutes: model.maintenance.retry_after.div_ceil(60).max(1),
        edge_errors: edge_errors(model),
    }
}

/// `split_clients` lines: each weighted slot its percentage, the last one `*` so rounding never leaves a
/// user without a slot. Weight-0 slots get no users (the override cookie still reaches them).
fn split_entries(model: &EdgeModel) -> Vec<SplitEntry> {
    let weighted: Vec<_> = model.slots.iter().filter(|slot| slot.weight > 0).collect();
    weighted
        .iter()
        .enumerate()
        .map(|(i, slot)| SplitEntry {
            share: if i + 1 == weighted.len() {
                "*".to_owned()
            } else {
                format!("{}%", slot.weight)
            },
            slot: slot.name.clone(),
        })
        .collect()
}

fn override_entries(model: &EdgeModel) -> Vec<OverrideEntry> {
    let mut entries: Vec<OverrideEntry> = model
        .slots
        .iter()
        .map(|slot| OverrideEntry {
            value: slot.name.clone(),
            slot: slot.name.clone(),
        })
        .collect();
    if let (Some(canary), Some(stable)) = (&model.canary.slot, model.stable_slot()) {
        entries.push(OverrideEntry {
            value: "always".to_owned(),
            slot: canary.clone(),
        });
        entries.push(OverrideEntry {
            value: "never".to_owned(),
            slot: stable.name.clone(),
        });
    }
    entries
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::nginx::model::{Slot, Tls};

    fn canary_model() -> EdgeModel {
        let mut model = EdgeModel::default();
        model.slots[0].weight = 90;
        model.slots.push(Slot {
            name: "green".to_owned(),
            api: vec!["api-green:3000".to_owned(), "api-green-2:3000".to_owned()],
            websocket: vec!["websocket-green:3001".to_owned()],
            weight: 10,
        });
        model.canary.slot = Some("green".to_owned());
        model
    }

    fn rendered(model: &EdgeModel, file: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        render(model, dir.path()).unwrap();
        std::fs::read_to_string(dir.path().join(file)).unwrap()
    }

    #[test]
    fn split_gives_weights_and_a_catch_all_with_overrides_for_testers() {
        let routing = rendered(&canary_model(), "conf.d/routing.conf");
        assert!(
            routing.contains("    90% blue;\n    * green;\n"),
            "{routing}"
        );
        assert!(
            routing.contains("    always green;\n    never blue;\n"),
            "{routing}"
        );
        assert!(
            routing.contains("map $cookie_avalon_uid $avalon_user_key"),
            "{routing}"
        );
    }

    #[test]
    fn upstreams_list_every_replica_of_every_slot() {
        let upstreams = rendered(&canary_model(), "conf.d/upstreams.conf");
        assert!(
            upstreams.contains("upstream avalon_api_green {\n    least_conn;"),
            "{upstreams}"
        );
        assert!(
            upstreams.contains("server api-green-2:3000 max_fails=3 fail_timeout=10s;"),
            "{upstreams}"
        );
        assert!(
            upstreams.contains("upstream avalon_ws_blue {\n    hash $avalon_user_key consistent;")
        );
    }

    #[test]
    fn members_are_rendered_in_place_of_their_service_name() {
        let mut model = EdgeModel::default();
        model.members.insert(
            "websocket".to_owned(),
            vec!["172.18.0.7:3001".to_owned(), "172.18.0.9:3001".to_owned()],
        );
        let upstreams = rendered(&model, "conf.d/upstreams.conf");
        assert!(
            upstreams.contains("server 172.18.0.7:3001 max_fails"),
            "{upstreams}"
        );
        assert!(
            upstreams.contains("server 172.18.0.9:3001 max_fails"),
            "{upstreams}"
        );
        assert!(!upstreams.contains("server websocket:3001"), "{upstreams}");
        assert!(
            upstreams.contains("server api:3000 max_fails"),
            "{upstreams}"
        );
        assert_ne!(
            config_id(&model).unwrap(),
            config_id(&EdgeModel::default()).unwrap()
        );
    }

    #[test]
    fn maintenance_message_is_escaped_for_html_and_json() {
        let mut model = EdgeModel::default();
        model.maintenance.message = "Back at 10:00 <b>\"soon\"</b> & then".to_owned();
        let html = rendered(&model, "html/_edge/maintenance.html");
        assert!(
            html.contains("Back at 10:00 &lt;b&gt;&quot;soon&quot;&lt;&#x2f;b&gt; &amp; then"),
            "{html}"
        );
        // The JSON answer is a `return` in app.conf (see edge_errors.rs for its escaping).
        let app = rendered(&model, "snippets/app.conf");
        assert!(
            app.contains(r#""message":"Back at 10:00 <b>\\"soon\\"</b> & then","retry_after":300"#),
            "{app}"
        );
    }

    #[test]
    fn api_bodies_are_limited_to_the_api_body_limit() {
        let mut model = EdgeModel {
            api_body_limit: 4096,
            ..EdgeModel::default()
        };
        let app = rendered(&model, "snippets/app.conf");
        assert!(app.contains("client_max_body_size 4096;"), "{app}");
        model.api_body_limit = 10;
        assert!(render(&model, &tempfile::tempdir().unwrap().path().join("t")).is_err());
    }

    #[test]
    fn tls_adds_a_redirecting_http_server_and_hsts() {
        let mut model = EdgeModel::default();
        model.listen.https = 8443;
        model.tls = Some(Tls {
            cert: "/certs/edge.pem".to_owned(),
            key: "/certs/edge.key".to_owned(),
            resolver: vec![],
            trusted_certificate: None,
            hsts_max_age: 600,
        });
        let servers = rendered(&model, "conf.d/servers.conf");
        assert!(
            servers.contains("listen 8443 ssl http2 default_server;"),
            "{servers}"
        );
        assert!(
            servers.contains("return 301 https://$host:8443$request_uri;"),
            "{servers}"
        );
        let headers = rendered(&model, "snippets/security_headers.conf");
        assert!(
            headers.contains("Strict-Transport-Security \"max-age=600\""),
            "{headers}"
        );
        let tls = rendered(&model, "snippets/tls.conf");
        assert!(
            !tls.contains("ssl_stapling"),
            "stapling needs a resolver: {tls}"
        );
    }

    #[test]
    fn config_id_follows_the_model() {
        let a = config_id(&EdgeModel::default()).unwrap();
        assert_eq!(a, config_id(&EdgeModel::default()).unwrap());
        assert_ne!(a, config_id(&canary_model()).unwrap());
        let json: serde_json::Value =
            serde_json::from_str(&rendered(&canary_model(), "html/_edge/config.json")).unwrap();
        assert_eq!(json["slots"]["green"], 10);
    }

    #[test]
    fn an_invalid_model_renders_nothing() {
        let mut model = EdgeModel::default();
        model.slots[0].weight = 50;
        let dir = tempfile::tempdir().unwrap();
        let err = render(&model, dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("weights must add up to 100"),
            "{err:#}"
        );
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
