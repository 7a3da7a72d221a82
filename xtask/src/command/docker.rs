//! The Docker CLI and the argv of every engine command xtask runs on a target, built by pure functions
//! (tested as argv vectors, the way Kamal tests its commands). Nothing here runs anything: the runner
//! ([`Invocation`]) does, printing each command by its [`super::Effect`].
//!
//! Everything goes through `docker`, so `DOCKER_HOST=ssh://…` or a `--context` points every command at a
//! remote engine.

use std::path::PathBuf;

use super::invocation::Invocation;

/// The label Compose gives every container of a project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label Compose gives every container of a service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

/// The Docker CLI and how it reaches the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerCli {
    /// `docker` from PATH unless told otherwise (tests point this at a recording fake).
    pub program: PathBuf,
    /// `--context NAME`; without it the CLI honours DOCKER_HOST / the current context.
    pub context: Option<String>,
}

impl Default for DockerCli {
    fn default() -> Self {
        Self {
            program: PathBuf::from("docker"),
            context: None,
        }
    }
}

impl DockerCli {
    /// `docker [--context NAME]`: the start of every command below. Counts as a change until a builder
    /// says otherwise, so a command built by hand is printed.
    pub fn invocation(&self) -> Invocation {
        let invocation = Invocation::new(self.program.clone());
        match &self.context {
            Some(context) => invocation.arg("--context").arg(context.clone()),
            None => invocation,
        }
    }

    /// A read-only `docker ARGS…`.
    fn reads<const N: usize>(&self, args: [&str; N]) -> Invocation {
        self.invocation().args(args).read_only()
    }

    /// `docker context inspect --format {{.Endpoints.docker.Host}}`: the engine endpoint of the context.
    pub fn context_endpoint(&self) -> Invocation {
        self.reads([
            "context",
            "inspect",
            "--format",
            "{{.Endpoints.docker.Host}}",
        ])
    }

    /// `docker ps --quiet` of the running containers of one Compose service.
    pub fn find_service(&self, project: &str, service: &str) -> Invocation {
        self.reads(["ps", "--quiet"]).args([
            "--filter".to_owned(),
            format!("label={PROJECT_LABEL}={project}"),
            "--filter".to_owned(),
            format!("label={SERVICE_LABEL}={service}"),
        ])
    }

    /// The ids of a Compose project's containers, running or not, narrowed by `filters`
    /// (`label=…`, `status=running`).
    pub fn container_ids(&self, project: &str, filters: &[String]) -> Invocation {
        let mut invocation = self.reads(["container", "ls", "--all", "--quiet"]).args([
            "--filter".to_owned(),
            format!("label={PROJECT_LABEL}={project}"),
        ]);
        for filter in filters {
            invocation = invocation.args(["--filter".to_owned(), filter.clone()]);
        }
        invocation
    }

    /// `docker container ls --all` of a Compose project's containers, narrowed by `filters`, one line each
    /// in Go template `format`.
    pub fn list_containers(&self, project: &str, filters: &[String], format: &str) -> Invocation {
        let mut invocation = self.reads(["container", "ls", "--all"]).args([
            "--filter".to_owned(),
            format!("label={PROJECT_LABEL}={project}"),
        ]);
        for filter in filters {
            invocation = invocation.args(["--filter".to_owned(), filter.clone()]);
        }
        invocation.args(["--format", format])
    }

    /// `docker logs --tail N [--follow] CONTAINER`.
    pub fn container_logs(&self, container: &str, tail: u32, follow: bool) -> Invocation {
        let invocation = self.reads(["logs", "--tail"]).arg(tail.to_string());
        let invocation = if follow {
            invocation.arg("--follow")
        } else {
            invocation
        };
        invocation.arg(container)
    }

    /// `docker container inspect ID…`.
    pub fn inspect_containers(&self, ids: &[String]) -> Invocation {
        self.reads(["container", "inspect"])
            .args(ids.iter().cloned())
    }

    /// `docker container start ID`.
    pub fn start_container(&self, id: &str) -> Invocation {
        self.invocation().args(["container", "start", id])
    }

