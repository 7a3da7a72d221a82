//! Engine commands of `scale` and `autoscale` (pure argv, tested): the resource figures of instances and
//! the removal of drained ones. Adding containers is compose's (`Compose::scale_out_and_wait`); stopping
//! them is `DockerCli::stop_containers` (each container's own stop signal and grace period, so the
//! runtime drains).

use super::docker::DockerCli;
use super::invocation::Invocation;

impl DockerCli {
    /// `docker container stats --no-stream --format {{json .}} ID…`: one JSON object per container with
    /// its CPU share (`CPUPerc`, 100 % = one core) and memory (`MemUsage`) right now (reads only).
    pub fn stats_json(&self, ids: &[String]) -> Invocation {
        self.invocation()
            .args([
                "container",
                "stats",
                "--no-stream",
                "--format",
                "{{json .}}",
            ])
            .args(ids.iter().cloned())
            .read_only()
    }

    /// `docker container rm ID…` of stopped containers (no `--force`: a container that is somehow still
    /// running is refused, never killed here).
    pub fn remove_stopped(&self, ids: &[String]) -> Invocation {
        self.invocation()
            .args(["container", "rm"])
            .args(ids.iter().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Effect;

    #[test]
    fn stats_read_and_removal_changes() {
        let docker = DockerCli::default();
        let ids = ["a1".to_owned(), "b2".to_owned()];
        let stats = docker.stats_json(&ids);
        assert_eq!(
            stats.args,
            [
                "container",
                "stats",
                "--no-stream",
                "--format",
                "{{json .}}",
                "a1",
                "b2"
            ]
        );
        assert_eq!(stats.effect, Effect::ReadOnly);
        let rm = docker.remove_stopped(&ids);
        assert_eq!(rm.args, ["container", "rm", "a1", "b2"]);
        assert_eq!(rm.effect, Effect::Changes);
    }
}
