//! The processes a run needs, all on loopback and all stopped when the run ends: a redis-server, avalon-ws
//! instances, python-socketio baseline instances and the bare-WebSocket floor; and the open-file limit they
//! all need for tens of thousands of sockets.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Server {
    pub name: String,
    pub port: u16,
    child: Child,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .with_context(|| format!("cannot read the status of {}", self.name))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `command` (printed first; its environment is not, as it may hold the JWT secret) with output in
/// `log`, and waits until its port accepts connections.
pub fn start(name: &str, mut command: Command, port: u16, log: &Path) -> anyhow::Result<Server> {
    let shown: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    eprintln!("$ {}", shown.join(" "));
    let output = std::fs::File::create(log)?;
    command
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output);
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let mut server = Server {
        name: name.to_owned(),
        port,
        child,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("{name} exited ({status}); see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not listen on {addr} within 30s; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

pub fn redis(dir: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut command = Command::new("redis-server");
    command.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    start("redis-server", command, port, &dir.join("redis.log"))
}

pub struct WsEnv<'a> {
    pub binary: &'a Path,
    pub redis_port: u16,
    pub jwt_secret: &'a str,
    pub dir: &'a Path,
}

pub fn avalon_ws(name: &str, env: &WsEnv<'_>) -> anyhow::Result<Server> {
    let port = free_port()?;
    let data: PathBuf = env.dir.join(name);
    std::fs::create_dir_all(&data)?;
    let mut command = Command::new(env.binary);
    command
        .env("APP_ENV", "development")
        .env("CONFIG_DIR", &data)
        .env("DATA_DIR", &data)
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("WS_PORT", port.to_string())
        .env("PORT", free_port()?.to_string())
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", env.redis_port.to_string())
        .env("JWT_SECRET", env.jwt_secret)
        .env("MAX_CONNECTIONS", "100000")
        .env("RATE_LIMIT_USER", "100000")
        .env("WS_IDLE_TIMEOUT", "1h")
        .env("LOG_LEVEL", "warn");
    start(name, command, port, &env.dir.join(format!("{name}.log")))
}

pub fn python_baseline(
    name: &str,
    script: &Path,
    redis_port: u16,
    dir: &Path,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut command = Command::new("python3");
    command.arg(script).args([
        "--port",
        &port.to_string(),
        "--redis",
        &format!("redis://127.0.0.1:{redis_port}/0"),
    ]);
    start(name, command, port, &dir.join(format!("{name}.log")))
}

/// The bare-WebSocket floor ([`super::floor`]), run as `bench ws-floor` by `xtask`, the release build of
/// this binary.
pub fn floor(name: &str, xtask: &Path, dir: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut command = Command::new(xtask);
    command.args(["bench", "ws-floor", "--port", &port.to_string()]);
    start(name, command, port, &dir.join(format!("{name}.log")))
}

/// Raises RLIMIT_NOFILE to at least `wanted` for this process and so for the servers it starts (a child
/// inherits the limit): the soft limit up to the hard one, and the hard one too where this process may
/// (root, or CAP_SYS_RESOURCE). Returns the soft limit now in force, which may be below `wanted`.
pub fn raise_open_files(wanted: u64) -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("cannot read RLIMIT_NOFILE")?;
    if soft >= wanted {
        return Ok(soft);
    }
    if hard < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_ok() {
        return Ok(wanted);
    }
    let soft = wanted.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).context("cannot raise RLIMIT_NOFILE")?;
    Ok(soft)
}
