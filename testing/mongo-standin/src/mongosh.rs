//! `mongosh` as the compose healthcheck runs it — `mongosh --quiet --eval "quit(db.adminCommand('ping').ok ? 0 : 1)"`
//! — and nothing more: it connects (default 127.0.0.1:27017), sends `ping` to `admin`, and exits 0 when
//! the reply says ok, 1 otherwise (unreachable server included). Any other script, an interactive
//! shell or credentials are refused with exit code 2, so a caller can never mistake it for mongosh.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use bson::{Bson, doc};

use crate::wire::{self, HEADER_LEN, Header, OP_MSG};

const USAGE: &str = "the MongoDB stand-in's mongosh runs only a ping: \
    mongosh [--quiet] [--host H] [--port P] [mongodb://host:port] --eval \"quit(db.adminCommand('ping').ok ? 0 : 1)\" \
    (or --eval \"db.adminCommand('ping')\" to print the reply)";

#[derive(Debug, PartialEq, Eq)]
enum Script {
    /// `quit(db.adminCommand('ping').ok ? 0 : 1)`: silent, the exit code is the answer.
    QuitOnPing,
    /// `db.adminCommand('ping')` and its spellings: print the reply.
    PrintPing,
}

#[derive(Debug, PartialEq, Eq)]
struct Invocation {
    address: String,
    script: Script,
}

fn recognise(script: &str) -> Option<Script> {
    let normalised: String = script
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    let normalised = normalised.trim_end_matches(';');
    match normalised {
        "quit(db.adminCommand('ping').ok?0:1)" | "quit(db.adminCommand({ping:1}).ok?0:1)" => {
            Some(Script::QuitOnPing)
        }
        "db.adminCommand('ping')"
        | "db.adminCommand({ping:1})"
        | "db.runCommand({ping:1})"
        | "db.runCommand('ping')" => Some(Script::PrintPing),
        _ => None,
    }
}

/// `mongodb://host:port/db?…` or `host:port` → `host:port` (credentials are refused).
fn address_from_uri(uri: &str) -> Result<String, String> {
    let rest = uri.strip_prefix("mongodb://").unwrap_or(uri);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("credentials are not supported (ping needs none)".to_owned());
    }
    if authority.contains(',') {
        return Err("a seed list is not supported: name one host".to_owned());
    }
    if authority.is_empty() {
        return Err(format!("no host in `{uri}`"));
    }
    Ok(if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:27017")
    })
}

fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut host = "127.0.0.1".to_owned();
    let mut port = "27017".to_owned();
    let mut uri = None;
    let mut script = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quiet" | "--norc" | "--nodb" if arg != "--nodb" => {}
            "--eval" => script = Some(value("--eval")?),
            "--host" => host = value("--host")?,
            "--port" => port = value("--port")?,
            other if other.starts_with("--eval=") => {
                script = Some(other["--eval=".len()..].to_owned())
            }
            "-u" | "--username" | "-p" | "--password" | "--authenticationDatabase" => {
                return Err(format!(
                    "{arg}: credentials are not supported (ping needs none)"
                ));
            }
            other if !other.starts_with('-') && uri.is_none() => {
                uri = Some(address_from_uri(other)?)
            }
            other => return Err(format!("unsupported argument `{other}`")),
        }
    }
    let script = script.ok_or("no --eval: the interactive shell is not supported")?;
    let script = recognise(&script).ok_or_else(|| format!("unsupported script `{script}`"))?;
    Ok(Invocation {
        address: uri.unwrap_or_else(|| format!("{host}:{port}")),
        script,
    })
}

fn ping(address: &str) -> Result<bson::Document, String> {
    let timeout = Duration::from_secs(3);
    let target = address
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {address}: {err}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|err| format!("MongoNetworkError: connect {address}: {err}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|err| err.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|err| err.to_string())?;
    let request = wire::encode_op_msg(1, 0, 0, &doc! { "ping": 1, "$db": "admin" })?;
    stream
        .write_all(&request)
        .map_err(|err| format!("MongoNetworkError: {err}"))?;
    let mut header = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut header)
        .map_err(|err| format!("MongoNetworkError: {err}"))?;
    let header = Header::parse(&header)?;
    if header.op_code != OP_MSG || header.response_to != 1 {
        return Err(format!(
            "unexpected reply (opcode {}, responseTo {})",
            header.op_code, header.response_to
        ));
    }
    let mut payload = vec![0u8; header.length - HEADER_LEN];
    stream
        .read_exact(&mut payload)
        .map_err(|err| format!("MongoNetworkError: {err}"))?;
    Ok(wire::parse_op_msg(&payload)?.body)
}

fn reply_ok(reply: &bson::Document) -> bool {
    match reply.get("ok") {
        Some(Bson::Double(ok)) => *ok == 1.0,
        Some(Bson::Int32(ok)) => *ok == 1,
        Some(Bson::Int64(ok)) => *ok == 1,
        _ => false,
    }
}

pub fn main(args: &[String]) -> ExitCode {
    let invocation = match parse(args) {
        Ok(invocation) => invocation,
        Err(problem) => {
            eprintln!("mongosh (avalon mongo-standin): {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let reply = match ping(&invocation.address) {
        Ok(reply) => reply,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let ok = reply_ok(&reply);
    if invocation.script == Script::PrintPing {
        println!("{reply}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn the_compose_healthcheck_is_recognised() {
        let invocation = parse(&args(&[
            "--quiet",
            "--eval",
            "quit(db.adminCommand('ping').ok ? 0 : 1)",
        ]));
        assert_eq!(
            invocation,
            Ok(Invocation {
                address: "127.0.0.1:27017".to_owned(),
                script: Script::QuitOnPing
            })
        );
        let elsewhere = parse(&args(&[
            "mongodb://db:2000/admin",
            "--eval",
            "db.adminCommand({ ping: 1 })",
        ]));
        assert_eq!(
            elsewhere.map(|i| (i.address, i.script)),
            Ok(("db:2000".to_owned(), Script::PrintPing))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(parse(&args(&["--eval", "db.users.find()"])).is_err());
        assert!(parse(&args(&["--quiet"])).is_err(), "no interactive shell");
        assert!(
            parse(&args(&[
                "mongodb://u:p@h/",
                "--eval",
                "db.adminCommand('ping')"
            ]))
            .is_err()
        );
        assert!(parse(&args(&["--nodb", "--eval", "db.adminCommand('ping')"])).is_err());
    }
}
