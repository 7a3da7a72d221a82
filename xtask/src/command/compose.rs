//! `docker compose` argv for one stack: which project, which files, which variables compose
//! interpolates into them (pure, tested as argv).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::docker::DockerCli;
use super::invocation::Invocation;

/// A Compose project as a list of files, with the variables compose interpolates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    pub docker: DockerCli,
    pub project: String,
    pub files: Vec<PathBuf>,
    pub vars: BTreeMap<String, String>,
    /// Where compose runs (the checkout's root, as every `cargo xtask` command).
    pub dir: PathBuf,
}

impl Compose {
    /// `docker compose --project-name P --file F… ARGS…`; the variables go into the child's environment.
    fn invocation<const N: usize>(&self, args: [&str; N]) -> Invocation {
        let mut invocation =
            self.docker
                .invocation()
                .args(["compose", "--project-name", self.project.as_str()]);
        for file in &self.files {
            invocation = invocation.arg("--file").arg(file.display().to_string());
        }
        for (key, value) in &self.vars {
            invocation = invocation.env(key, value.clone());
        }
        invocation.current_dir(self.dir.clone()).args(args)
    }

    /// `… config --format json`: the model as compose resolves it (reads only).
    pub fn config_json(&self) -> Invocation {
        self.invocation(["config", "--format", "json"]).read_only()
    }

    /// `… up --detach --remove-orphans --wait --wait-timeout SECS`: starts every service of the project and
    /// waits until each is healthy.
    pub fn up_and_wait(&self, timeout_secs: u64) -> Invocation {
        self.invocation([
            "up",
            "--detach",
            "--remove-orphans",
            "--wait",
            "--wait-timeout",
        ])
        .arg(timeout_secs.to_string())
    }

    /// `… down --remove-orphans --timeout 40 [--volumes]` (the services' drain fits in 40 s).
    pub fn down(&self, volumes: bool) -> Invocation {
        let down = self.invocation(["down", "--remove-orphans", "--timeout", "40"]);
        if volumes { down.arg("--volumes") } else { down }
    }

    /// `… ps --all --format json`.
    pub fn ps_json(&self) -> Invocation {
        self.invocation(["ps", "--all", "--format", "json"])
            .read_only()
    }

    /// `… logs --no-color --tail N SERVICE`.
    pub fn service_logs(&self, service: &str, tail: u32) -> Invocation {
        self.invocation(["logs", "--no-color", "--tail"])
            .arg(tail.to_string())
            .arg(service)
            .read_only()
    }

    /// `… up --detach --no-deps --force-recreate --wait --wait-timeout SECS SERVICE…`: (re)creates just
    /// these services and waits for their healthchecks. The project's other containers (the other slot,
    /// say) are not in these files: COMPOSE_IGNORE_ORPHANS keeps compose from warning about them.
    pub fn recreate_and_wait(&self, services: &[String], timeout_secs: u64) -> Invocation {
        self.invocation([
            "up",
            "--detach",
            "--no-deps",
            "--force-recreate",
            "--wait",
            "--wait-timeout",
        ])
        .arg(timeout_secs.to_string())
        .args(services.iter().cloned())
        .env("COMPOSE_IGNORE_ORPHANS", "true")
    }

