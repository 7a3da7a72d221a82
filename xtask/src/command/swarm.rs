//! The argv of every Swarm command xtask runs (`docker stack …`, `docker service …`, `docker config …`,
//! `docker node ls`), built by pure functions and tested as argv. The target is the engine DOCKER_HOST (or
//! the context) names: a manager of the swarm (`cargo xtask lab env` prints the lab's).

use super::docker::DockerCli;
use super::invocation::Invocation;

/// The label `docker stack deploy` gives every service, network, config and secret of a stack.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";

/// `docker info --format {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}`: is the target a manager.
pub fn swarm_state(docker: &DockerCli) -> Invocation {
    docker
        .invocation()
        .args([
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ])
        .read_only()
}

/// `docker stack deploy --compose-file FILE --prune --resolve-image never STACK`.
/// `--resolve-image never`: the lab's engines have no registry, the images are loaded on every node and
/// named by tag; `--prune` removes services the file no longer has.
pub fn stack_deploy(docker: &DockerCli, file: &str, stack: &str) -> Invocation {
    docker.invocation().args([
        "stack",
        "deploy",
        "--compose-file",
        file,
        "--prune",
        "--resolve-image",
        "never",
        stack,
    ])
}

/// `docker stack rm STACK`.
pub fn stack_rm(docker: &DockerCli, stack: &str) -> Invocation {
    docker.invocation().args(["stack", "rm", stack])
}

/// `docker service ls` of one stack, one JSON object a line.
pub fn service_ls(docker: &DockerCli, stack: &str) -> Invocation {
    docker
        .invocation()
        .args([
            "service".to_owned(),
            "ls".to_owned(),
            "--filter".to_owned(),
            format!("label={STACK_LABEL}={stack}"),
            "--format".to_owned(),
            "{{json .}}".to_owned(),
        ])
        .read_only()
}

/// `docker service inspect NAME…` (JSON array).
pub fn service_inspect(docker: &DockerCli, services: &[String]) -> Invocation {
    docker
        .invocation()
        .args(["service", "inspect"])
        .args(services.iter().cloned())
        .read_only()
}

/// `docker service ps` of one service's tasks (current and past), one JSON object a line, ids untruncated.
pub fn service_ps(docker: &DockerCli, service: &str) -> Invocation {
    docker
        .invocation()
        .args([
            "service",
            "ps",
            "--no-trunc",
            "--format",
            "{{json .}}",
            service,
        ])
        .read_only()
}

/// `docker service ps --no-trunc --filter desired-state=running --format {{json .}} SERVICE`: only the tasks
/// Swarm wants running now (the new ones of an update, not the old ones it is shutting down or the history),
/// which is what convergence is judged from.
pub fn service_ps_running(docker: &DockerCli, service: &str) -> Invocation {
    docker
        .invocation()
        .args([
            "service",
            "ps",
            "--no-trunc",
            "--filter",
            "desired-state=running",
            "--format",
            "{{json .}}",
            service,
        ])
        .read_only()
}

/// `docker service update --detach --no-resolve-image --image IMAGE --update-order start-first SERVICE`: a rolling update
/// (one task at a time, the new task healthy before the old one stops, Swarm's own rollback on failure);
/// detached, so xtask watches the convergence itself with a deadline; the tag is kept as given (nodes have
/// no registry to resolve it against).
pub fn service_update_image(docker: &DockerCli, service: &str, image: &str) -> Invocation {
    docker.invocation().args([
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--image",
        image,
        "--update-order",
        "start-first",
        "--update-failure-action",
        "rollback",
        service,
    ])
}

/// `docker service scale --detach SERVICE=N`.
pub fn service_scale(docker: &DockerCli, service: &str, replicas: u32) -> Invocation {
    docker
        .invocation()
        .args(["service", "scale", "--detach"])
        .arg(format!("{service}={replicas}"))
}

/// `docker network ls --quiet` of one stack's networks.
pub fn stack_networks(docker: &DockerCli, stack: &str) -> Invocation {
    docker
        .invocation()
        .args([
            "network".to_owned(),
            "ls".to_owned(),
            "--quiet".to_owned(),
            "--filter".to_owned(),
            format!("label={STACK_LABEL}={stack}"),
        ])
        .read_only()
}

/// `docker node ls`, one JSON object a line.
pub fn node_ls(docker: &DockerCli) -> Invocation {
    docker
        .invocation()
        .args(["node", "ls", "--format", "{{json .}}"])
        .read_only()
}

/// Running containers of a service's tasks on the engine DOCKER_HOST reaches (the manager):
/// `docker ps --quiet --filter label=com.docker.swarm.service.name=SERVICE`.
pub fn task_containers(docker: &DockerCli, service: &str) -> Invocation {
    docker
        .invocation()
        .args([
            "ps".to_owned(),
            "--quiet".to_owned(),
            "--filter".to_owned(),
            format!("label=com.docker.swarm.service.name={service}"),
        ])
        .read_only()
}

/// `docker config create --label K=V… NAME -`: the content on stdin. Config names are unique in the
/// cluster and the create is one Raft write, so it is a test-and-set.
pub fn config_create(docker: &DockerCli, name: &str, labels: &[(String, String)]) -> Invocation {
    let mut invocation = docker.invocation().args(["config", "create"]);
    for (key, value) in labels {
        invocation = invocation.arg("--label").arg(format!("{key}={value}"));
    }
    invocation.arg(name.to_owned()).arg("-")
}

