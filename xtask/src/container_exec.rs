//! Running programs inside the stack's containers through the Docker CLI (so the same command works
//! against the local engine, `DOCKER_HOST=ssh://…` or a `--context`), and running host programs, with
//! the command printed before it runs and secrets kept off every command line.
//!
//! Secrets travel as environment variables: `docker exec -e NAME` without `=value` makes the Docker
//! CLI copy NAME from its own environment, so the value never appears in any argv — not xtask's,
//! not the CLI's, not the process's inside the container.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use anyhow::{Context, bail};

/// One external command: what is run, with which arguments, and which secret variables it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Passed by value in the child's environment, printed by name only.
    secret_env: Vec<(String, SecretValue)>,
    /// Arguments printed as a label instead of their text (index into `args`, label): a script of a
    /// hundred lines would bury the command around it.
    labelled: Vec<(usize, &'static str)>,
}

/// A value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Invocation {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            secret_env: Vec::new(),
            labelled: Vec::new(),
        }
    }

    /// An argument printed as `label` (say, where the script it holds is defined), passed as `text`.
    pub fn labelled_arg(mut self, label: &'static str, text: &str) -> Self {
        self.labelled.push((self.args.len(), label));
        self.args.push(text.to_owned());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn secret_env(mut self, name: &str, value: SecretValue) -> Self {
        self.secret_env.push((name.to_owned(), value));
        self
    }

    /// Every secret value, so tests can assert none of them leaked into `args`.
    #[cfg(test)]
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.secret_env.iter().map(|(_, value)| value.expose())
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (name, value) in &self.secret_env {
            command.env(name, value.expose());
        }
        command
    }

    /// Prints the command the way xshell does, to stderr so stdout stays clean for `--json`.
    pub fn announce(&self) {
        eprintln!("$ {self}");
    }

    /// Runs to completion and returns its standard output; standard error passes through.
    pub fn capture(&self, stdin: Option<&[u8]>) -> anyhow::Result<String> {
        let mut output = Vec::new();
        self.stream(
            stdin.map(|bytes| Box::new(io::Cursor::new(bytes.to_vec())) as _),
            &mut output,
        )?;
        String::from_utf8(output).with_context(|| format!("output of `{self}` is not UTF-8"))
    }

    /// Announces and starts the program with standard output piped.
    fn spawn(&self, piped_stdin: bool, stderr: Stdio) -> anyhow::Result<std::process::Child> {
        self.announce();
        self.command()
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))
    }

    /// Announces and starts the program with all three streams piped, for a caller that talks to it.
    pub fn spawn_piped(&self) -> anyhow::Result<std::process::Child> {
        self.spawn(true, Stdio::piped())
    }

    /// Runs to completion with both output streams captured (nothing passes through) and returns them
    /// with the exit code, whatever it is: for callers that read a failure's message themselves.
    pub fn output(&self, stdin: Option<&[u8]>) -> anyhow::Result<Captured> {
        let mut child = self.spawn(stdin.is_some(), Stdio::piped())?;
        let feeder = match (stdin.map(<[u8]>::to_vec), child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(thread::spawn(move || pipe.write_all(&bytes))),
            _ => None,
        };
        let output = child
            .wait_with_output()
            .with_context(|| format!("waiting for {}", self.program.display()))?;
        if let Some(feeder) = feeder {
            // A program that exits without reading its input closes the pipe: its exit code says why.
            let _ = feeder.join();
        }
        Ok(Captured {
            code: output.status.code(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs to completion, feeding `stdin` from a thread and copying standard output into `stdout`
    /// as it arrives. Fails when the program cannot start, exits non-zero, or a copy fails.
    pub fn stream(
        &self,
        stdin: Option<Box<dyn Read + Send>>,
        stdout: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let mut child = self.spawn(stdin.is_some(), Stdio::inherit())?;
        let feeder = match (stdin, child.stdin.take()) {
            (Some(mut source), Some(mut pipe)) => Some(thread::spawn(move || {
                let copied = io::copy(&mut source, &mut pipe);
                drop(pipe);
                copied
            })),
            _ => None,
        };
        let copied = match child.stdout.take() {
            Some(mut pipe) => copy_in_large_chunks(&mut pipe, stdout),
            None => Ok(()),
        };
        let status = child
            .wait()
            .with_context(|| format!("waiting for {}", self.program.display()))?;
        let fed = feeder.map(|feeder| feeder.join());
        check_status(self, status)?;
        copied.with_context(|| format!("copying the output of `{self}`"))?;
        match fed {
            Some(Ok(Err(error))) => {
                Err(error).with_context(|| format!("feeding the input of `{self}`"))
            }
            Some(Err(_)) => bail!("the thread feeding `{self}` panicked"),
            _ => Ok(()),
        }
    }
}

/// What [`Invocation::output`] returns.
#[derive(Debug)]
pub struct Captured {
    /// `None` when the program was killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// `io::copy` moves 8 KiB at a time; a dump is copied in chunks large enough that the per-chunk
/// work downstream (hashing, handing a chunk to the parser thread) stays small.
fn copy_in_large_chunks(input: &mut dyn Read, output: &mut dyn Write) -> io::Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match input.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => output.write_all(&buffer[..read])?,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

fn check_status(invocation: &Invocation, status: ExitStatus) -> anyhow::Result<()> {
    if status.success() {
        return Ok(());
    }
    match status.code() {
        Some(code) => bail!("`{invocation}` exited with status {code}"),
        None => bail!("`{invocation}` was killed by a signal ({status})"),
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, _) in &self.secret_env {
            write!(f, "{name}=<redacted> ")?;
        }
        write!(f, "{}", shell_quote(&self.program.to_string_lossy()))?;
        for (index, arg) in self.args.iter().enumerate() {
            match self.labelled.iter().find(|(at, _)| *at == index) {
                Some((_, label)) => write!(f, " {label}")?,
                None => write!(f, " {}", shell_quote(arg))?,
            }
        }
        Ok(())
    }
}

/// Quotes for a POSIX shell only when needed, so printed commands can be pasted.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b':' | b'=' | b',' | b'@' | b'+'
                )
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

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

/// Which container a command runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerRef {
    /// A container name or id, used as given.
    Named(String),
    /// The running container of a Compose service, found by Compose's labels (so neither the
    /// Compose plugin nor its container naming scheme is needed).
    ComposeService { project: String, service: String },
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(name) => write!(f, "container {name}"),
            Self::ComposeService { project, service } => {
                write!(f, "service {service} of Compose project {project}")
            }
        }
    }
}

