//! Where the MongoDB tools run and how they reach the server, turned into exact command lines.
//!
//! The connection string is a secret. mongodump and mongorestore take it from a `--config` YAML
//! file; mongosh from `process.env` in its script. In a container the YAML is produced by a shell
//! here-document from an environment variable (a pipe, never a file or an argument); on the host it
//! is a private temporary file. Standard input stays free for the archive stream.

use std::io::Write;

use anyhow::Context;
use clap::ValueEnum;
use serde::Deserialize;

use crate::container_exec::{ContainerRef, DockerCli, Invocation, SecretValue};

/// The variable that carries the tools' YAML config into the container.
const CONFIG_VAR: &str = "AVALON_MONGO_TOOLS_CONFIG";
/// The variable that carries the connection string to mongosh.
const URI_VAR: &str = "AVALON_MONGODB_URI";

/// Runs the program named by `$0` with `--config` read from file descriptor 3, fed by a
/// here-document expanded from `$AVALON_MONGO_TOOLS_CONFIG` (the delimiter is unquoted so the
/// variable expands; the expanded value is inserted literally, never re-expanded).
const CONFIG_FROM_ENV_SCRIPT: &str =
    "exec \"$0\" --config=/dev/fd/3 \"$@\" 3<<AVALON_EOF_MARKER\n__CONFIG__\nAVALON_EOF_MARKER";

/// Where the Compose stack mounts the mongodb root password (`MONGO_INITDB_ROOT_PASSWORD_FILE`).
const MONGODB_SECRET_FILE: &str = "/run/secrets/mongodb_root_password";

/// Without MONGODB_URI, inside the container: authenticate as the container's root user with the
/// password from its secret file, handed to the tool as a `--config` YAML through a here-document
/// (a YAML single-quoted scalar; `''` is its escaped quote). No secret file: run the tool plainly.
const SECRET_FILE_SCRIPT: &str = r#"secret=__SECRET_FILE__
if [ -r "$secret" ]; then
  exec "$0" --username="${MONGO_INITDB_ROOT_USERNAME:-root}" --authenticationDatabase=admin --config=/dev/fd/3 "$@" 3<<AVALON_EOF_MARKER
password: '$(sed "s/'/''/g" "$secret")'
AVALON_EOF_MARKER
fi
exec "$0" "$@""#;

/// mongosh's connection: the URI from the environment, else the container's root credentials
/// from its secret file, else the local server without authentication.
const MONGOSH_CONNECT: &str = r"const client = new Mongo(process.env.__URI_VAR__ || 'mongodb://127.0.0.1:27017/');
if (!process.env.__URI_VAR__) {
  const fs = require('fs');
  const secret = '__SECRET_FILE__';
  if (fs.existsSync(secret)) {
    const password = fs.readFileSync(secret, 'utf8').replace(/\n+$/, '');
    client.getDB('admin').auth(process.env.MONGO_INITDB_ROOT_USERNAME || 'root', password);
  }
}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OplogMode {
    /// Ask the server: on for a replica set, off for a standalone.
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone)]
pub enum ToolPlace {
    Container {
        docker: DockerCli,
        container: ContainerRef,
    },
    Host,
}

#[derive(Debug, Clone)]
pub struct MongoTarget {
    pub place: ToolPlace,
    pub uri: Option<SecretValue>,
}

/// A tool command ready to run, holding what must live as long as it runs (a config file).
pub struct PreparedTool {
    pub invocation: Invocation,
    _config_file: Option<tempfile::NamedTempFile>,
}

/// What the server said about itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerFacts {
    #[serde(rename = "setName")]
    pub replica_set: Option<String>,
    pub version: Option<String>,
}

/// How `backup restore` and `verify --restore-test` call mongorestore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    pub gzip: bool,
    pub drop: bool,
    /// Only these namespace patterns (`db.*`); empty: everything.
    pub include: Vec<String>,
    /// `--nsFrom`/`--nsTo` pairs.
    pub renames: Vec<(String, String)>,
    pub oplog_replay: bool,
}

impl MongoTarget {
    /// The container id the tools will run in, resolved once (None on the host).
    pub fn resolve(&self) -> anyhow::Result<ResolvedTarget> {
        let container = match &self.place {
            ToolPlace::Container { docker, container } => {
                Some((docker.clone(), docker.resolve(container)?))
            }
            ToolPlace::Host => None,
        };
        Ok(ResolvedTarget {
            container,
            uri: self.uri.clone(),
        })
    }
}

