//! The argv of the edge's engine commands: the short-lived writer that changes nginx's state directory,
//! and requests from inside the edge container (pure, tested as argv). The scripts they run live in
//! `nginx/` (`edge.sh`, `verify.sh`); each is passed as one argument and printed by a label.

use super::docker::DockerCli;
use super::invocation::Invocation;

/// What the writer helper mounts and runs as: taken from the edge container it stands in for.
pub struct EdgeWriter<'a> {
    /// The edge container, whose network namespace the helper shares (so `nginx -t` resolves the
    /// upstream names exactly as the edge will).
    pub container: &'a str,
    /// The edge's image id: the helper runs the same nginx.
    pub image: &'a str,
    /// `type=…,source=…` of the state directory's mount.
    pub state_mount: &'a str,
    /// Where the state directory is mounted, in the edge and in the helper.
    pub dir: &'a str,
    /// The edge's other mounts as complete `--mount` specs (read-only).
    pub other_mounts: &'a [String],
}

impl DockerCli {
    /// `docker run --rm [--interactive] … --entrypoint sh IMAGE -c SCRIPT edge OP DIR ARGS…`: one operation
    /// of `script` on the state directory, as root so it can write whatever the directory's owner can.
    pub fn edge_writer(
        &self,
        writer: &EdgeWriter<'_>,
        script: (&'static str, &str),
        op: &str,
        args: &[&str],
        interactive: bool,
    ) -> Invocation {
        let mut invocation = self.invocation().args(["run", "--rm"]);
        if interactive {
            invocation = invocation.arg("--interactive");
        }
        let (label, text) = script;
        invocation
            .args([
                "--label".to_owned(),
                "avalon.role=edge-writer".to_owned(),
                "--network".to_owned(),
                format!("container:{}", writer.container),
                "--mount".to_owned(),
                format!("{},destination={}", writer.state_mount, writer.dir),
            ])
            .args(
                writer
                    .other_mounts
                    .iter()
                    .flat_map(|spec| ["--mount".to_owned(), spec.clone()]),
            )
            .args(["--user", "0:0", "--entrypoint", "sh", writer.image, "-c"])
            .labelled_arg(label, text)
            .args(["edge", op, writer.dir])
            .args(args.iter().copied())
    }

    /// `docker container exec CONTAINER sh -c SCRIPT verify COUNT URL`: requests from inside the edge
    /// container (it needs no route from this machine to the published port).
    pub fn edge_requests(
        &self,
        container: &str,
        script: (&'static str, &str),
        count: u32,
        url: &str,
    ) -> Invocation {
        let (label, text) = script;
        self.invocation()
            .args(["container", "exec", container, "sh", "-c"])
            .labelled_arg(label, text)
            .args(["verify", &count.to_string(), url])
            .read_only()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Effect;

    #[test]
    fn the_writer_shares_the_edge_network_and_mounts_and_prints_its_script_by_label() {
        let other = ["type=bind,source=/srv/certs,destination=/etc/certs,readonly".to_owned()];
        let writer = EdgeWriter {
            container: "avalon-prod-nginx-1",
            image: "sha256:abc",
            state_mount: "type=volume,source=avalon_edge",
            dir: "/etc/nginx",
            other_mounts: &other,
        };
        let invocation = DockerCli::default().edge_writer(
            &writer,
            ("\"$EDGE_SCRIPT\"", "set -eu\n"),
            "stage",
            &["1-x", "5"],
            true,
        );
        assert_eq!(
            invocation.args,
            [
                "run",
                "--rm",
                "--interactive",
                "--label",
                "avalon.role=edge-writer",
                "--network",
                "container:avalon-prod-nginx-1",
                "--mount",
                "type=volume,source=avalon_edge,destination=/etc/nginx",
                "--mount",
                "type=bind,source=/srv/certs,destination=/etc/certs,readonly",
                "--user",
                "0:0",
                "--entrypoint",
                "sh",
                "sha256:abc",
                "-c",
                "set -eu\n",
                "edge",
                "stage",
                "/etc/nginx",
                "1-x",
                "5"
            ]
        );
        assert_eq!(invocation.effect, Effect::Changes);
        assert!(
            invocation
                .to_string()
                .contains("-c \"$EDGE_SCRIPT\" edge stage /etc/nginx 1-x 5"),
            "{invocation}"
        );
        let swap =
            DockerCli::default().edge_writer(&writer, ("S", "s"), "swap", &["2-y", "", "5"], false);
        assert_eq!(swap.args[..3], ["run", "--rm", "--label"]);
    }

    #[test]
    fn requests_from_inside_the_edge_only_read() {
        let invocation = DockerCli::default().edge_requests(
            "edge-1",
            ("\"$VERIFY_SCRIPT\"", "i=0\n"),
            3,
            "http://127.0.0.1:80/.avalon/config",
        );
        assert_eq!(
            invocation.args,
            [
                "container",
                "exec",
                "edge-1",
                "sh",
                "-c",
                "i=0\n",
                "verify",
                "3",
                "http://127.0.0.1:80/.avalon/config"
            ]
        );
        assert_eq!(invocation.effect, Effect::ReadOnly);
    }
}
