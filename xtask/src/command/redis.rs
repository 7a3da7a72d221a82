//! `redis-cli` inside the stack's redis container, through `docker exec`. The password never reaches a
//! command line: xtask's REDIS_PASSWORD travels as `REDISCLI_AUTH` by name (`docker exec -e NAME`), and
//! without one a small `sh` script reads the container's own Compose secret into `REDISCLI_AUTH`.

use super::docker::DockerCli;
use super::invocation::{Invocation, SecretValue};

/// Without REDIS_PASSWORD: the password the redis container was given as a Compose secret.
pub const SECRET_FILE_SCRIPT: &str = r#"if [ -r /run/secrets/redis_password ]; then
  REDISCLI_AUTH="$(cat /run/secrets/redis_password)"
  export REDISCLI_AUTH
fi
exec "$0" "$@""#;

/// Every instance record in one round trip: SCAN (never KEYS, which blocks Redis) over the prefix in
/// ARGV[1], MGET each batch, skip keys that expired in between, and return the values joined by line
/// breaks (a record is one line of JSON), so redis-cli prints one record per line.
pub const REGISTRY_SCAN_SCRIPT: &str = r"local cursor = '0'
local records = {}
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 200)
  cursor = reply[1]
  if #reply[2] > 0 then
    local values = redis.call('MGET', unpack(reply[2]))
    for i = 1, #reply[2] do
      if values[i] then table.insert(records, values[i]) end
    end
  end
until cursor == '0'
return table.concat(records, '\n')";

/// `docker exec -i [-e REDISCLI_AUTH] CONTAINER redis-cli ARGS…`, or, without a password, `sh -c
/// <SECRET_FILE_SCRIPT> redis-cli ARGS…`. `command` is `redis-cli` with its arguments (labelled ones
/// stay labelled); its effect is the whole command's.
pub fn redis_cli(
    docker: &DockerCli,
    container: &str,
    password: Option<&SecretValue>,
    command: Invocation,
) -> Invocation {
    let inner = match password {
        Some(password) => command.secret_env("REDISCLI_AUTH", password.clone()),
        None => Invocation::new("sh")
            .with_effect(command.effect)
            .arg("-c")
            .labelled_arg("\"$REDIS_SECRET_FILE_SCRIPT\"", SECRET_FILE_SCRIPT)
            .then_run(command),
    };
    docker.exec(container, inner)
}

/// Reads every record under `prefix` (`avalon:instance:`) with [`REGISTRY_SCAN_SCRIPT`].
pub fn registry_records(
    docker: &DockerCli,
    container: &str,
    password: Option<&SecretValue>,
    prefix: &str,
) -> Invocation {
    let command = Invocation::new("redis-cli")
        .read_only()
        .arg("EVAL")
        .labelled_arg("\"$REGISTRY_SCAN_SCRIPT\"", REGISTRY_SCAN_SCRIPT)
        .args(["0".to_owned(), format!("{prefix}*")]);
    redis_cli(docker, container, password, command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Effect;

    #[test]
    fn the_registry_is_read_with_the_password_by_name() {
        let password = SecretValue::new("pw-123".to_owned());
        let read = registry_records(
            &DockerCli::default(),
            "r1",
            Some(&password),
            "avalon:instance:",
        );
        assert_eq!(
            read.args,
            [
                "exec",
                "-i",
                "-e",
                "REDISCLI_AUTH",
                "r1",
                "redis-cli",
                "EVAL",
                REGISTRY_SCAN_SCRIPT,
                "0",
                "avalon:instance:*"
            ]
        );
        assert_eq!(read.effect, Effect::ReadOnly);
        let shown = read.to_string();
        assert!(!shown.contains("pw-123"), "{shown}");
        assert!(shown.contains("\"$REGISTRY_SCAN_SCRIPT\""), "{shown}");
        assert!(
            !shown.contains("MGET"),
            "the script prints by its label: {shown}"
        );
    }

    #[test]
    fn without_a_password_the_container_reads_its_own_secret_file() {
        let read = registry_records(&DockerCli::default(), "r1", None, "avalon:instance:");
        assert_eq!(
            read.args,
            [
                "exec",
                "-i",
                "r1",
                "sh",
                "-c",
                SECRET_FILE_SCRIPT,
                "redis-cli",
                "EVAL",
                REGISTRY_SCAN_SCRIPT,
                "0",
                "avalon:instance:*"
            ]
        );
        assert_eq!(read.effect, Effect::ReadOnly);
        assert_eq!(
            read.to_string(),
            "docker exec -i r1 sh -c \"$REDIS_SECRET_FILE_SCRIPT\" redis-cli EVAL \"$REGISTRY_SCAN_SCRIPT\" 0 'avalon:instance:*'"
        );
    }

    #[test]
    fn the_scan_script_never_uses_keys() {
        assert!(REGISTRY_SCAN_SCRIPT.contains("'SCAN'"));
        assert!(!REGISTRY_SCAN_SCRIPT.contains("'KEYS'"));
    }
}