impl DockerCli {
    pub fn invocation(&self) -> Invocation {
        let invocation = Invocation::new(self.program.clone());
        match &self.context {
            Some(context) => invocation.arg("--context").arg(context.clone()),
            None => invocation,
        }
    }

    /// The engine endpoint the CLI talks to (`unix:///var/run/docker.sock`, `ssh://ops@host`, …):
    /// `DOCKER_HOST` unless a context is named, else the context's; empty when it cannot be told.
    pub fn endpoint(&self) -> String {
        if self.context.is_none()
            && let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty())
        {
            return host;
        }
        self.invocation()
            .args([
                "context",
                "inspect",
                "--format",
                "{{.Endpoints.docker.Host}}",
            ])
            .output(None)
            .ok()
            .filter(Captured::success)
            .map(|captured| captured.stdout_text().trim().to_owned())
            .unwrap_or_default()
    }

    /// The container id or name to `docker exec` into.
    pub fn resolve(&self, container: &ContainerRef) -> anyhow::Result<String> {
        match container {
            ContainerRef::Named(name) => Ok(name.clone()),
            ContainerRef::ComposeService { project, service } => {
                let output = self
                    .find_service_invocation(project, service)
                    .capture(None)?;
                let ids: Vec<&str> = output.split_whitespace().collect();
                match ids.as_slice() {
                    [id] => Ok((*id).to_owned()),
                    [] => bail!(
                        "no running container for {container}; is the stack up (`docker ps`), and is the project name right (--project)?"
                    ),
                    [first, ..] => {
                        eprintln!(
                            "note: {} running containers for {container}; using {first}",
                            ids.len()
                        );
                        Ok((*first).to_owned())
                    }
                }
            }
        }
    }

    pub fn find_service_invocation(&self, project: &str, service: &str) -> Invocation {
        self.invocation().args([
            "ps".to_owned(),
            "--quiet".to_owned(),
            "--filter".to_owned(),
            format!("label=com.docker.compose.project={project}"),
            "--filter".to_owned(),
            format!("label=com.docker.compose.service={service}"),
        ])
    }

    /// `docker exec -i [-e NAME…] CONTAINER PROGRAM ARGS…`, with each secret copied from the CLI's
    /// environment by name.
    pub fn exec(&self, container_id: &str, inner: Invocation) -> Invocation {
        let mut outer = self.invocation().args(["exec", "-i"]);
        for (name, value) in inner.secret_env {
            outer = outer.arg("-e").arg(name.clone()).secret_env(&name, value);
        }
        outer
            .arg(container_id.to_owned())
            .arg(inner.program.to_string_lossy().into_owned())
            .args(inner.args)
    }
}

/// Reads a secret from `NAME` or, Docker-secrets style, from the file named by `NAME_FILE`.
pub fn secret_from_env(name: &str) -> anyhow::Result<Option<SecretValue>> {
    if let Some(value) = std::env::var_os(name) {
        return Ok(Some(SecretValue::new(os_string_to_string(name, value)?)));
    }
    let file_var = format!("{name}_FILE");
    match std::env::var_os(&file_var) {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("reading {file_var} ({})", PathBuf::from(&path).display())
            })?;
            Ok(Some(SecretValue::new(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )))
        }
    }
}

fn os_string_to_string(name: &str, value: OsString) -> anyhow::Result<String> {
    value
        .into_string()
        .map_err(|_| anyhow::anyhow!("{name} is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_by_name_only_and_reach_the_child() {
        let invocation = Invocation::new("sh")
            .args(["-c", "printf %s \"$TOKEN\""])
            .secret_env("TOKEN", SecretValue::new("hunter2".to_owned()));
        let shown = invocation.to_string();
        assert_eq!(shown, "TOKEN=<redacted> sh -c 'printf %s \"$TOKEN\"'");
        assert!(!format!("{invocation:?}").contains("hunter2"));
        assert_eq!(invocation.capture(None).unwrap(), "hunter2");
    }

    #[test]
    fn docker_exec_passes_secrets_by_name() {
        let docker = DockerCli {
            program: PathBuf::from("docker"),
            context: Some("prod".to_owned()),
        };
        let inner = Invocation::new("redis-cli")
            .arg("PING")
            .secret_env("REDISCLI_AUTH", SecretValue::new("pw".to_owned()));
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
    }

    #[test]
    fn failing_commands_name_the_command_and_status() {
        let error = Invocation::new("sh")
            .args(["-c", "exit 3"])
            .capture(None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("exited with status 3") && error.contains("sh -c"),
            "{error}"
        );
    }

    #[test]
    fn stdin_is_streamed_to_the_child() {
        let data = vec![b'x'; 3 * 1024 * 1024];
        let output = Invocation::new("wc")
            .arg("-c")
            .capture(Some(&data))
            .unwrap();
        assert_eq!(output.trim(), data.len().to_string());
    }

    #[test]
    fn quoting_is_minimal_and_safe() {
        assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