    /// `… up --detach --no-deps --no-recreate --scale SERVICE=N --wait --wait-timeout SECS SERVICE`: adds
    /// containers of one service up to `replicas` and waits for their healthchecks; the running ones are
    /// left as they are (`--no-recreate`), so a scale-out never restarts a serving instance.
    pub fn scale_out_and_wait(
        &self,
        service: &str,
        replicas: u32,
        timeout_secs: u64,
    ) -> Invocation {
        self.invocation(["up", "--detach", "--no-deps", "--no-recreate", "--scale"])
            .arg(format!("{service}={replicas}"))
            .args(["--wait", "--wait-timeout"])
            .arg(timeout_secs.to_string())
            .arg(service)
            .env("COMPOSE_IGNORE_ORPHANS", "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Effect;

    fn compose() -> Compose {
        Compose {
            docker: DockerCli::default(),
            project: "avalon-offline".to_owned(),
            files: vec![
                PathBuf::from("/repo/docker/compose.yml"),
                PathBuf::from("/repo/docker/compose.offline.yml"),
            ],
            vars: BTreeMap::from([("AVALON_API_IMAGE".to_owned(), "avalon-api:1.2.0".to_owned())]),
            dir: PathBuf::from("/repo"),
        }
    }

    /// `docker compose` of [`compose`]'s project and files, before the subcommand.
    const PROJECT: [&str; 7] = [
        "compose",
        "--project-name",
        "avalon-offline",
        "--file",
        "/repo/docker/compose.yml",
        "--file",
        "/repo/docker/compose.offline.yml",
    ];

    #[test]
    fn config_reads_the_resolved_model() {
        let config = compose().config_json();
        assert_eq!(
            config.args,
            [&PROJECT[..], &["config", "--format", "json"]].concat()
        );
        assert_eq!(config.effect, Effect::ReadOnly);
        assert_eq!(config.dir.as_deref(), Some(std::path::Path::new("/repo")));
        assert_eq!(
            config.env_vars(),
            [("AVALON_API_IMAGE".to_owned(), "avalon-api:1.2.0".to_owned())]
        );
    }

    #[test]
    fn the_stack_comes_up_goes_down_and_is_looked_at() {
        let cases: [(Invocation, &[&str], Effect); 5] = [
            (
                compose().up_and_wait(240),
                &[
                    "up",
                    "--detach",
                    "--remove-orphans",
                    "--wait",
                    "--wait-timeout",
                    "240",
                ],
                Effect::Changes,
            ),
            (
                compose().down(false),
                &["down", "--remove-orphans", "--timeout", "40"],
                Effect::Changes,
            ),
            (
                compose().down(true),
                &["down", "--remove-orphans", "--timeout", "40", "--volumes"],
                Effect::Changes,
            ),
            (
                compose().ps_json(),
                &["ps", "--all", "--format", "json"],
                Effect::ReadOnly,
            ),
            (
                compose().service_logs("api", 40),
                &["logs", "--no-color", "--tail", "40", "api"],
                Effect::ReadOnly,
            ),
        ];
        for (invocation, subcommand, effect) in cases {
            assert_eq!(invocation.args, [&PROJECT[..], subcommand].concat());
            assert_eq!(invocation.effect, effect, "{invocation}");
        }
    }

    #[test]
    fn a_service_is_scaled_out_without_recreating_its_containers() {
        let up = compose().scale_out_and_wait("websocket-blue", 3, 120);
        assert_eq!(
            up.args,
            [
                &PROJECT[..],
                &[
                    "up",
                    "--detach",
                    "--no-deps",
                    "--no-recreate",
                    "--scale",
                    "websocket-blue=3",
                    "--wait",
                    "--wait-timeout",
                    "120",
                    "websocket-blue",
                ],
            ]
            .concat()
        );
        assert_eq!(up.effect, Effect::Changes);
    }

    #[test]
    fn a_slot_is_recreated_and_waited_for() {
        let mut compose = compose();
        compose.files.push(PathBuf::from(
            "/repo/.avalon/deploy/p/compose.slot-green.json",
        ));
        let up =
            compose.recreate_and_wait(&["api-green".to_owned(), "websocket-green".to_owned()], 90);
        assert_eq!(
            up.args,
            [
                &PROJECT[..],
                &[
                    "--file",
                    "/repo/.avalon/deploy/p/compose.slot-green.json",
                    "up",
                    "--detach",
                    "--no-deps",
                    "--force-recreate",
                    "--wait",
                    "--wait-timeout",
                    "90",
                    "api-green",
                    "websocket-green",
                ],
            ]
            .concat()
        );
        assert_eq!(up.effect, Effect::Changes);
        assert!(
            up.env_vars()
                .contains(&("COMPOSE_IGNORE_ORPHANS".to_owned(), "true".to_owned()))
        );
    }
}