impl MongoTarget {
    /// For `--dry-run`: the container named as the operator would find it, without asking Docker.
    pub fn resolve_for_display(&self) -> ResolvedTarget {
        let container = match &self.place {
            ToolPlace::Container { docker, container } => {
                let shown = match container {
                    ContainerRef::Named(name) => name.clone(),
                    ContainerRef::ComposeService { project, service } => {
                        format!("<container of service {service} in project {project}>")
                    }
                };
                Some((docker.clone(), shown))
            }
            ToolPlace::Host => None,
        };
        ResolvedTarget {
            container,
            uri: self.uri.clone(),
        }
    }
}

/// A target whose container id is known.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    pub container: Option<(DockerCli, String)>,
    pub uri: Option<SecretValue>,
}

impl ResolvedTarget {
    pub fn dump(&self, oplog: bool) -> anyhow::Result<PreparedTool> {
        let mut args = vec!["--archive".to_owned(), "--gzip".to_owned()];
        if oplog {
            args.push("--oplog".to_owned());
        }
        self.mongo_tool("mongodump", args)
    }

    pub fn restore(&self, options: &RestoreOptions) -> anyhow::Result<PreparedTool> {
        let mut args = vec!["--archive".to_owned()];
        if options.gzip {
            args.push("--gzip".to_owned());
        }
        if options.drop {
            args.push("--drop".to_owned());
        }
        if options.oplog_replay {
            args.push("--oplogReplay".to_owned());
        }
        for pattern in &options.include {
            args.push(format!("--nsInclude={pattern}"));
        }
        for (from, to) in &options.renames {
            args.push(format!("--nsFrom={from}"));
            args.push(format!("--nsTo={to}"));
        }
        self.mongo_tool("mongorestore", args)
    }

    /// `mongosh --nodb` running `script`, which finds the connection string in
    /// `process.env.AVALON_MONGODB_URI` (or connects to the local server without one).
    pub fn shell(&self, script: &str) -> Invocation {
        let connect = MONGOSH_CONNECT
            .replace("__URI_VAR__", URI_VAR)
            .replace("__SECRET_FILE__", MONGODB_SECRET_FILE);
        let script = format!("{connect}\n{script}");
        let mut inner = Invocation::new("mongosh")
            .args(["--nodb", "--quiet", "--eval"])
            .arg(script);
        if let Some(uri) = &self.uri {
            inner = inner.secret_env(URI_VAR, uri.clone());
        }
        self.place(inner)
    }

    /// Whether the server is a replica set member, and its version.
    pub fn probe(&self) -> anyhow::Result<ServerFacts> {
        let output = self.shell(PROBE_SCRIPT).capture(None)?;
        parse_last_json_line(&output).context("reading the server probe's answer")
    }

    fn place(&self, inner: Invocation) -> Invocation {
        match &self.container {
            Some((docker, id)) => docker.exec(id, inner),
            None => inner,
        }
    }

    fn mongo_tool(&self, program: &str, args: Vec<String>) -> anyhow::Result<PreparedTool> {
        let Some(uri) = &self.uri else {
            // Inside the container without MONGODB_URI: the root credentials the container itself was
            // given as a Compose secret, if any, else the tools' default (local server, no auth).
            let script = SECRET_FILE_SCRIPT.replace("__SECRET_FILE__", MONGODB_SECRET_FILE);
            let inner = Invocation::new("sh")
                .arg("-c")
                .arg(script)
                .arg(program)
                .args(args);
            return Ok(PreparedTool {
                invocation: self.place(inner),
                _config_file: None,
            });
        };
        let config = tools_config_yaml(uri);
        match &self.container {
            Some((docker, id)) => {
                let script =
                    CONFIG_FROM_ENV_SCRIPT.replace("__CONFIG__", &format!("${CONFIG_VAR}"));
                let inner = Invocation::new("sh")
                    .arg("-c")
                    .arg(script)
                    .arg(program)
                    .args(args)
                    .secret_env(CONFIG_VAR, config);
                Ok(PreparedTool {
                    invocation: docker.exec(id, inner),
                    _config_file: None,
                })
            }
            None => {
                let mut file = tempfile::Builder::new()
                    .prefix("avalon-mongo-tools-")
                    .suffix(".yaml")
                    .tempfile()
                    .context("creating the MongoDB tools' config file")?;
                file.write_all(format!("{}\n", config.expose()).as_bytes())
                    .and_then(|()| file.flush())
                    .context("writing the MongoDB tools' config file")?;
                let invocation = Invocation::new(program)
                    .arg(format!("--config={}", file.path().display()))
                    .args(args);
                Ok(PreparedTool {
                    invocation,
                    _config_file: Some(file),
                })
            }
        }
    }
}

