//! The argv of `cargo xtask k8s kind-smoke`: kind, kubectl and the curl probes through the Ingress, built
//! by pure functions (tested as argv) and run by the one runner.
//!
//! Every kubectl command names the smoke's own kubeconfig (`--kubeconfig`, the file `kind create cluster
//! --kubeconfig` wrote), never the operator's current context: a smoke test must not be able to touch a real
//! cluster by accident. Secrets reach kubectl as files (`--from-file=KEY=PATH`), so no value is on a
//! command line.

use std::path::{Path, PathBuf};

use super::invocation::Invocation;

/// `kind` from PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub cluster: String,
    pub kubeconfig: PathBuf,
}

impl Kind {
    pub fn new(cluster: &str, kubeconfig: &Path) -> Self {
        Self {
            cluster: cluster.to_owned(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    /// `kind get clusters`: whether a cluster of this name is left from an earlier run.
    pub fn list_clusters() -> Invocation {
        Invocation::new("kind")
            .args(["get", "clusters"])
            .read_only()
    }

    /// `kind create cluster --name N --config FILE --kubeconfig K --wait 120s`: the control plane is
    /// ready when it returns.
    pub fn create(&self, config: &Path) -> Invocation {
        Invocation::new("kind").args([
            "create".to_owned(),
            "cluster".to_owned(),
            "--name".to_owned(),
            self.cluster.clone(),
            "--config".to_owned(),
            config.display().to_string(),
            "--kubeconfig".to_owned(),
            self.kubeconfig.display().to_string(),
            "--wait".to_owned(),
            "120s".to_owned(),
        ])
    }

    /// `kind load docker-image REF --name N`: the image goes into the node's containerd, so a pod whose
    /// `imagePullPolicy` is `IfNotPresent` (any tag but `latest`) starts without a registry.
    pub fn load_image(&self, reference: &str) -> Invocation {
        Invocation::new("kind").args(["load", "docker-image", reference, "--name", &self.cluster])
    }

    /// `kind delete cluster --name N --kubeconfig K`.
    pub fn delete(&self) -> Invocation {
        Invocation::new("kind").args([
            "delete".to_owned(),
            "cluster".to_owned(),
            "--name".to_owned(),
            self.cluster.clone(),
            "--kubeconfig".to_owned(),
            self.kubeconfig.display().to_string(),
        ])
    }

    /// The node kind names `<cluster>-control-plane`.
    pub fn control_plane_node(&self) -> String {
        format!("{}-control-plane", self.cluster)
    }
}

/// `kubectl --kubeconfig K …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubectl {
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    fn base(&self) -> Invocation {
        Invocation::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig.display().to_string())
    }

    fn in_namespace(&self, namespace: &str) -> Invocation {
        self.base().args(["--namespace", namespace])
    }

    /// `kubectl kustomize DIR`: the overlay as it would be applied (no cluster needed, so no kubeconfig).
    pub fn kustomize(dir: &Path) -> Invocation {
        Invocation::new("kubectl")
            .args(["kustomize".to_owned(), dir.display().to_string()])
            .read_only()
    }

    /// `kubectl label node NODE KEY=VALUE --overwrite`.
    pub fn label_node(&self, node: &str, label: &str) -> Invocation {
        self.base()
            .args(["label", "node", node, label, "--overwrite"])
    }

    /// `kubectl apply -f FILE_OR_URL`.
    pub fn apply_file(&self, namespace: Option<&str>, file: &str) -> Invocation {
        let base = match namespace {
            Some(namespace) => self.in_namespace(namespace),
            None => self.base(),
        };
        base.args(["apply", "-f", file])
    }

    /// `kubectl apply -k DIR`: the overlay's own namespace applies.
    pub fn apply_kustomize(&self, dir: &Path) -> Invocation {
        self.base().args([
            "apply".to_owned(),
            "-k".to_owned(),
            dir.display().to_string(),
        ])
    }

    /// `kubectl create namespace NS`.
    pub fn create_namespace(&self, namespace: &str) -> Invocation {
        self.base().args(["create", "namespace", namespace])
    }

    /// `kubectl -n NS create secret generic NAME --from-file=KEY=PATH…`: each value read from its file.
    pub fn create_secret_from_files(
        &self,
        namespace: &str,
        name: &str,
        files: &[(String, PathBuf)],
    ) -> Invocation {
        self.in_namespace(namespace)
            .args(["create", "secret", "generic", name])
            .args(
                files
                    .iter()
                    .map(|(key, path)| format!("--from-file={key}={}", path.display())),
            )
    }

    /// `kubectl -n NS create secret tls NAME --cert=CERT --key=KEY`.
    pub fn create_tls_secret(
        &self,
        namespace: &str,
        name: &str,
        cert: &Path,
        key: &Path,
    ) -> Invocation {
        self.in_namespace(namespace).args([
            "create".to_owned(),
            "secret".to_owned(),
            "tls".to_owned(),
            name.to_owned(),
            format!("--cert={}", cert.display()),
            format!("--key={}", key.display()),
        ])
    }

    /// `kubectl -n NS rollout status deployment/NAME --timeout=…`: returns when every replica of the
    /// current revision is ready, fails at the timeout.
    pub fn rollout_status(
        &self,
        namespace: &str,
        deployment: &str,
        timeout_secs: u64,
    ) -> Invocation {
        self.in_namespace(namespace)
            .args([
                "rollout".to_owned(),
                "status".to_owned(),
                format!("deployment/{deployment}"),
                format!("--timeout={timeout_secs}s"),
            ])
            .read_only()
    }

    /// `kubectl -n NS get KINDS -o wide`: what a failed run leaves to read.
    pub fn get_wide(&self, namespace: &str, kinds: &str) -> Invocation {
        self.in_namespace(namespace)
            .args(["get", kinds, "-o", "wide"])
            .read_only()
    }

    /// `kubectl -n NS get events --sort-by=.lastTimestamp`: scheduling failures, probe failures, pulls.
    pub fn events(&self, namespace: &str) -> Invocation {
        self.in_namespace(namespace)
            .args(["get", "events", "--sort-by=.lastTimestamp"])
            .read_only()
    }

    /// `kubectl -n NS logs deployment/NAME --all-containers --tail=N`.
    pub fn logs(&self, namespace: &str, deployment: &str, tail: u32) -> Invocation {
        self.in_namespace(namespace)
            .args([
                "logs".to_owned(),
                format!("deployment/{deployment}"),
                "--all-containers".to_owned(),
                format!("--tail={tail}"),
            ])
            .read_only()
    }
}

/// One HTTP(S) request through the kind node's mapped port, as a client on this machine sends it: the
/// Ingress's host name resolved to the loopback address (`--resolve`), so TLS (SNI, the certificate's
/// name) and host routing are the real ones. Prints the body, then the status code on a line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    pub path: String,
    /// The CA that signed the Ingress's certificate (the self-signed one itself).
    pub ca: PathBuf,
}

