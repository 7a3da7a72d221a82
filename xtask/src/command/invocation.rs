//! One external command and the one runner every engine command goes through: it prints a command before
//! running it — always when the command changes something, only with `-v` when it only reads — and keeps
//! secrets off every command line.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use anyhow::{Context, bail};

use super::print::Effect;
use super::print::Printer;

/// One external command: what is run, with which arguments, and which secret variables it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub effect: Effect,
    /// Variables the child gets that are not secret and not worth printing (the values compose
    /// interpolates into its files, say).
    env: Vec<(String, String)>,
    /// Where the child starts (this process's directory when `None`).
    pub dir: Option<PathBuf>,
    /// Passed by value in the child's environment, printed by name only.
    pub(super) secret_env: Vec<(String, SecretValue)>,
    /// Arguments printed as a label instead of their text (index into `args`, label): a script of a
    /// hundred lines would bury the command around it.
    pub(super) labelled: Vec<(usize, &'static str)>,
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
            effect: Effect::Changes,
            env: Vec::new(),
            dir: None,
            secret_env: Vec::new(),
            labelled: Vec::new(),
        }
    }

    /// Marks the command as one that changes nothing (printed only with `-v`).
    pub fn read_only(mut self) -> Self {
        self.effect = Effect::ReadOnly;
        self
    }

    /// Sets the effect: a builder's command used as part of a larger operation takes that operation's.
    pub fn with_effect(mut self, effect: Effect) -> Self {
        self.effect = effect;
        self
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

    /// Appends `other`'s program and arguments, its labelled arguments still labelled (a command run by
    /// another: `docker exec … redis-cli …`, `sh -c SCRIPT redis-cli …`).
    pub(super) fn then_run(mut self, other: Invocation) -> Self {
        self.args.push(other.program.to_string_lossy().into_owned());
        let offset = self.args.len();
        self.labelled.extend(
            other
                .labelled
                .iter()
                .map(|(at, label)| (offset + at, *label)),
        );
        self.args.extend(other.args);
        self
    }

    /// A variable of the child's environment that is neither secret nor printed.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Starts the child in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
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

    /// The non-secret variables, for argv tests.
    #[cfg(test)]
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.env
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        for (name, value) in &self.secret_env {
            command.env(name, value.expose());
        }
        command
    }

    /// Runs to completion and returns its standard output; standard error passes through.
    pub fn capture(&self, stdin: Option<&[u8]>) -> anyhow::Result<String> {
        self.capture_printed(stdin, &mut Printer::stderr())
    }

    /// [`Self::capture`], announcing through `printer`.
    pub fn capture_printed(
        &self,
        stdin: Option<&[u8]>,
        printer: &mut Printer<'_>,
    ) -> anyhow::Result<String> {
        let mut output = Vec::new();
        self.stream_printed(
            stdin.map(|bytes| Box::new(io::Cursor::new(bytes.to_vec())) as _),
            &mut output,
            printer,
        )?;
        String::from_utf8(output).with_context(|| format!("output of `{self}` is not UTF-8"))
    }

    /// Announces and starts the program with standard output piped.
    fn spawn(
        &self,
        piped_stdin: bool,
        stderr: Stdio,
        printer: &mut Printer<'_>,
    ) -> anyhow::Result<std::process::Child> {
        printer.announce(self.effect, self);
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

    /// Announces and starts the program in its own process group with stdin closed and both output streams
    /// appended to `log`, and returns its pid without waiting: a daemon (a lab node's dockerd) that must
    /// outlive this process and ignore the terminal's Ctrl-C.
    pub fn spawn_detached(&self, log: &std::path::Path) -> anyhow::Result<u32> {
        use std::os::unix::process::CommandExt;
        Printer::stderr().announce(self.effect, self);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        Ok(child.id())
    }

    /// Announces and starts the program with all three streams piped, for a caller that talks to it.
    pub fn spawn_piped(&self) -> anyhow::Result<std::process::Child> {
        self.spawn(true, Stdio::piped(), &mut Printer::stderr())
    }

    /// Runs to completion with both output streams captured (nothing passes through) and returns them
    /// with the exit code, whatever it is: for callers that read a failure's message themselves.
    pub fn output(&self, stdin: Option<&[u8]>) -> anyhow::Result<Captured> {
        let mut child = self.spawn(stdin.is_some(), Stdio::piped(), &mut Printer::stderr())?;
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
        self.stream_printed(stdin, stdout, &mut Printer::stderr())
    }

    fn stream_printed(
        &self,
        stdin: Option<Box<dyn Read + Send>>,
        stdout: &mut dyn Write,
        printer: &mut Printer<'_>,
    ) -> anyhow::Result<()> {
        let mut child = self.spawn(stdin.is_some(), Stdio::inherit(), printer)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
    fn plain_variables_reach_the_child_unprinted() {
        let invocation = Invocation::new("sh")
            .args(["-c", "printf %s \"$IMAGE\""])
            .env("IMAGE", "avalon-api:1.2.0");
        assert_eq!(invocation.to_string(), "sh -c 'printf %s \"$IMAGE\"'");
        assert_eq!(invocation.capture(None).unwrap(), "avalon-api:1.2.0");
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
