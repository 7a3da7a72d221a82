//! The processes and mounts of a node's engine, read from /proc: its dockerd, its own containerd, the
//! shims (re-parented to init, found by their containerd address under the node's exec root), and every
//! descendant of those (the containers' processes, docker-proxy). Only what belongs to the node's own
//! directory is ever named, never a process by program name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// pid → (parent pid, command line with NULs as spaces).
pub type ProcessTable = BTreeMap<u32, (u32, String)>;

pub fn process_table() -> ProcessTable {
    let mut table = ProcessTable::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that exits while we read is simply not in the table.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(parent) = parent_from_stat(&stat) else {
            continue;
        };
        let command = std::fs::read(entry.path().join("cmdline"))
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .unwrap_or_default();
        table.insert(pid, (parent, command.trim_end().to_owned()));
    }
    table
}

/// The 4th field of /proc/PID/stat, after the `(comm)` that may itself hold spaces and parentheses.
fn parent_from_stat(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Every process of the engine whose directory is `node_dir`: its dockerd, the processes whose command line
/// names its exec root (its containerd, the shims), and all their descendants. A client of the engine (a
/// `docker -H unix://…/docker.sock` command, a `tail` of its log) is not part of it.
pub fn engine_processes(table: &ProcessTable, node_dir: &Path) -> BTreeSet<u32> {
    let exec_root = format!("{}/exec/", node_dir.display());
    let mut found: BTreeSet<u32> = table
        .iter()
        .filter(|(pid, (_, command))| {
            command.contains(&exec_root) || is_engine_as_read(table, **pid, node_dir)
        })
        .map(|(pid, _)| *pid)
        .collect();
    loop {
        let children: Vec<u32> = table
            .iter()
            .filter(|(pid, (parent, _))| found.contains(parent) && !found.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if children.is_empty() {
            return found;
        }
        found.extend(children);
    }
}

/// Whether `pid` is the dockerd of `node_dir` (alive, and its command line names the directory's socket).
/// Until `nsenter` has exec'd dockerd the pid's command line is `nsenter --net=… dockerd …`: that is the
/// engine starting, not a dead one.
pub fn is_engine(table: &ProcessTable, pid: u32, node_dir: &Path) -> bool {
    runs(
        table,
        pid,
        "dockerd",
        &format!("{}/docker.sock", node_dir.display()),
    )
}

/// [`is_engine`] on the command line as the table read it, without reading an empty one again: for a
/// pass over every process (dozens of kernel threads have an empty command line), where a dockerd caught
/// mid-exec is found by the next pass.
fn is_engine_as_read(table: &ProcessTable, pid: u32, node_dir: &Path) -> bool {
    table.get(&pid).is_some_and(|(_, command)| {
        command_runs(
            command,
            "dockerd",
            &format!("{}/docker.sock", node_dir.display()),
        )
    })
}

/// Whether `pid` is the node's own containerd (the one `lab` starts; its socket is under the exec root),
/// also while it is still `nsenter … containerd …`.
pub fn is_containerd(table: &ProcessTable, pid: u32, node_dir: &Path) -> bool {
    runs(
        table,
        pid,
        "containerd",
        &format!("{}/exec/containerd/containerd.sock", node_dir.display()),
    )
}

/// `pid` is alive (a zombie has an empty command line), runs `program` — directly or through `nsenter`
/// that has not exec'd it yet — and its command line holds `marker`. For one recorded pid: an empty
/// command line is read again until it settles (see [`settled_command`]), which can take up to 0.5 s.
fn runs(table: &ProcessTable, pid: u32, program: &str, marker: &str) -> bool {
    let Some((_, command)) = table.get(&pid) else {
        return false;
    };
    let settled;
    let command = if command.is_empty() {
        match settled_command(pid) {
            Some(command) => {
                settled = command;
                &settled
            }
            None => return false,
        }
    } else {
        command
    };
    command_runs(command, program, marker)
}

/// `command` runs `program` (directly or through `nsenter`) and holds `marker`.
fn command_runs(command: &str, program: &str, marker: &str) -> bool {
    let base = |word: &str| word.rsplit('/').next().unwrap_or_default().to_owned();
    let mut words = command.split(' ');
    let first = base(words.next().unwrap_or_default());
    let run = if first == "nsenter" {
        words
            .find(|word| !word.starts_with('-'))
            .map(base)
            .unwrap_or_default()
    } else {
        first
    };
    run == program && command.contains(marker)
}

/// The command line of `pid` when the table read an empty one: a zombie's is empty, but so is, for a moment,
/// that of a live process in `execve` (the new program's arguments are not yet in place) — `nsenter` turning
/// into containerd or dockerd right after `lab up` started it. Taking that for an exit made `lab up` report a
/// containerd that "exited at once with an empty log" while it was starting. Read again until it settles;
/// `None` for a zombie, a process gone, or one that keeps an empty command line (a kernel thread).
fn settled_command(pid: u32) -> Option<String> {
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
        if matches!(state, "Z" | "X") {
            return None;
        }
        let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if !bytes.is_empty() {
            return Some(
                String::from_utf8_lossy(&bytes)
                    .replace('\0', " ")
                    .trim_end()
                    .to_owned(),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

/// How a zombie `pid` ended, from the exit code in /proc/PID/stat (its 52nd field, in `waitpid` form):
/// "exit status N" or "killed by signal N"; `None` while it runs or once it is reaped.
pub fn exit_of_zombie(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // Fields from the 3rd (state) on; the exit code is the 52nd.
    if fields.next()? != "Z" {
        return None;
    }
    let code: i32 = fields.nth(48)?.parse().ok()?;
    Some(match code & 0x7f {
        0 => format!("exit status {}", (code >> 8) & 0xff),
        signal => format!("killed by signal {signal}"),
    })
}

/// Mount points at or under `dir`, deepest first (unmount order), from /proc/self/mountinfo.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|point| point == &dir || point.starts_with(&format!("{dir}/")))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    points.dedup();
    points
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&digits, 8) {
                Ok(byte) => out.push(char::from(byte)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&digits);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_tree_is_found_by_its_directory() {
        let dir = Path::new("/var/lib/avalon-lab/t/node1");
        let table = ProcessTable::from([
            (1, (0, "init".to_owned())),
            (
                10,
                (
                    1,
                    "dockerd --host unix:///var/lib/avalon-lab/t/node1/docker.sock".to_owned(),
                ),
            ),
            (
                11,
                (
                    10,
                    "containerd --config /var/lib/avalon-lab/t/node1/exec/containerd/containerd.toml"
                        .to_owned(),
                ),
            ),
            (12, (10, "docker-proxy -host-port 8080".to_owned())),
            (
                20,
                (
                    1,
                    "containerd-shim-runc-v2 -address /var/lib/avalon-lab/t/node1/exec/containerd/containerd.sock"
                        .to_owned(),
                ),
            ),
            (21, (20, "nginx".to_owned())),
            (22, (21, "nginx: worker".to_owned())),
            (
                30,
                (
                    1,
                    "dockerd --host unix:///var/lib/avalon-lab/t/node10/docker.sock".to_owned(),
                ),
            ),
            (40, (1, "dockerd".to_owned())),
            (
                50,
                (
                    1,
                    "docker -H unix:///var/lib/avalon-lab/t/node1/docker.sock ps".to_owned(),
                ),
            ),
            (51, (1, "tail -f /var/lib/avalon-lab/t/node1/dockerd.log".to_owned())),
        ]);
        assert_eq!(
            engine_processes(&table, dir),
            BTreeSet::from([10, 11, 12, 20, 21, 22])
        );
        assert!(is_engine(&table, 10, dir));
        assert!(!is_engine(&table, 30, dir), "node10 is another engine");
        assert!(!is_engine(&table, 40, dir), "the host's dockerd");
        assert!(!is_engine(&table, 50, dir), "a client of the engine");
    }

    #[test]
    fn a_starting_engine_is_not_taken_for_a_dead_one() {
        let dir = Path::new("/var/lib/avalon-lab/t/node1");
        let table = ProcessTable::from([
            (
                10,
                (
                    1,
                    "nsenter --net=/var/run/netns/avlab-t-1 dockerd --containerd \
                     /var/lib/avalon-lab/t/node1/exec/containerd/containerd.sock \
                     --host unix:///var/lib/avalon-lab/t/node1/docker.sock"
                        .to_owned(),
                ),
            ),
            (
                11,
                (
                    1,
                    "nsenter --net=/var/run/netns/avlab-t-1 containerd --address \
                     /var/lib/avalon-lab/t/node1/exec/containerd/containerd.sock"
                        .to_owned(),
                ),
            ),
            (
                12,
                (
                    1,
                    "/usr/bin/containerd --address /var/lib/avalon-lab/t/node1/exec/containerd/containerd.sock"
                        .to_owned(),
                ),
            ),
            (
                13,
                (
                    1,
                    "containerd-shim-runc-v2 -address /var/lib/avalon-lab/t/node1/exec/containerd/containerd.sock"
                        .to_owned(),
                ),
            ),
            (
                14,
                (
                    1,
                    "nsenter --net=/var/run/netns/avlab-t-1 docker -H unix:///var/lib/avalon-lab/t/node1/docker.sock ps"
                        .to_owned(),
                ),
            ),
            // A zombie: exited, not yet reaped; its command line is empty.
            (15, (1, String::new())),
        ]);
        assert!(is_engine(&table, 10, dir), "nsenter before its exec");
        assert!(
            !is_containerd(&table, 10, dir),
            "dockerd names the socket too"
        );
        assert!(is_containerd(&table, 11, dir));
        assert!(is_containerd(&table, 12, dir));
        assert!(!is_containerd(&table, 13, dir), "a shim");
        assert!(!is_engine(&table, 14, dir), "a client through nsenter");
        assert!(!is_engine(&table, 15, dir));
        assert!(!is_engine(&table, 99, dir), "gone");
    }

    #[test]
    fn an_empty_command_line_is_read_again_and_only_a_zombie_counts_as_exited() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let pid = child.id();
        // As the table can catch a process in execve: alive, command line not yet in place.
        let table = ProcessTable::from([(pid, (1, String::new()))]);
        assert!(
            runs(&table, pid, "sleep", "30"),
            "a live process read mid-exec"
        );
        child.kill().expect("sleep killed");
        // Not reaped yet: a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while settled_command(pid).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "a killed, unreaped child still reads as running"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!runs(&table, pid, "sleep", "30"), "a zombie");
        assert_eq!(
            exit_of_zombie(pid).as_deref(),
            Some("killed by signal 9"),
            "how it ended"
        );
        child.wait().expect("reaped");
        assert_eq!(exit_of_zombie(pid), None, "reaped");
        assert!(!runs(&table, pid, "sleep", "30"), "gone");
    }

    #[test]
    fn parent_pid_survives_odd_command_names() {
        assert_eq!(parent_from_stat("42 (a) b (c)) S 7 42 42 0"), Some(7));
    }

    #[test]
    fn mounts_under_the_lab_deepest_first() {
        let info = "\
22 1 0:21 / /proc rw - proc proc rw
90 1 254:0 /var/lib/avalon-lab/t/node1/data /var/lib/avalon-lab/t/node1/data rw - ext4 /dev/vda rw
91 90 0:4 net:[1] /var/lib/avalon-lab/t/node1/exec/netns/ingress_sbox rw - nsfs nsfs rw
92 1 0:50 / /var/lib/avalon-lab/t/node1/exec/with\\040space rw - tmpfs shm rw
93 1 0:51 / /var/lib/avalon-lab/t2/x rw - tmpfs shm rw
";
        assert_eq!(
            mounts_under(info, Path::new("/var/lib/avalon-lab/t")),
            [
                "/var/lib/avalon-lab/t/node1/exec/netns/ingress_sbox",
                "/var/lib/avalon-lab/t/node1/exec/with space",
                "/var/lib/avalon-lab/t/node1/data",
            ]
        );
    }
}
