//! The one engine command a heal runs: `docker container restart` for a hung container (its stop signal, then
//! SIGKILL after the grace period: a SIGSTOPped process cannot act on SIGTERM, so the kill is what frees it),
//! `docker container start` for one that exited on its own.

use crate::command::{DockerCli, Invocation};
use crate::deploy::ContainerInfo;

use super::verdict::Verdict;

/// The command for `verdict`; `None` when there is nothing to do.
pub fn command(
    docker: &DockerCli,
    container: &ContainerInfo,
    verdict: Verdict,
    grace_secs: u64,
) -> Option<Invocation> {
    match verdict {
        Verdict::RestartHung => Some(docker.restart_container(&container.id, grace_secs)),
        Verdict::StartExited => Some(docker.start_container(&container.id)),
        Verdict::Leave => None,
    }
}

/// Runs `command` (printed: it changes the target), or with `dry_run` only says what it would run.
pub fn apply(command: &Invocation, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        println!("would run: {command}");
        return Ok(());
    }
    command.capture(None).map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::deploy::parse_inspect;

    #[test]
    fn a_hung_container_is_restarted_with_its_grace_and_an_exited_one_started() {
        let json = r#"[{"Id":"0123456789abcdef","Name":"/avalon-offline-api-1","Image":"sha256:img","RestartCount":0,
            "State":{"Status":"running"},"Config":{"Image":"x","Labels":{"com.docker.compose.service":"api"}}}]"#;
        let container = parse_inspect(json).unwrap().remove(0);
        let docker = DockerCli::default();
        let restart = command(&docker, &container, Verdict::RestartHung, 2).unwrap();
        assert_eq!(
            restart.args,
            ["container", "restart", "--time", "2", "0123456789ab"]
        );
        let start = command(&docker, &container, Verdict::StartExited, 2).unwrap();
        assert_eq!(start.args, ["container", "start", "0123456789ab"]);
        assert!(command(&docker, &container, Verdict::Leave, 2).is_none());
    }
}
