//! What the smoke needs to know about the overlay it applies and the cluster it makes, read from the files
//! themselves (the rendered overlay, k8s/kind/cluster.yaml) so the smoke follows them when they change:
//! the namespace, the Ingress's host and TLS Secret, the Deployments to wait for, the image references
//! the built images must be loaded under, and the host ports the kind node maps to the ingress controller.

use anyhow::{Context, bail};
use yaml_rust2::{Yaml, YamlLoader};

/// The services' images as `cargo xtask image build` names them.
pub const REPOSITORIES: [&str; 2] = ["avalon-api", "avalon-ws"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayFacts {
    pub namespace: String,
    /// The Ingress's host name (its first rule).
    pub host: String,
    /// The Secret the Ingress's TLS section names, when it has one.
    pub tls_secret: Option<String>,
    /// Every Deployment of the overlay, in the rendered order.
    pub deployments: Vec<String>,
    /// (repository `cargo xtask image build` makes, the reference the overlay's pods run), one per
    /// repository.
    pub images: Vec<(String, String)>,
}

impl OverlayFacts {
    /// Reads `kubectl kustomize OVERLAY`'s output.
    pub fn from_rendered(rendered: &str) -> anyhow::Result<Self> {
        let documents =
            YamlLoader::load_from_str(rendered).context("the rendered overlay is not YAML")?;
        let namespace = documents
            .iter()
            .find_map(|doc| doc["metadata"]["namespace"].as_str())
            .context("the overlay sets no namespace (the smoke applies it as it is, into its own)")?
            .to_owned();
        let ingresses: Vec<&Yaml> = documents
            .iter()
            .filter(|doc| doc["kind"].as_str() == Some("Ingress"))
            .collect();
        let [ingress] = ingresses.as_slice() else {
            bail!(
                "the overlay renders {} Ingresses; the smoke probes through exactly one",
                ingresses.len()
            );
        };
        let host = ingress["spec"]["rules"][0]["host"]
            .as_str()
            .context("the Ingress's first rule has no host")?
            .to_owned();
        let tls_secret = ingress["spec"]["tls"][0]["secretName"]
            .as_str()
            .map(str::to_owned);
        let mut deployments = Vec::new();
        let mut images: Vec<(String, String)> = Vec::new();
        for doc in documents
            .iter()
            .filter(|doc| doc["kind"].as_str() == Some("Deployment"))
        {
            let name = doc["metadata"]["name"]
                .as_str()
                .context("a Deployment has no name")?;
            deployments.push(name.to_owned());
            let containers = doc["spec"]["template"]["spec"]["containers"].as_vec();
            for image in containers
                .into_iter()
                .flatten()
                .filter_map(|container| container["image"].as_str())
            {
                let Some(repository) = repository_of(image) else {
                    continue;
                };
                check_loadable(name, image)?;
                match images.iter().find(|(known, _)| known == repository) {
                    Some((_, reference)) if reference != image => bail!(
                        "the overlay runs {repository} as both {reference} and {image}; the smoke loads one"
                    ),
                    Some(_) => {}
                    None => images.push((repository.to_owned(), image.to_owned())),
                }
            }
        }
        for repository in REPOSITORIES {
            if !images.iter().any(|(known, _)| known == repository) {
                bail!("no Deployment of the overlay runs {repository}");
            }
        }
        Ok(Self {
            namespace,
            host,
            tls_secret,
            deployments,
            images,
        })
    }
}

/// `avalon-api` for `registry.example.com/avalon/avalon-api:staging`; `None` for other images.
fn repository_of(image: &str) -> Option<&'static str> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = last.split(['@', ':']).next().unwrap_or_default();
    REPOSITORIES
        .into_iter()
        .find(|repository| *repository == name)
}

/// A kind-loaded image is found only by a tag the kubelet will not pull: a digest cannot be given to a
/// local image, and `latest` (or no tag) means `imagePullPolicy: Always`.
fn check_loadable(deployment: &str, image: &str) -> anyhow::Result<()> {
    if image.contains('@') {
        bail!(
            "{deployment} runs {image}, pinned by digest: the smoke loads locally built images, which need a tag \
             (smoke the staging overlay, or an overlay whose images are tagged)"
        );
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => Ok(()),
        _ => bail!(
            "{deployment} runs {image}: without a tag other than `latest` the kubelet always pulls, and a \
             kind-loaded image is never used"
        ),
    }
}

/// The host ports k8s/kind/cluster.yaml maps to the node's ports 80 and 443 (where the ingress
/// controller listens), and the address they listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedPorts {
    pub http: u16,
    pub https: u16,
}