    /// `docker container restart --time GRACE ID`: the stop signal, then SIGKILL after `grace_secs`.
    pub fn restart_container(&self, id: &str, grace_secs: u64) -> Invocation {
        self.invocation()
            .args(["container", "restart", "--time"])
            .arg(grace_secs.to_string())
            .arg(id)
    }

    /// `docker container stop ID…` (each container's own stop signal and grace period).
    pub fn stop_containers(&self, ids: &[String]) -> Invocation {
        self.invocation()
            .args(["container", "stop"])
            .args(ids.iter().cloned())
    }

    /// `docker container kill --signal SIGNAL CONTAINER`.
    pub fn signal_container(&self, container: &str, signal: &str) -> Invocation {
        self.invocation()
            .args(["container", "kill", "--signal", signal, container])
    }

    /// `docker container logs --since UNIX_SECONDS CONTAINER`.
    pub fn logs_since(&self, container: &str, since_unix: i64) -> Invocation {
        self.reads(["container", "logs", "--since"])
            .arg(since_unix.to_string())
            .arg(container)
    }

    /// `docker exec ID ARGV…` of a check that changes nothing (a healthcheck command, run now instead of
    /// at the engine's next interval).
    pub fn exec_check(&self, id: &str, argv: &[String]) -> Invocation {
        self.reads(["exec", id]).args(argv.iter().cloned())
    }

    /// `docker exec -i [-e NAME…] CONTAINER PROGRAM ARGS…`, with each secret copied from the CLI's
    /// environment by name, so its value is on no command line; as read-only as `inner` is.
    pub fn exec(&self, container_id: &str, mut inner: Invocation) -> Invocation {
        let mut outer = self.invocation().args(["exec", "-i"]);
        outer.effect = inner.effect;
        for (name, value) in std::mem::take(&mut inner.secret_env) {
            outer = outer.arg("-e").arg(name.clone()).secret_env(&name, value);
        }
        // A script passed to the inner program is printed by its label here too.
        outer.arg(container_id.to_owned()).then_run(inner)
    }

    /// `docker cp CONTAINER:PATH -`: a path of a container as a tar stream on stdout.
    pub fn copy_out(&self, container: &str, path: &str) -> Invocation {
        self.reads(["cp"])
            .arg(format!("{container}:{path}"))
            .arg("-")
    }

    /// `docker cp - CONTAINER:PATH`: a tar stream from stdin unpacked into a container's path.
    pub fn copy_in(&self, container: &str, path: &str) -> Invocation {
        self.invocation()
            .arg("cp")
            .arg("-")
            .arg(format!("{container}:{path}"))
    }