/// `docker config ls --filter label=K[=V]… --format {{.ID}} {{.Name}}`.
pub fn config_ls(docker: &DockerCli, filters: &[String]) -> Invocation {
    let mut invocation = docker.invocation().args(["config", "ls"]);
    for filter in filters {
        invocation = invocation.arg("--filter").arg(format!("label={filter}"));
    }
    invocation
        .args(["--format", "{{.ID}} {{.Name}}"])
        .read_only()
}

/// `docker config inspect ID…` (JSON array; data base64 in `.Spec.Data`).
pub fn config_inspect(docker: &DockerCli, ids: &[String]) -> Invocation {
    docker
        .invocation()
        .args(["config", "inspect"])
        .args(ids.iter().cloned())
        .read_only()
}

/// `docker config rm ID…`.
pub fn config_rm(docker: &DockerCli, ids: &[String]) -> Invocation {
    docker
        .invocation()
        .args(["config", "rm"])
        .args(ids.iter().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(invocation: &Invocation) -> Vec<&str> {
        invocation.args.iter().map(String::as_str).collect()
    }

    #[test]
    fn stack_deploy_never_resolves_images_and_prunes() {
        let docker = DockerCli::default();
        let deploy = stack_deploy(&docker, "/x/stack.json", "avalon-offline");
        assert_eq!(
            argv(&deploy),
            [
                "stack",
                "deploy",
                "--compose-file",
                "/x/stack.json",
                "--prune",
                "--resolve-image",
                "never",
                "avalon-offline"
            ]
        );
        assert_eq!(deploy.effect, crate::command::Effect::Changes);
        assert_eq!(argv(&stack_rm(&docker, "s")), ["stack", "rm", "s"]);
    }

    #[test]
    fn a_rolling_update_starts_first_and_rolls_back_on_failure() {
        let update =
            service_update_image(&DockerCli::default(), "avalon-offline_api", "avalon-api:v2");
        assert_eq!(
            argv(&update),
            [
                "service",
                "update",
                "--detach",
                "--no-resolve-image",
                "--image",
                "avalon-api:v2",
                "--update-order",
                "start-first",
                "--update-failure-action",
                "rollback",
                "avalon-offline_api"
            ]
        );
    }

    #[test]
    fn scale_names_service_and_count() {
        assert_eq!(
            argv(&service_scale(&DockerCli::default(), "s_websocket", 4)),
            ["service", "scale", "--detach", "s_websocket=4"]
        );
    }

    #[test]
    fn listings_are_read_only_and_filtered_by_stack() {
        let docker = DockerCli::default();
        let ls = service_ls(&docker, "avalon-offline");
        assert_eq!(ls.effect, crate::command::Effect::ReadOnly);
        assert_eq!(
            argv(&ls),
            [
                "service",
                "ls",
                "--filter",
                "label=com.docker.stack.namespace=avalon-offline",
                "--format",
                "{{json .}}"
            ]
        );
        assert_eq!(
            argv(&service_ps(&docker, "s_api")),
            [
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{json .}}",
                "s_api"
            ]
        );
        let running = service_ps_running(&docker, "s_api");
        assert_eq!(running.effect, crate::command::Effect::ReadOnly);
        assert_eq!(
            argv(&running),
            [
                "service",
                "ps",
                "--no-trunc",
                "--filter",
                "desired-state=running",
                "--format",
                "{{json .}}",
                "s_api"
            ]
        );
        assert_eq!(
            argv(&task_containers(&docker, "s_redis")),
            [
                "ps",
                "--quiet",
                "--filter",
                "label=com.docker.swarm.service.name=s_redis"
            ]
        );
        assert_eq!(
            argv(&stack_networks(&docker, "s")),
            [
                "network",
                "ls",
                "--quiet",
                "--filter",
                "label=com.docker.stack.namespace=s"
            ]
        );
        assert_eq!(
            argv(&node_ls(&docker)),
            ["node", "ls", "--format", "{{json .}}"]
        );
    }

    #[test]
    fn configs_are_created_from_stdin_with_labels() {
        let docker = DockerCli::default();
        let create = config_create(
            &docker,
            "p-ledger-3",
            &[("avalon.ledger".to_owned(), "p".to_owned())],
        );
        assert_eq!(
            argv(&create),
            [
                "config",
                "create",
                "--label",
                "avalon.ledger=p",
                "p-ledger-3",
                "-"
            ]
        );
        assert_eq!(
            argv(&config_ls(&docker, &["avalon.ledger=p".to_owned()])),
            [
                "config",
                "ls",
                "--filter",
                "label=avalon.ledger=p",
                "--format",
                "{{.ID}} {{.Name}}"
            ]
        );
        assert_eq!(
            argv(&config_rm(&docker, &["id1".to_owned()])),
            ["config", "rm", "id1"]
        );
    }

    #[test]
    fn a_context_reaches_every_command() {
        let docker = DockerCli {
            context: Some("lab".to_owned()),
            ..DockerCli::default()
        };
        assert_eq!(
            argv(&stack_rm(&docker, "s")),
            ["--context", "lab", "stack", "rm", "s"]
        );
    }
}
