//! `cargo xtask logs [SERVICE…]`: the logs of a stack's containers, slots included.
//!
//! A deploy starts the blue/green slots (`api-green`, `websocket-blue`, …) from overlays of its own, so
//! `docker compose logs` with the stack's files does not know them ("no such service"). The containers are
//! listed by the project's label instead and read with `docker logs`, one stream per container, each line
//! prefixed with the container's name — which names its slot.

use std::io::{BufRead, BufReader, Read, Write};

use anyhow::{Context, bail};

use crate::command::{DockerCli, Invocation};

/// One container of the stack, as `docker container ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub name: String,
    /// The compose service: `api`, `api-green`, `nginx`, …
    pub service: String,
    /// `running`, `exited`, …
    pub state: String,
}

/// The `--format` of the listing [`parse_listing`] reads.
pub const LISTING_FORMAT: &str = "{{.Names}}\t{{.Label \"com.docker.compose.service\"}}\t{{.Label \"com.docker.compose.oneoff\"}}\t{{.State}}";

/// The containers of `project`, slots included (listed by the project's label: the compose files do not
/// know the slots).
pub fn list(docker: &DockerCli, project: &str) -> anyhow::Result<Vec<LogSource>> {
    let listing = docker
        .list_containers(project, &[], LISTING_FORMAT)
        .capture(None)
        .context("listing the stack's containers")?;
    Ok(parse_listing(&listing))
}

/// The service containers of a listing (one-off `compose run` containers left out), running ones first,
/// then by service and name.
pub fn parse_listing(text: &str) -> Vec<LogSource> {
    let mut sources: Vec<LogSource> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let name = fields.next()?.trim();
            let service = fields.next()?.trim();
            let one_off = fields.next()?.trim().eq_ignore_ascii_case("true");
            let state = fields.next()?.trim();
            (!name.is_empty() && !service.is_empty() && !one_off).then(|| LogSource {
                name: name.to_owned(),
                service: service.to_owned(),
                state: state.to_owned(),
            })
        })
        .collect();
    sources.sort_by(|a, b| {
        (a.state != "running", &a.service, &a.name).cmp(&(
            b.state != "running",
            &b.service,
            &b.name,
        ))
    });
    sources
}

/// The containers `requested` names: a service exactly (`api-green`), or a service with every slot of it
/// (`api` → `api`, `api-blue`, `api-green`). Nothing requested: all. A name that matches nothing is an
/// error naming the services there are.
pub fn select(sources: &[LogSource], requested: &[String]) -> anyhow::Result<Vec<LogSource>> {
    if requested.is_empty() {
        return Ok(sources.to_vec());
    }
    let matches = |wanted: &str, service: &str| {
        service == wanted
            || super::SLOT_NAMES
                .iter()
                .any(|slot| service == format!("{wanted}-{slot}"))
    };
    let mut chosen = Vec::new();
    for wanted in requested {
        let found: Vec<&LogSource> = sources
            .iter()
            .filter(|source| matches(wanted, &source.service))
            .collect();
        if found.is_empty() {
            let mut services: Vec<&str> = sources.iter().map(|s| s.service.as_str()).collect();
            services.sort_unstable();
            services.dedup();
            bail!(
                "logs: no container of service {wanted:?} in this stack; its services: {}",
                if services.is_empty() {
                    "none (is it up?)".to_owned()
                } else {
                    services.join(", ")
                }
            );
        }
        for source in found {
            if !chosen.contains(source) {
                chosen.push(source.clone());
            }
        }
    }
    Ok(chosen)
}

/// Runs `docker logs` for each source and prints its lines prefixed with the container name: one after
/// the other, or all at once with `follow`.
pub fn stream(
    docker: &DockerCli,
    sources: &[LogSource],
    tail: u32,
    follow: bool,
) -> anyhow::Result<()> {
    let width = sources.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut running = Vec::new();
    for source in sources {
        if !follow {
            println!(
                "==> {} ({}, {}) <==",
                source.name, source.service, source.state
            );
        }
        let prefix = format!("{:width$} | ", source.name);
        let threads = spawn(
            docker.container_logs(&source.name, tail, follow),
            &source.name,
            &prefix,
        )?;
        if follow {
            running.push(threads);
        } else {
            threads.wait()?;
        }
    }
    for threads in running {
        threads.wait()?;
    }
    Ok(())
}

struct Streams {
    name: String,
    child: std::process::Child,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Streams {
    fn wait(mut self) -> anyhow::Result<()> {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let status = self
            .child
            .wait()
            .with_context(|| format!("docker logs {}", self.name))?;
        if !status.success() {
            bail!("docker logs {} failed ({status})", self.name);
        }
        Ok(())
    }
}

fn spawn(logs: Invocation, name: &str, prefix: &str) -> anyhow::Result<Streams> {
    let mut child = logs.spawn_piped()?;
    // Nothing is sent: the end of input right away.
    drop(child.stdin.take());
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(prefixed(out, prefix.to_owned(), false));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(prefixed(err, prefix.to_owned(), true));
    }
    Ok(Streams {
        name: name.to_owned(),
        child,
        readers,
    })
}

/// Copies `input` line by line to stdout (or stderr), each line behind `prefix`.
fn prefixed(
    input: impl Read + Send + 'static,
    prefix: String,
    to_stderr: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(input).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line);
            let written = if to_stderr {
                writeln!(std::io::stderr().lock(), "{prefix}{line}")
            } else {
                writeln!(std::io::stdout().lock(), "{prefix}{line}")
            };
            if written.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const LISTING: &str = "avalon-offline-api-green-1\tapi-green\t\trunning\n\
        avalon-offline-api-blue-1\tapi-blue\t\texited\n\
        avalon-offline-websocket-green-1\twebsocket-green\t\trunning\n\
        avalon-offline-nginx-1\tnginx\t\trunning\n\
        avalon-offline-api-run-3f2a\tapi\tTrue\texited\n\
        avalon-offline-redis-1\tredis\t\trunning\n";

    fn names(sources: &[LogSource]) -> Vec<&str> {
        sources.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn the_listing_keeps_service_containers_running_first() {
        let sources = parse_listing(LISTING);
        assert_eq!(
            names(&sources),
            [
                "avalon-offline-api-green-1",
                "avalon-offline-nginx-1",
                "avalon-offline-redis-1",
                "avalon-offline-websocket-green-1",
                "avalon-offline-api-blue-1",
            ]
        );
    }

    #[test]
    fn a_service_name_shows_every_slot_of_it_and_a_slot_name_only_that_slot() {
        let sources = parse_listing(LISTING);
        let pick = |wanted: &[&str]| {
            let wanted: Vec<String> = wanted.iter().map(|s| (*s).to_owned()).collect();
            select(&sources, &wanted).map(|chosen| {
                chosen
                    .into_iter()
                    .map(|source| source.name)
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            pick(&["api"]).unwrap(),
            ["avalon-offline-api-green-1", "avalon-offline-api-blue-1"]
        );
        assert_eq!(
            pick(&["api-green"]).unwrap(),
            ["avalon-offline-api-green-1"]
        );
        assert_eq!(
            pick(&["nginx", "websocket", "nginx"]).unwrap(),
            ["avalon-offline-nginx-1", "avalon-offline-websocket-green-1"]
        );
        assert_eq!(pick(&[]).unwrap().len(), 5);
        let error = pick(&["api-purple"]).unwrap_err().to_string();
        assert!(
            error.contains("api-purple") && error.contains("api-green, nginx"),
            "{error}"
        );
    }
}