    /// `docker image inspect --format '{{json .RepoDigests}} {{.Id}}' REF`: what starts the very same
    /// image again.
    pub fn image_digests(&self, reference: &str) -> Invocation {
        self.reads([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}} {{.Id}}",
            reference,
        ])
    }

    /// `docker image inspect --format {{.Id}} REF`: whether the engine has the image.
    pub fn image_id(&self, reference: &str) -> Invocation {
        self.reads(["image", "inspect", "--format", "{{.Id}}", reference])
    }

    /// `docker image tag SOURCE TARGET`.
    pub fn tag_image(&self, source: &str, target: &str) -> Invocation {
        self.invocation().args(["image", "tag", source, target])
    }

    /// `docker image rm REF`: removes the name; the image itself only when no other name holds it.
    pub fn remove_image_name(&self, reference: &str) -> Invocation {
        self.invocation().args(["image", "rm", reference])
    }

    /// `docker image pull --quiet REF`.
    pub fn pull_image(&self, reference: &str) -> Invocation {
        self.invocation()
            .args(["image", "pull", "--quiet", reference])
    }

    /// `docker info --format {{.DockerRootDir}}`.
    pub fn root_dir(&self) -> Invocation {
        self.reads(["info", "--format", "{{.DockerRootDir}}"])
    }

    /// `docker container create --name NAME --label avalon.role=ROLE --volume VOLUME:MOUNT IMAGE`: a
    /// container that never runs, only holds a volume for `docker cp`.
    pub fn create_volume_holder(
        &self,
        name: &str,
        role: &str,
        volume: &str,
        mount: &str,
        image: &str,
    ) -> Invocation {
        self.invocation()
            .args(["container", "create", "--name", name, "--label"])
            .arg(format!("avalon.role={role}"))
            .arg("--volume")
            .arg(format!("{volume}:{mount}"))
            .arg(image)
    }

    /// `docker container rm --force NAME`.
    pub fn remove_container(&self, name: &str) -> Invocation {
        self.invocation().args(["container", "rm", "--force", name])
    }

    /// `docker container create --name NAME [--label K=V…] [--volume V…] IMAGE`: the deploy lock, a
    /// container that never runs (its unique name is the test-and-set).
    pub fn create_lock(
        &self,
        name: &str,
        labels: &[(&str, String)],
        volumes: &[String],
        image: &str,
    ) -> Invocation {
        let mut create = self
            .invocation()
            .args(["container", "create", "--name", name]);
        for (key, value) in labels {
            create = create.arg("--label").arg(format!("{key}={value}"));
        }
        for volume in volumes {
            create = create.arg("--volume").arg(volume.clone());
        }
        create.arg(image)
    }

    /// `docker container ls --all --filter name=^NAME$ --format FORMAT`: one container by exact name.
    pub fn container_named(&self, name: &str, format: &str) -> Invocation {
        self.reads(["container", "ls", "--all", "--filter"])
            .arg(format!("name=^{name}$"))
            .args(["--format", format])
    }

    /// `docker cp - ID:/` of the lock's lease file. A renewal rewrites xtask's own heartbeat in its own
    /// lock container every few seconds and changes nothing of the stack: printed with `-v`, like a read,
    /// so it does not bury the commands that change the stack (taking and releasing the lock print).
    pub fn renew_lease(&self, lock_id: &str) -> Invocation {
        self.copy_in(lock_id, "/").read_only()
    }

    /// `docker container inspect --format FORMAT ID…`: chosen fields of containers.
    pub fn inspect_format(&self, format: &str, ids: &[String]) -> Invocation {
        self.reads(["container", "inspect", "--format", format])
            .args(ids.iter().cloned())
    }

    /// `docker container exec EDGE sh -c <SCRIPT> scrape URL…`: the game servers' `/metrics`, fetched from
    /// inside the edge container (the services publish no port). The script is printed by its label.
    pub fn scrape_from_edge(
        &self,
        edge: &str,
        script_label: &'static str,
        script: &str,
        urls: &[String],
    ) -> Invocation {
        self.reads(["container", "exec", edge, "sh", "-c"])
            .labelled_arg(script_label, script)
            .arg("scrape")
            .args(urls.iter().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Effect, SecretValue};

    fn docker() -> DockerCli {
        DockerCli::default()
    }

    fn argv(invocation: &Invocation) -> Vec<&str> {
        std::iter::once(invocation.program.to_str().unwrap_or_default())
            .chain(invocation.args.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn a_context_comes_first() {
        let docker = DockerCli {
            program: PathBuf::from("/usr/bin/docker"),
            context: Some("prod".to_owned()),
        };
        assert_eq!(
            argv(&docker.start_container("c1")),
            [
                "/usr/bin/docker",
                "--context",
                "prod",
                "container",
                "start",
                "c1"
            ]
        );
    }

    #[test]
    fn listings_and_inspections_read_only() {
        let ids = docker().container_ids(
            "avalon-prod",
            &[
                "label=com.docker.compose.service=nginx".to_owned(),
                "status=running".to_owned(),
            ],
        );
        assert_eq!(
            argv(&ids),
            [
                "docker",
                "container",
                "ls",
                "--all",
                "--quiet",
                "--filter",
                "label=com.docker.compose.project=avalon-prod",
                "--filter",
                "label=com.docker.compose.service=nginx",
                "--filter",
                "status=running"
            ]
        );
        let inspect = docker().inspect_containers(&["a".to_owned(), "b".to_owned()]);
        assert_eq!(argv(&inspect), ["docker", "container", "inspect", "a", "b"]);
        assert_eq!(
            argv(&docker().find_service("p", "redis")),
            [
                "docker",
                "ps",
                "--quiet",
                "--filter",
                "label=com.docker.compose.project=p",
                "--filter",
                "label=com.docker.compose.service=redis"
            ]
        );
        assert_eq!(
            argv(&docker().context_endpoint()),
            [
                "docker",
                "context",
                "inspect",
                "--format",
                "{{.Endpoints.docker.Host}}"
            ]
        );
        assert_eq!(
            argv(&docker().logs_since("edge-1", 1_700_000_000)),
            [
                "docker",
                "container",
                "logs",
                "--since",
                "1700000000",
                "edge-1"
            ]
        );
        assert_eq!(
            argv(&docker().exec_check("c1", &["avalon-api".to_owned(), "healthcheck".to_owned()])),
            ["docker", "exec", "c1", "avalon-api", "healthcheck"]
        );
        assert_eq!(
            argv(&docker().copy_out("edge-1", "/etc/nginx/live")),
            ["docker", "cp", "edge-1:/etc/nginx/live", "-"]
        );
        assert_eq!(
            argv(&docker().image_digests("avalon-api:1.2.0")),
            [
                "docker",
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}} {{.Id}}",
                "avalon-api:1.2.0"
            ]
        );
        assert_eq!(
            argv(&docker().image_id("avalon-api:1.2.0")),
            [
                "docker",
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                "avalon-api:1.2.0"
            ]
        );
        assert_eq!(
            argv(&docker().root_dir()),
            ["docker", "info", "--format", "{{.DockerRootDir}}"]
        );
        assert_eq!(
            argv(&docker().list_containers("p", &["label=avalon.slot".to_owned()], "{{.Names}}")),
            [
                "docker",
                "container",
                "ls",
                "--all",
                "--filter",
                "label=com.docker.compose.project=p",
                "--filter",
                "label=avalon.slot",
                "--format",
                "{{.Names}}"
            ]
        );
        assert_eq!(
            argv(&docker().container_logs("api-1", 80, false)),
            ["docker", "logs", "--tail", "80", "api-1"]
        );
        assert_eq!(
            argv(&docker().container_logs("api-1", 100, true)),
            ["docker", "logs", "--tail", "100", "--follow", "api-1"]
        );
        for read in [
            docker().list_containers("p", &[], "{{.Names}}"),
            docker().container_logs("c", 1, true),
            ids,
            inspect,
            docker().find_service("p", "redis"),
            docker().context_endpoint(),
            docker().logs_since("e", 0),
            docker().exec_check("c", &[]),
            docker().copy_out("e", "/x"),
            docker().image_digests("i"),
            docker().image_id("i"),
            docker().root_dir(),
        ] {
            assert_eq!(read.effect, Effect::ReadOnly, "{read}");
        }
    }

    #[test]
    fn changes_are_marked_as_changes() {
        let cases: [(Invocation, &[&str]); 9] = [
            (
                docker().start_container("c1"),
                &["docker", "container", "start", "c1"],
            ),
            (
                docker().restart_container("c1", 2),
                &["docker", "container", "restart", "--time", "2", "c1"],
            ),
            (
                docker().stop_containers(&["a".to_owned(), "b".to_owned()]),
                &["docker", "container", "stop", "a", "b"],
            ),
            (
                docker().signal_container("edge-1", "HUP"),
                &["docker", "container", "kill", "--signal", "HUP", "edge-1"],
            ),
            (
                docker().copy_in("helper", "/ledger"),
                &["docker", "cp", "-", "helper:/ledger"],
            ),
            (
                docker().tag_image("sha256:abc", "avalon-api:id-abc"),
                &["docker", "image", "tag", "sha256:abc", "avalon-api:id-abc"],
            ),
            (
                docker().pull_image("ghcr.io/o/avalon-api@sha256:01"),
                &[
                    "docker",
                    "image",
                    "pull",
                    "--quiet",
                    "ghcr.io/o/avalon-api@sha256:01",
                ],
            ),
            (
                docker().create_volume_holder("h1", "ledger-helper", "ledger", "/ledger", "img"),
                &[
                    "docker",
                    "container",
                    "create",
                    "--name",
                    "h1",
                    "--label",
                    "avalon.role=ledger-helper",
                    "--volume",
                    "ledger:/ledger",
                    "img",
                ],
            ),
            (
                docker().remove_container("h1"),
                &["docker", "container", "rm", "--force", "h1"],
            ),
        ];
        for (invocation, expected) in cases {
            assert_eq!(argv(&invocation), expected);
            assert_eq!(invocation.effect, Effect::Changes, "{invocation}");
        }
    }

    #[test]
    fn docker_exec_passes_secrets_by_name_and_keeps_the_inner_effect() {
        let docker = DockerCli {
            program: PathBuf::from("docker"),
            context: Some("prod".to_owned()),
        };
        let inner = Invocation::new("redis-cli")
            .arg("PING")
            .secret_env("REDISCLI_AUTH", SecretValue::new("pw".to_owned()))
            .read_only();
        let outer = docker.exec("c1", inner);
        assert_eq!(
            outer.args,
            [
                "--context",
                "prod",
                "exec",
                "-i",
                "-e",
                "REDISCLI_AUTH",
                "c1",
                "redis-cli",
                "PING"
            ]
        );
        assert_eq!(outer.secret_values().collect::<Vec<_>>(), ["pw"]);
        assert!(!outer.to_string().contains("pw"), "{outer}");
        assert_eq!(outer.effect, Effect::ReadOnly);
        let change = docker.exec("c1", Invocation::new("redis-cli").arg("SET"));
        assert_eq!(change.effect, Effect::Changes);
        let scripted = docker.exec(
            "c1",
            Invocation::new("sh")
                .arg("-c")
                .labelled_arg("\"$SCRIPT\"", "exec \"$0\" \"$@\"\n")
                .args(["redis-cli", "GET", "k"]),
        );
        assert_eq!(
            scripted.args[6..],
            ["-c", "exec \"$0\" \"$@\"\n", "redis-cli", "GET", "k"]
        );
        assert_eq!(
            scripted.to_string(),
            "docker --context prod exec -i c1 sh -c \"$SCRIPT\" redis-cli GET k"
        );
    }

    #[test]
    fn the_deploy_lock_and_its_lease() {
        let create = docker().create_lock(
            "p-deploy-lock",
            &[
                ("avalon.lock.holder", "ops@host".to_owned()),
                ("avalon.lock.pid", "42".to_owned()),
            ],
            &["p-releases:/ledger".to_owned()],
            "busybox:1",
        );
        assert_eq!(
            argv(&create),
            [
                "docker",
                "container",
                "create",
                "--name",
                "p-deploy-lock",
                "--label",
                "avalon.lock.holder=ops@host",
                "--label",
                "avalon.lock.pid=42",
                "--volume",
                "p-releases:/ledger",
                "busybox:1"
            ]
        );
        assert_eq!(create.effect, Effect::Changes);
        let named = docker().container_named("p-deploy-lock", "{{.ID}}");
        assert_eq!(
            argv(&named),
            [
                "docker",
                "container",
                "ls",
                "--all",
                "--filter",
                "name=^p-deploy-lock$",
                "--format",
                "{{.ID}}"
            ]
        );
        assert_eq!(named.effect, Effect::ReadOnly);
        let renew = docker().renew_lease("abc");
        assert_eq!(argv(&renew), ["docker", "cp", "-", "abc:/"]);
        assert_eq!(renew.effect, Effect::ReadOnly);
    }

    #[test]
    fn the_game_server_scrape_and_field_inspection_read_only() {
        let scrape = docker().scrape_from_edge(
            "edge-1",
            "<SCRIPT>",
            "echo hi",
            &["http://10.0.0.2:3001/metrics".to_owned()],
        );
        assert_eq!(
            argv(&scrape),
            [
                "docker",
                "container",
                "exec",
                "edge-1",
                "sh",
                "-c",
                "echo hi",
                "scrape",
                "http://10.0.0.2:3001/metrics"
            ]
        );
        assert_eq!(scrape.effect, Effect::ReadOnly);
        let inspect = docker().inspect_format("{{json .Config.Env}}", &["c1".to_owned()]);
        assert_eq!(
            argv(&inspect),
            [
                "docker",
                "container",
                "inspect",
                "--format",
                "{{json .Config.Env}}",
                "c1"
            ]
        );
        assert_eq!(inspect.effect, Effect::ReadOnly);
    }
}