/// What `--write-out` appends after the body: a line break (curl expands the `\n`) and the status code.
pub const STATUS_MARKER: &str = r"\n%{http_code}";

impl Probe {
    pub fn url(&self) -> String {
        format!("{}://{}:{}{}", self.scheme, self.host, self.port, self.path)
    }

    /// `curl --silent --show-error --max-time 10 --cacert CA --resolve HOST:PORT:127.0.0.1
    /// --write-out '\n%{http_code}' URL` (no `--location`: a redirect is an answer of its own).
    pub fn invocation(&self) -> Invocation {
        Invocation::new("curl")
            .args([
                "--silent".to_owned(),
                "--show-error".to_owned(),
                "--max-time".to_owned(),
                "10".to_owned(),
                "--cacert".to_owned(),
                self.ca.display().to_string(),
                "--resolve".to_owned(),
                format!("{}:{}:127.0.0.1", self.host, self.port),
                "--write-out".to_owned(),
                STATUS_MARKER.to_owned(),
                self.url(),
            ])
            .read_only()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Effect;

    fn kind() -> Kind {
        Kind::new("avalon-smoke", Path::new("/tmp/s/kubeconfig"))
    }

    #[test]
    fn the_cluster_is_made_and_deleted_with_its_own_kubeconfig() {
        let create = kind().create(Path::new("k8s/kind/cluster.yaml"));
        assert_eq!(create.program, PathBuf::from("kind"));
        assert_eq!(
            create.args,
            [
                "create",
                "cluster",
                "--name",
                "avalon-smoke",
                "--config",
                "k8s/kind/cluster.yaml",
                "--kubeconfig",
                "/tmp/s/kubeconfig",
                "--wait",
                "120s"
            ]
        );
        assert_eq!(create.effect, Effect::Changes);
        assert_eq!(
            kind().delete().args,
            [
                "delete",
                "cluster",
                "--name",
                "avalon-smoke",
                "--kubeconfig",
                "/tmp/s/kubeconfig"
            ]
        );
        assert_eq!(Kind::list_clusters().effect, Effect::ReadOnly);
        assert_eq!(kind().control_plane_node(), "avalon-smoke-control-plane");
    }

    #[test]
    fn images_are_loaded_into_the_named_cluster() {
        assert_eq!(
            kind()
                .load_image("registry.example.com/avalon/avalon-api:staging")
                .args,
            [
                "load",
                "docker-image",
                "registry.example.com/avalon/avalon-api:staging",
                "--name",
                "avalon-smoke"
            ]
        );
    }

    #[test]
    fn every_kubectl_command_names_the_smoke_kubeconfig() {
        let kubectl = Kubectl::new(Path::new("/tmp/s/kubeconfig"));
        let commands = [
            kubectl.label_node("n", "ingress-ready=true"),
            kubectl.apply_file(None, "https://example.invalid/deploy.yaml"),
            kubectl.apply_kustomize(Path::new("k8s/overlays/staging")),
            kubectl.create_namespace("ns"),
            kubectl.rollout_status("ns", "avalon-api", 300),
            kubectl.events("ns"),
        ];
        for command in commands {
            assert_eq!(command.args[..2], ["--kubeconfig", "/tmp/s/kubeconfig"]);
        }
        assert_eq!(
            kubectl
                .apply_kustomize(Path::new("k8s/overlays/staging"))
                .args[2..],
            ["apply", "-k", "k8s/overlays/staging"]
        );
        assert_eq!(
            kubectl.rollout_status("ns", "avalon-api", 300).args[2..],
            [
                "--namespace",
                "ns",
                "rollout",
                "status",
                "deployment/avalon-api",
                "--timeout=300s"
            ]
        );
        assert_eq!(
            Kubectl::kustomize(Path::new("k8s/overlays/staging")).args,
            ["kustomize", "k8s/overlays/staging"]
        );
    }

    #[test]
    fn secrets_go_to_kubectl_as_files_never_as_values() {
        let kubectl = Kubectl::new(Path::new("/k"));
        let generic = kubectl.create_secret_from_files(
            "avalon-staging",
            "avalon-secrets",
            &[
                ("jwt_secret".to_owned(), PathBuf::from("/s/jwt_secret")),
                ("mongodb_uri".to_owned(), PathBuf::from("/s/mongodb_uri")),
            ],
        );
        assert_eq!(
            generic.args[2..],
            [
                "--namespace",
                "avalon-staging",
                "create",
                "secret",
                "generic",
                "avalon-secrets",
                "--from-file=jwt_secret=/s/jwt_secret",
                "--from-file=mongodb_uri=/s/mongodb_uri"
            ]
        );
        let tls = kubectl.create_tls_secret(
            "ns",
            "avalon-tls",
            Path::new("/s/tls.crt"),
            Path::new("/s/tls.key"),
        );
        assert_eq!(
            tls.args[4..],
            [
                "create",
                "secret",
                "tls",
                "avalon-tls",
                "--cert=/s/tls.crt",
                "--key=/s/tls.key"
            ]
        );
    }

    #[test]
    fn a_probe_resolves_the_ingress_host_to_loopback_and_trusts_only_the_smoke_ca() {
        let probe = Probe {
            scheme: "https",
            host: "staging.avalon.example.com".to_owned(),
            port: 18443,
            path: "/socket.io/?EIO=4&transport=polling".to_owned(),
            ca: PathBuf::from("/s/tls.crt"),
        };
        let invocation = probe.invocation();
        assert_eq!(invocation.effect, Effect::ReadOnly);
        assert_eq!(
            invocation.args,
            [
                "--silent",
                "--show-error",
                "--max-time",
                "10",
                "--cacert",
                "/s/tls.crt",
                "--resolve",
                "staging.avalon.example.com:18443:127.0.0.1",
                "--write-out",
                r"\n%{http_code}",
                "https://staging.avalon.example.com:18443/socket.io/?EIO=4&transport=polling"
            ]
        );
        assert!(!invocation.args.iter().any(|arg| arg == "--location"));
    }
}