/// `uri: "<escaped>"` — a JSON string is a valid YAML double-quoted scalar, so any character in the
/// connection string survives. No trailing newline: the here-document adds one.
fn tools_config_yaml(uri: &SecretValue) -> SecretValue {
    let quoted = serde_json::Value::String(uri.expose().to_owned()).to_string();
    SecretValue::new(format!("uri: {quoted}"))
}

const PROBE_SCRIPT: &str = "const admin = client.getDB('admin');\n\
    const hello = admin.runCommand({ hello: 1 });\n\
    const info = admin.runCommand({ buildInfo: 1 });\n\
    print(JSON.stringify({ setName: hello.setName || null, version: info.version || null }));";

/// mongosh may print warnings before the answer; the answer is the last line.
pub fn parse_last_json_line<T: serde::de::DeserializeOwned>(output: &str) -> anyhow::Result<T> {
    let line = output
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .with_context(|| "mongosh printed nothing".to_owned())?;
    serde_json::from_str(line.trim()).with_context(|| format!("unexpected mongosh output: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "mongodb://backup:s3cr%27t:pw@mongodb:27017/avalon?authSource=admin";

    fn in_container(uri: Option<&str>) -> ResolvedTarget {
        ResolvedTarget {
            container: Some((DockerCli::default(), "abc123".to_owned())),
            uri: uri.map(|uri| SecretValue::new(uri.to_owned())),
        }
    }

    fn assert_no_secret_in_argv(invocation: &Invocation) {
        let printed = invocation.to_string();
        for arg in invocation.args.iter().chain(std::iter::once(&printed)) {
            assert!(!arg.contains("s3cr%27t"), "secret leaked into {arg:?}");
            assert!(!arg.contains("--uri"), "--uri must not be used: {arg:?}");
        }
    }

    #[test]
    fn dump_in_container_reads_the_uri_from_a_here_document() {
        let tool = in_container(Some(URI)).dump(true).unwrap();
        let invocation = &tool.invocation;
        assert_no_secret_in_argv(invocation);
        assert_eq!(
            invocation.args[..6],
            ["exec", "-i", "-e", CONFIG_VAR, "abc123", "sh"]
        );
        assert_eq!(invocation.args[6], "-c");
        assert!(invocation.args[7].contains("--config=/dev/fd/3"));
        assert_eq!(
            invocation.args[8..],
            ["mongodump", "--archive", "--gzip", "--oplog"]
        );
        let config: Vec<&str> = invocation.secret_values().collect();
        assert_eq!(config.len(), 1);
        assert!(
            config[0].starts_with("uri: \"mongodb://backup:s3cr%27t"),
            "{}",
            config[0]
        );
    }

    #[test]
    fn here_document_delivers_the_config_verbatim() {
        // The exact script the container runs, with `cat` standing in for the tool.
        let tricky = "mongodb://u:p$HOME`x`\"q\\@h/db";
        let config = tools_config_yaml(&SecretValue::new(tricky.to_owned()));
        let script = CONFIG_FROM_ENV_SCRIPT.replace("__CONFIG__", &format!("${CONFIG_VAR}"));
        let dir = tempfile::tempdir().unwrap();
        let fake_tool = dir.path().join("fake-tool");
        std::fs::write(
            &fake_tool,
            "#!/bin/sh\nfor a; do case $a in --config=*) cat \"${a#--config=}\";; esac; done\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake_tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let output = Invocation::new("sh")
            .args(["-c", &script, fake_tool.to_str().unwrap(), "--archive"])
            .secret_env(CONFIG_VAR, config.clone())
            .capture(None)
            .unwrap();
        assert_eq!(output, format!("{}\n", config.expose()));
        let parsed: serde_json::Value =
            serde_json::from_str(output.trim().strip_prefix("uri: ").unwrap()).unwrap();
        assert_eq!(parsed, tricky);
    }

    #[test]
    fn without_a_uri_the_containers_own_secret_file_is_used() {
        let tool = in_container(None).dump(false).unwrap();
        assert_eq!(
            tool.invocation.args[..5],
            ["exec", "-i", "abc123", "sh", "-c"]
        );
        assert!(tool.invocation.args[5].contains(MONGODB_SECRET_FILE));
        assert_eq!(
            tool.invocation.args[6..],
            ["mongodump", "--archive", "--gzip"]
        );
        assert!(
            in_container(None)
                .shell("x")
                .args
                .last()
                .unwrap()
                .contains(MONGODB_SECRET_FILE)
        );
    }

    /// Runs the secret-file script as the container would, with a stand-in tool that prints its
    /// arguments and the config it was handed.
    fn run_secret_file_script(secret_file: &std::path::Path) -> String {
        let dir = tempfile::tempdir().unwrap();
        let fake_tool = dir.path().join("fake-tool");
        std::fs::write(
            &fake_tool,
            "#!/bin/sh\necho \"args: $*\"\nfor a; do case $a in --config=*) cat \"${a#--config=}\";; esac; done\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake_tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let script =
            SECRET_FILE_SCRIPT.replace("__SECRET_FILE__", &secret_file.display().to_string());
        Invocation::new("sh")
            .args(["-c", &script, fake_tool.to_str().unwrap(), "--archive"])
            .capture(None)
            .unwrap()
    }

    #[test]
    fn secret_file_script_hands_the_password_over_as_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "it's $HOME `x`\n").unwrap();
        let output = run_secret_file_script(&secret);
        assert!(
            output.starts_with("args: --username=root --authenticationDatabase=admin --config=/dev/fd/3 --archive\n"),
            "{output}"
        );
        assert!(
            output.ends_with("password: 'it''s $HOME `x`'\n"),
            "{output}"
        );
        let missing = run_secret_file_script(&dir.path().join("absent"));
        assert_eq!(missing, "args: --archive\n");
    }

    #[test]
    fn restore_flags_are_built_from_options() {
        let options = RestoreOptions {
            gzip: true,
            drop: true,
            include: vec!["avalon.*".to_owned()],
            renames: vec![("avalon.*".to_owned(), "rt_1_avalon.*".to_owned())],
            oplog_replay: false,
        };
        let tool = in_container(Some(URI)).restore(&options).unwrap();
        assert_no_secret_in_argv(&tool.invocation);
        assert_eq!(
            tool.invocation.args[8..],
            [
                "mongorestore",
                "--archive",
                "--gzip",
                "--drop",
                "--nsInclude=avalon.*",
                "--nsFrom=avalon.*",
                "--nsTo=rt_1_avalon.*"
            ]
        );
    }

    #[test]
    fn host_tools_get_a_private_config_file() {
        let target = ResolvedTarget {
            container: None,
            uri: Some(SecretValue::new(URI.to_owned())),
        };
        let tool = target.dump(false).unwrap();
        assert_no_secret_in_argv(&tool.invocation);
        let config_arg = tool.invocation.args[0].clone();
        let path = config_arg.strip_prefix("--config=").unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("s3cr%27t"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "config file must be private");
        }
        drop(tool);
        assert!(
            !std::path::Path::new(path).exists(),
            "config file is removed after use"
        );
    }

    #[test]
    fn mongosh_gets_the_uri_from_its_environment() {
        let invocation = in_container(Some(URI)).shell("print(1)");
        assert_no_secret_in_argv(&invocation);
        assert_eq!(
            invocation.args[..6],
            ["exec", "-i", "-e", URI_VAR, "abc123", "mongosh"]
        );
        assert!(
            invocation
                .args
                .last()
                .unwrap()
                .contains("process.env.AVALON_MONGODB_URI")
        );
    }

    #[test]
    fn probe_answer_is_the_last_line() {
        let facts: ServerFacts =
            parse_last_json_line("Warning: x\n{\"setName\":\"rs0\",\"version\":\"7.0.14\"}\n")
                .unwrap();
        assert_eq!(facts.replica_set.as_deref(), Some("rs0"));
        let facts: ServerFacts =
            parse_last_json_line("{\"setName\":null,\"version\":\"7.0.14\"}").unwrap();
        assert_eq!(facts.replica_set, None);
    }
}
