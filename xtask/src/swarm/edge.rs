//! The edge on a Swarm: the tree `nginx render` writes for the stack, with its upstreams resolved per
//! request by Docker's DNS instead of once at load.
//!
//! Why: the lab's engines run without iptables, and a service's virtual IP needs iptables rules in each
//! task's namespace, so VIPs do not answer there (a task's own address does). The services therefore run
//! with `endpoint_mode: dnsrr` (the service name resolves to its tasks' addresses), and nginx 1.22 resolves
//! an upstream block's names only when it loads: after a rolling update none of those addresses would be
//! left. So the upstream blocks give way to `resolver 127.0.0.11 valid=2s` and `proxy_pass` to a variable
//! (`api:3000`, `websocket:3001`), which nginx resolves per request and balances round robin over every
//! address (and retries the next one on a connection error). What is lost: least_conn, the consistent hash
//! that keeps a Socket.IO polling session on one replica (the WebSocket transport needs none), upstream
//! keep-alive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Docker's embedded DNS, in every task's namespace.
const RESOLVER: &str = "resolver 127.0.0.11 valid=2s ipv6=off;";

/// The rewritten files (relative path → text); the others are copied as they are.
pub fn for_swarm(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(path, text)| {
            let text = if path == "conf.d/upstreams.conf" {
                format!(
                    "# Swarm: names resolved per request by Docker's DNS (tasks' addresses; services run with\n\
                     # endpoint_mode dnsrr). Rendered by `up --engine swarm`; do not edit.\n\
                     {RESOLVER}\n\
                     map $avalon_slot $avalon_swarm_api {{ default api:3000; }}\n\
                     map $avalon_slot $avalon_swarm_ws {{ default websocket:3001; }}\n"
                )
            } else if path == "nginx.conf" {
                // The image's /var/lib/nginx belongs to nginx; /run is root's once no tmpfs covers it.
                text.replace("pid /var/run/nginx.pid;", "pid /var/lib/nginx/nginx.pid;")
            } else {
                text.replace("http://avalon_api_$avalon_slot", "http://$avalon_swarm_api")
                    .replace("http://avalon_ws_$avalon_slot", "http://$avalon_swarm_ws")
            };
            (path.clone(), text)
        })
        .collect()
}

fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            read_tree(root, &path, files)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.insert(relative, text);
        }
    }
    Ok(())
}

/// Writes the Swarm form of the rendered tree `rendered` beside it (`<rendered>-swarm`).
pub fn write(rendered: &Path) -> anyhow::Result<PathBuf> {
    let mut files = BTreeMap::new();
    read_tree(rendered, rendered, &mut files)?;
    let out = rendered.with_file_name(format!(
        "{}-swarm",
        rendered
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("nginx")
    ));
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    for (relative, text) in for_swarm(&files) {
        let path = out.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_resolve_per_request_through_dockers_dns() {
        let files = BTreeMap::from([
            (
                "conf.d/upstreams.conf".to_owned(),
                "upstream avalon_api_blue {\n    server api:3000;\n}\n".to_owned(),
            ),
            (
                "snippets/app.conf".to_owned(),
                "proxy_pass http://avalon_api_$avalon_slot;\nproxy_pass http://avalon_ws_$avalon_slot;\n"
                    .to_owned(),
            ),
            (
                "nginx.conf".to_owned(),
                "pid /var/run/nginx.pid;\nevents {}\n".to_owned(),
            ),
        ]);
        let swarm = for_swarm(&files);
        let upstreams = &swarm["conf.d/upstreams.conf"];
        assert!(!upstreams.contains("upstream "), "{upstreams}");
        assert!(upstreams.contains("resolver 127.0.0.11 valid=2s ipv6=off;"));
        assert!(upstreams.contains("map $avalon_slot $avalon_swarm_api { default api:3000; }"));
        assert!(
            upstreams.contains("map $avalon_slot $avalon_swarm_ws { default websocket:3001; }")
        );
        assert_eq!(
            swarm["snippets/app.conf"],
            "proxy_pass http://$avalon_swarm_api;\nproxy_pass http://$avalon_swarm_ws;\n"
        );
        assert_eq!(
            swarm["nginx.conf"],
            "pid /var/lib/nginx/nginx.pid;\nevents {}\n"
        );
    }
}