pub fn mapped_ports(cluster_config: &str) -> anyhow::Result<MappedPorts> {
    let documents =
        YamlLoader::load_from_str(cluster_config).context("the kind cluster config is not YAML")?;
    let config = documents
        .first()
        .context("the kind cluster config is empty")?;
    let nodes = config["nodes"]
        .as_vec()
        .context("the kind cluster config has no nodes")?;
    let host_port = |container_port: i64| -> anyhow::Result<u16> {
        let mapping = nodes
            .iter()
            .flat_map(|node| node["extraPortMappings"].as_vec().into_iter().flatten())
            .find(|mapping| mapping["containerPort"].as_i64() == Some(container_port))
            .with_context(|| {
                format!(
                    "no node maps its port {container_port} (where the ingress controller listens)"
                )
            })?;
        if mapping["listenAddress"].as_str() != Some("127.0.0.1") {
            bail!("the mapping of port {container_port} must listen on 127.0.0.1 only");
        }
        let port = mapping["hostPort"]
            .as_i64()
            .with_context(|| format!("the mapping of port {container_port} has no hostPort"))?;
        u16::try_from(port).with_context(|| format!("hostPort {port} is not a port"))
    };
    Ok(MappedPorts {
        http: host_port(80)?,
        https: host_port(443)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const RENDERED: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: avalon-config-abc, namespace: avalon-staging}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: avalon-api, namespace: avalon-staging}
spec:
  template:
    spec:
      containers:
        - {name: api, image: registry.example.com/avalon/avalon-api:staging}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: avalon-websocket, namespace: avalon-staging}
spec:
  template:
    spec:
      containers:
        - {name: websocket, image: registry.example.com/avalon/avalon-ws:staging}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: avalon, namespace: avalon-staging}
spec:
  rules:
    - host: staging.avalon.example.com
  tls:
    - {hosts: [staging.avalon.example.com], secretName: avalon-tls}
";

    #[test]
    fn the_staging_shape_gives_namespace_host_tls_deployments_and_images() {
        let facts = OverlayFacts::from_rendered(RENDERED).unwrap();
        assert_eq!(facts.namespace, "avalon-staging");
        assert_eq!(facts.host, "staging.avalon.example.com");
        assert_eq!(facts.tls_secret.as_deref(), Some("avalon-tls"));
        assert_eq!(facts.deployments, ["avalon-api", "avalon-websocket"]);
        assert_eq!(
            facts.images,
            [
                (
                    "avalon-api".to_owned(),
                    "registry.example.com/avalon/avalon-api:staging".to_owned()
                ),
                (
                    "avalon-ws".to_owned(),
                    "registry.example.com/avalon/avalon-ws:staging".to_owned()
                )
            ]
        );
    }

    #[test]
    fn images_a_kind_node_would_pull_are_refused_by_name() {
        let digest = RENDERED.replace(
            "avalon-api:staging",
            "avalon-api@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        );
        let error = OverlayFacts::from_rendered(&digest)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("avalon-api") && error.contains("digest"),
            "{error}"
        );
        let latest = RENDERED.replace("avalon-ws:staging", "avalon-ws:latest");
        let error = OverlayFacts::from_rendered(&latest)
            .unwrap_err()
            .to_string();
        assert!(error.contains("always pulls"), "{error}");
        let untagged = RENDERED.replace("avalon-ws:staging", "avalon-ws");
        assert!(OverlayFacts::from_rendered(&untagged).is_err());
    }

    #[test]
    fn a_missing_service_or_namespace_is_named() {
        let no_ws = RENDERED.replace("avalon-ws:staging", "other:1");
        let error = OverlayFacts::from_rendered(&no_ws).unwrap_err().to_string();
        assert!(error.contains("avalon-ws"), "{error}");
        let no_namespace = RENDERED.replace(", namespace: avalon-staging", "");
        assert!(
            OverlayFacts::from_rendered(&no_namespace)
                .unwrap_err()
                .to_string()
                .contains("namespace")
        );
    }

    #[test]
    fn the_committed_cluster_config_maps_loopback_ports_to_the_ingress() {
        let text =
            std::fs::read_to_string(crate::project::root().join(super::super::CLUSTER_CONFIG))
                .unwrap();
        let ports = mapped_ports(&text).unwrap();
        assert_ne!(ports.http, ports.https);
        assert!(ports.http > 1024 && ports.https > 1024, "{ports:?}");
        let public = text.replace("127.0.0.1", "0.0.0.0");
        assert!(
            mapped_ports(&public)
                .unwrap_err()
                .to_string()
                .contains("127.0.0.1")
        );
    }
}
