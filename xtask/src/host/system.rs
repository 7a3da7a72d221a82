//! Kernel and process limits for tens of thousands of sockets: sysctls, the nofile limit of login sessions,
//! and the nofile limit of the engine the containers inherit it from.
//!
//! Containers have their own network namespace, and `net.*` sysctls are per namespace: the values here cover
//! the host's own sockets (Docker's userland proxy, connection tracking); a container's listen backlog is set
//! with `sysctls:` in the compose file.

use std::path::Path;

use super::layout::{CONTAINERD_DROP_IN, DOCKER_DROP_IN, LIMITS_FILE, Owner, Root, SYSCTL_FILE};
use super::plan::{Entry, Kind};

/// One sysctl floor: the running value must be at least this (a host that already has more keeps it).
pub struct Sysctl {
    pub key: &'static str,
    pub value: &'static str,
    pub why: &'static str,
}

pub const SYSCTLS: [Sysctl; 6] = [
    Sysctl {
        key: "net.core.somaxconn",
        value: "65535",
        why: "accept queue of a listening socket (the kernel default of 4096 overflows under a reconnect storm)",
    },
    Sysctl {
        key: "net.ipv4.tcp_max_syn_backlog",
        value: "65535",
        why: "half-open connections waiting for their handshake",
    },
    Sysctl {
        key: "net.ipv4.ip_local_port_range",
        value: "10240 65535",
        why: "ephemeral ports for outgoing connections (proxy to container); starts above the services' ports",
    },
    Sysctl {
        key: "fs.file-max",
        value: "2097152",
        why: "open files on the whole host; every socket is one",
    },
    Sysctl {
        key: "fs.nr_open",
        value: "1048576",
        why: "the highest nofile limit a process may be given (LimitNOFILE below)",
    },
    Sysctl {
        key: "net.netfilter.nf_conntrack_max",
        value: "262144",
        why: "tracked connections through Docker's NAT; optional (`-`): only when the module is loaded",
    },
];

/// The nofile limit given to the engine (and so to every container) and to root's sessions.
pub const NOFILE: u64 = 1_048_576;
/// The soft nofile limit of other login sessions (select()-based tools break above 1024 descriptors only
/// when they use them; the hard limit lets a load generator raise it).
pub const NOFILE_SOFT_USERS: u64 = 65_536;

pub fn sysctl_conf() -> String {
    let mut text = String::from(
        "# Avalon Ops (written by `cargo xtask host init`; a newer version replaces it): room for tens of\n\
         # thousands of sockets. Floors: a value already higher on this host is better set in a later file.\n\
         # Containers have their own network namespace: their backlog is set by the compose file's `sysctls:`.\n",
    );
    for sysctl in &SYSCTLS {
        let optional = if sysctl.key.starts_with("net.netfilter.") {
            "-"
        } else {
            ""
        };
        text.push_str(&format!(
            "# {}\n{optional}{} = {}\n",
            sysctl.why, sysctl.key, sysctl.value
        ));
    }
    text
}

pub fn limits_conf() -> String {
    format!(
        "# Avalon Ops (written by `cargo xtask host init`): open files of login sessions (operators' shells,\n\
         # load tests). Containers take their limit from the engine: see the docker.service drop-in.\n\
         *    soft nofile {NOFILE_SOFT_USERS}\n\
         *    hard nofile {NOFILE}\n\
         root soft nofile {NOFILE}\n\
         root hard nofile {NOFILE}\n"
    )
}

/// Containers inherit the nofile limit of the process that starts them: dockerd, and with Docker ≥ 20.10
/// containerd's shims. Taking effect needs the engine restarted, which host init never does by itself.
pub fn engine_drop_in() -> String {
    format!(
        "# Avalon Ops (written by `cargo xtask host init`): the open-file limit containers inherit.\n\
         # Applied when the engine restarts: systemctl restart containerd docker\n\
         [Service]\n\
         LimitNOFILE={NOFILE}\n"
    )
}

pub fn entries() -> Vec<Entry> {
    let managed = |path: &str, content: String| Entry {
        path: path.to_owned(),
        mode: 0o644,
        owner: Owner::ROOT,
        kind: Kind::Managed(content.into_bytes()),
    };
    vec![
        managed(SYSCTL_FILE, sysctl_conf()),
        managed(LIMITS_FILE, limits_conf()),
        managed(DOCKER_DROP_IN, engine_drop_in()),
        managed(CONTAINERD_DROP_IN, engine_drop_in()),
    ]
}

/// A running value below its floor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shortfall {
    pub key: &'static str,
    pub running: String,
    pub wanted: &'static str,
}

/// Running sysctls below their floor (read from `/proc/sys` of the running system; a key the kernel does
/// not have, such as conntrack without its module, is not a shortfall).
pub fn shortfalls(root: &Root) -> Vec<Shortfall> {
    SYSCTLS
        .iter()
        .filter_map(|sysctl| {
            let path = root.join("/proc/sys").join(sysctl.key.replace('.', "/"));
            let running = read_trimmed(&path)?;
            (!meets(&running, sysctl.value)).then_some(Shortfall {
                key: sysctl.key,
                running,
                wanted: sysctl.value,
            })
        })
        .collect()
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Whether `running` is at least `floor`: numbers compare as numbers; a port range must cover the floor's.
pub fn meets(running: &str, floor: &str) -> bool {
    let numbers = |text: &str| -> Option<Vec<u64>> {
        text.split_whitespace()
            .map(|part| part.parse().ok())
            .collect()
    };
    match (numbers(running).as_deref(), numbers(floor).as_deref()) {
        (Some([value]), Some([wanted])) => value >= wanted,
        (Some([low, high]), Some([want_low, want_high])) => low <= want_low && high >= want_high,
        _ => running == floor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_compare_numbers_and_ranges() {
        assert!(meets("65535", "65535"));
        assert!(meets("9223372036854775807", "2097152"));
        assert!(!meets("4096", "65535"));
        assert!(meets("1024 65535", "10240 65535"));
        assert!(!meets("32768 60999", "10240 65535"));
    }

    #[test]
    fn the_sysctl_file_sets_every_floor_and_conntrack_is_optional() {
        let text = sysctl_conf();
        for sysctl in &SYSCTLS {
            assert!(
                text.contains(&format!("{} = {}\n", sysctl.key, sysctl.value)),
                "{text}"
            );
        }
        assert!(text.contains("\n-net.netfilter.nf_conntrack_max = 262144\n"));
        assert!(limits_conf().contains("root hard nofile 1048576"));
        assert!(engine_drop_in().contains("[Service]\nLimitNOFILE=1048576\n"));
    }

    #[test]
    fn shortfalls_are_read_from_the_trees_proc() {
        let dir = tempfile::tempdir().unwrap();
        let proc_dir = dir.path().join("proc/sys/net/core");
        std::fs::create_dir_all(&proc_dir).unwrap();
        std::fs::write(proc_dir.join("somaxconn"), "4096\n").unwrap();
        let ports = dir.path().join("proc/sys/net/ipv4");
        std::fs::create_dir_all(&ports).unwrap();
        std::fs::write(ports.join("ip_local_port_range"), "1024\t65535\n").unwrap();
        let found = shortfalls(&Root::new(dir.path()));
        assert_eq!(
            found,
            [Shortfall {
                key: "net.core.somaxconn",
                running: "4096".to_owned(),
                wanted: "65535"
            }]
        );
    }
}
