//! Every step of one smoke, decided before any runs (so `--dry-run` prints exactly what a run does): pure,
//! from the overlay's facts, the mapped ports and the scratch directory.
//!
//! The order is the operator's (docs/operations.md, "Kubernetes"): images where the cluster finds them,
//! the ingress controller, the namespace and the Secrets the overlay expects, Redis and MongoDB behind the
//! names the manifests use, then `kubectl apply -k` of the overlay as committed, its rollouts, and the
//! checks through the Ingress.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checks::Check;
use super::overlay::{MappedPorts, OverlayFacts};
use super::secrets;
use crate::command::{Invocation, Kind, Kubectl, Probe};

/// ingress-nginx's manifest for kind, pinned to a release: hostPorts 80/443 on the node labelled
/// `ingress-ready=true`, its admission webhook, the `nginx` IngressClass the base Ingress names, in the
/// `ingress-nginx` namespace the NetworkPolicies admit. controller-v1.12.0 supports Kubernetes 1.28–1.32.
pub const INGRESS_NGINX_MANIFEST: &str = "https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.12.0/deploy/static/provider/kind/deploy.yaml";
pub const INGRESS_NAMESPACE: &str = "ingress-nginx";
/// The controller's Deployment in that manifest.
const INGRESS_CONTROLLER: &str = "ingress-nginx-controller";
const INGRESS_NODE_LABEL: &str = "ingress-ready=true";
/// The stand-ins' Deployments in k8s/kind/datastores.yaml.
pub const DATASTORES: [&str; 2] = ["redis", "mongodb"];

const DATASTORE_ROLLOUT_SECS: u64 = 240;
const INGRESS_READY_SECS: u64 = 180;
const AVALON_ROLLOUT_SECS: u64 = 300;
/// The admission webhook answers once its certificate job has run, a little after the controller is ready.
const APPLY_RETRY: Duration = Duration::from_secs(120);
/// The first check also waits for the controller to load the Ingress.
const FIRST_CHECK: Duration = Duration::from_secs(180);
const LATER_CHECK: Duration = Duration::from_secs(30);

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `cargo xtask image build`, in this process.
    BuildImages,
    /// `docker image tag SOURCE TARGET`, refused when TARGET already names an image (it is not ours to move).
    Tag {
        source: String,
        target: String,
    },
    /// The cluster: from here on it is deleted however the run ends.
    CreateCluster(Invocation),
    Run(Invocation),
    /// Run again until it succeeds or the time is up.
    Retry(Invocation, Duration),
    /// The operator's Secrets as files in this (private) directory.
    WriteSecrets(PathBuf),
    /// A request through the Ingress, repeated until its answer passes or the time is up.
    Probe(Check, Probe, Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub why: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Read-only, run when a step failed with the cluster up: what the CI log needs to tell why.
    pub diagnostics: Vec<Invocation>,
    /// `kind delete cluster`, run however the run ends once the cluster was asked for.
    pub delete_cluster: Invocation,
}

pub struct Inputs<'a> {
    pub cluster: &'a str,
    /// The overlay and the kind files, relative to the project root (how they are printed).
    pub overlay: &'a Path,
    pub cluster_config: &'a Path,
    pub datastores: &'a Path,
    pub facts: &'a OverlayFacts,
    pub tls_secret: &'a str,
    pub ports: MappedPorts,
    /// The tag `cargo xtask image build` gives this checkout (`<version>-<revision>`).
    pub built_tag: &'a str,
    pub scratch: &'a Path,
}

fn step(why: impl Into<String>, action: Action) -> Step {
    Step {
        why: why.into(),
        action,
    }
}

pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let kubeconfig = inputs.scratch.join("kubeconfig");
    let kind = Kind::new(inputs.cluster, &kubeconfig);
    let kubectl = Kubectl::new(&kubeconfig);
    let namespace = inputs.facts.namespace.as_str();
    let secrets_dir = inputs.scratch.join("secrets");
    let (cert, key) = (secrets_dir.join("tls.crt"), secrets_dir.join("tls.key"));
    let mut steps = vec![step(
        "build the service images (cargo xtask image build)",
        Action::BuildImages,
    )];
    for (repository, reference) in &inputs.facts.images {
        steps.push(step(
            format!("name {repository} as the overlay's pods run it"),
            Action::Tag {
                source: format!("{repository}:{}", inputs.built_tag),
                target: reference.clone(),
            },
        ));
    }
    steps.push(step(
        format!(
            "create the kind cluster {} (node ports 80/443 on 127.0.0.1:{}/{})",
            inputs.cluster, inputs.ports.http, inputs.ports.https
        ),
        Action::CreateCluster(kind.create(inputs.cluster_config)),
    ));
    steps.push(step(
        "label the node whose ports are mapped: the ingress-nginx kind manifest runs its controller there",
        Action::Run(kubectl.label_node(&kind.control_plane_node(), INGRESS_NODE_LABEL)),
    ));
    for (_, reference) in &inputs.facts.images {
        steps.push(step(
            format!("load {reference} into the node (no registry)"),
            Action::Run(kind.load_image(reference)),
        ));
    }
    steps.push(step(
        "install ingress-nginx (pinned kind manifest)",
        Action::Run(kubectl.apply_file(None, INGRESS_NGINX_MANIFEST)),
    ));
    steps.push(step(
        format!("create the namespace {namespace}"),
        Action::Run(kubectl.create_namespace(namespace)),
    ));
    steps.push(step(
        "make the operator's secrets: strong random values, one file per key",
        Action::WriteSecrets(secrets_dir.clone()),
    ));
    steps.push(step(
        format!("create the Secret {}", secrets::AVALON_SECRET),
        Action::Run(kubectl.create_secret_from_files(
            namespace,
            secrets::AVALON_SECRET,
            &secrets::avalon_files(&secrets_dir),
        )),
    ));
    steps.push(step(
        format!(
            "create the Secret {} (the MongoDB stand-in's root password)",
            secrets::MONGODB_SECRET
        ),
        Action::Run(kubectl.create_secret_from_files(
            namespace,
            secrets::MONGODB_SECRET,
            &secrets::mongodb_files(&secrets_dir),
        )),
    ));
    let san_domain = inputs.facts.host.as_str();
    let openssl = crate::host::certs::self_signed_argv(&cert, &key, san_domain);
    steps.push(step(
        format!("make a self-signed certificate for {san_domain}"),
        Action::Run(Invocation::new(openssl[0].clone()).args(openssl[1..].iter().cloned())),
    ));
    steps.push(step(
        format!("create the TLS Secret {}", inputs.tls_secret),
        Action::Run(kubectl.create_tls_secret(namespace, inputs.tls_secret, &cert, &key)),
    ));
    steps.push(step(
        "run Redis and MongoDB stand-ins as the Services `redis` and `mongodb`",
        Action::Run(kubectl.apply_file(Some(namespace), &inputs.datastores.display().to_string())),
    ));
    for datastore in DATASTORES {
        steps.push(step(
            format!("wait for {datastore}"),
            Action::Run(kubectl.rollout_status(namespace, datastore, DATASTORE_ROLLOUT_SECS)),
        ));
    }
    steps.push(step(
        "wait for the ingress controller",
        Action::Run(kubectl.rollout_status(
            INGRESS_NAMESPACE,
            INGRESS_CONTROLLER,
            INGRESS_READY_SECS,
        )),
    ));
    steps.push(step(
        format!(
            "apply {} as committed (again until the ingress admission webhook answers)",
            inputs.overlay.display()
        ),
        Action::Retry(kubectl.apply_kustomize(inputs.overlay), APPLY_RETRY),
    ));
    for deployment in &inputs.facts.deployments {
        steps.push(step(
            format!("wait for the rollout of {deployment}"),
            Action::Run(kubectl.rollout_status(namespace, deployment, AVALON_ROLLOUT_SECS)),
        ));
    }
    for (index, check) in Check::all().into_iter().enumerate() {
        let probe = Probe {
            scheme: if check.https() { "https" } else { "http" },
            host: inputs.facts.host.clone(),
            port: if check.https() {
                inputs.ports.https
            } else {
                inputs.ports.http
            },
            path: check.path().to_owned(),
            ca: cert.clone(),
        };
        let patience = if index == 0 { FIRST_CHECK } else { LATER_CHECK };
        steps.push(step(
            check.describe(),
            Action::Probe(check, probe, patience),
        ));
    }

    let mut diagnostics = vec![
        kubectl.get_wide(
            namespace,
            "pods,services,endpoints,ingresses,networkpolicies",
        ),
        kubectl.events(namespace),
    ];
    for deployment in inputs
        .facts
        .deployments
        .iter()
        .map(String::as_str)
        .chain(DATASTORES)
    {
        diagnostics.push(kubectl.logs(namespace, deployment, 60));
    }
    diagnostics.push(kubectl.get_wide(INGRESS_NAMESPACE, "pods,jobs"));
    diagnostics.push(kubectl.logs(INGRESS_NAMESPACE, INGRESS_CONTROLLER, 60));
    Plan {
        steps,
        diagnostics,
        delete_cluster: kind.delete(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn facts() -> OverlayFacts {
        OverlayFacts {
            namespace: "avalon-staging".to_owned(),
            host: "staging.avalon.example.com".to_owned(),
            tls_secret: Some("avalon-tls".to_owned()),
            deployments: vec!["avalon-api".to_owned(), "avalon-websocket".to_owned()],
            images: vec![
                (
                    "avalon-api".to_owned(),
                    "registry.example.com/avalon/avalon-api:staging".to_owned(),
                ),
                (
                    "avalon-ws".to_owned(),
                    "registry.example.com/avalon/avalon-ws:staging".to_owned(),
                ),
            ],
        }
    }

    fn the_plan() -> Plan {
        let facts = facts();
        plan(&Inputs {
            cluster: "avalon-smoke",
            overlay: Path::new("k8s/overlays/staging"),
            cluster_config: Path::new("k8s/kind/cluster.yaml"),
            datastores: Path::new("k8s/kind/datastores.yaml"),
            facts: &facts,
            tls_secret: "avalon-tls",
            ports: MappedPorts {
                http: 18080,
                https: 18443,
            },
            built_tag: "0.9.0-abc1234",
            scratch: Path::new("/tmp/smoke"),
        })
    }

    fn position(plan: &Plan, what: impl Fn(&Action) -> bool) -> usize {
        plan.steps
            .iter()
            .position(|step| what(&step.action))
            .unwrap()
    }

    fn runs(action: &Action, needle: &str) -> bool {
        match action {
            Action::Run(invocation)
            | Action::Retry(invocation, _)
            | Action::CreateCluster(invocation) => invocation.to_string().contains(needle),
            _ => false,
        }
    }

    #[test]
    fn images_are_built_before_the_cluster_exists_and_loaded_under_the_overlays_names() {
        let plan = the_plan();
        assert_eq!(plan.steps[0].action, Action::BuildImages);
        assert_eq!(
            plan.steps[1].action,
            Action::Tag {
                source: "avalon-api:0.9.0-abc1234".to_owned(),
                target: "registry.example.com/avalon/avalon-api:staging".to_owned()
            }
        );
        let create = position(&plan, |a| matches!(a, Action::CreateCluster(_)));
        assert_eq!(
            create, 3,
            "build and tag first: a failed build leaves no cluster"
        );
        let load = position(&plan, |a| {
            runs(
                a,
                "kind load docker-image registry.example.com/avalon/avalon-ws:staging",
            )
        });
        assert!(load > create);
    }

    #[test]
    fn the_overlay_is_applied_after_what_it_expects_exists() {
        let plan = the_plan();
        let ingress = position(&plan, |a| runs(a, INGRESS_NGINX_MANIFEST));
        let namespace = position(&plan, |a| runs(a, "create namespace avalon-staging"));
        let secrets = position(&plan, |a| {
            runs(
                a,
                "create secret generic avalon-secrets --from-file=jwt_secret=/tmp/smoke/secrets/jwt_secret",
            )
        });
        let tls = position(&plan, |a| runs(a, "create secret tls avalon-tls"));
        let redis = position(&plan, |a| runs(a, "rollout status deployment/redis"));
        let mongodb = position(&plan, |a| runs(a, "rollout status deployment/mongodb"));
        let controller = position(&plan, |a| {
            runs(
                a,
                "--namespace ingress-nginx rollout status deployment/ingress-nginx-controller",
            )
        });
        let apply = position(&plan, |a| runs(a, "apply -k k8s/overlays/staging"));
        assert!(matches!(plan.steps[apply].action, Action::Retry(..)));
        for before in [ingress, namespace, secrets, tls, redis, mongodb, controller] {
            assert!(before < apply, "{:?}", plan.steps[before]);
        }
        let api = position(&plan, |a| runs(a, "rollout status deployment/avalon-api"));
        let ws = position(&plan, |a| {
            runs(a, "rollout status deployment/avalon-websocket")
        });
        let first_probe = position(&plan, |a| matches!(a, Action::Probe(..)));
        assert!(apply < api && api < ws && ws < first_probe);
    }

    #[test]
    fn the_checks_go_through_the_ingress_host_on_the_mapped_ports() {
        let plan = the_plan();
        let probes: Vec<(&Check, &Probe, &Duration)> = plan
            .steps
            .iter()
            .filter_map(|step| match &step.action {
                Action::Probe(check, probe, patience) => Some((check, probe, patience)),
                _ => None,
            })
            .collect();
        assert_eq!(probes.len(), Check::all().len());
        let (check, probe, patience) = probes[0];
        assert_eq!(*check, Check::Health);
        assert_eq!(
            probe.url(),
            "https://staging.avalon.example.com:18443/health"
        );
        assert_eq!(probe.ca, PathBuf::from("/tmp/smoke/secrets/tls.crt"));
        assert!(*patience > LATER_CHECK);
        let handshake = probes
            .iter()
            .find(|(c, _, _)| **c == Check::Handshake)
            .unwrap();
        assert_eq!(
            handshake.1.url(),
            "https://staging.avalon.example.com:18443/socket.io/?EIO=4&transport=polling"
        );
        let plain = probes
            .iter()
            .find(|(c, _, _)| **c == Check::RedirectsToHttps)
            .unwrap();
        assert_eq!(
            plain.1.url(),
            "http://staging.avalon.example.com:18080/health"
        );
    }

    #[test]
    fn the_cluster_is_deleted_with_the_kubeconfig_it_was_made_with() {
        let plan = the_plan();
        assert_eq!(
            plan.delete_cluster.to_string(),
            "kind delete cluster --name avalon-smoke --kubeconfig /tmp/smoke/kubeconfig"
        );
        assert!(
            plan.diagnostics
                .iter()
                .all(|d| d.effect == crate::command::Effect::ReadOnly)
        );
    }
}
