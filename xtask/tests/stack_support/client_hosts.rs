//! Test clients with addresses of their own: one network namespace joined to this host by a veth pair,
//! holding many addresses of a private /24 that exists only between the two ends. Traffic from them to a
//! published port of the host arrives through Docker's DNAT with its source intact (a loopback client
//! would reach the port through the userland proxy, from the bridge gateway). Removed on drop, by the
//! names this run created.

use std::net::Ipv4Addr;
use std::process::Command;

use super::run;

pub struct ClientHosts {
    pub namespace: String,
    host_link: String,
    /// This host's address on the link: what clients connect to.
    pub gateway: Ipv4Addr,
    /// The clients' source addresses.
    pub addresses: Vec<Ipv4Addr>,
}

impl ClientHosts {
    /// `count` addresses (at most 240) in a /24 chosen from the process id, so parallel runs differ.
    pub fn create(count: usize) -> Result<ClientHosts, String> {
        assert!(count <= 240, "one /24 holds at most 240 clients here");
        let pid = std::process::id();
        let subnet = u8::try_from(pid % 200 + 20).unwrap_or(20);
        let namespace = format!("avalon-clients-{pid}");
        let host_link = format!("avh{}", pid % 10_000_000);
        let peer_link = format!("avc{}", pid % 10_000_000);
        let gateway = Ipv4Addr::new(10, 213, subnet, 1);
        let addresses: Vec<Ipv4Addr> = (0..count)
            .map(|i| Ipv4Addr::new(10, 213, subnet, u8::try_from(i + 10).unwrap_or(250)))
            .collect();
        let hosts = ClientHosts {
            namespace,
            host_link,
            gateway,
            addresses,
        };
        let ns = hosts.namespace.clone();
        let mut steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), ns.clone()],
            vec![
                "link".into(),
                "add".into(),
                hosts.host_link.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                peer_link.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                peer_link.clone(),
                "netns".into(),
                ns.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{gateway}/24"),
                "dev".into(),
                hosts.host_link.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                hosts.host_link.clone(),
                "up".into(),
            ],
        ];
        for address in &hosts.addresses {
            steps.push(vec![
                "-n".into(),
                ns.clone(),
                "addr".into(),
                "add".into(),
                format!("{address}/24"),
                "dev".into(),
                peer_link.clone(),
            ]);
        }
        for (link, state) in [(peer_link.as_str(), "up"), ("lo", "up")] {
            steps.push(vec![
                "-n".into(),
                ns.clone(),
                "link".into(),
                "set".into(),
                link.into(),
                state.into(),
            ]);
        }
        steps.push(vec![
            "-n".into(),
            ns.clone(),
            "route".into(),
            "add".into(),
            "default".into(),
            "via".into(),
            gateway.to_string(),
        ]);
        for step in steps {
            let output = Command::new("ip")
                .args(&step)
                .output()
                .map_err(|err| format!("cannot run ip: {err}"))?;
            if !output.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
        Ok(hosts)
    }

    /// A command run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace, program]);
        command
    }
}

impl Drop for ClientHosts {
    fn drop(&mut self) {
        // Deleting the namespace removes its end of the veth pair, and with it the host's end.
        let _ = run(Command::new("ip").args(["netns", "delete", &self.namespace]));
        let _ = Command::new("ip")
            .args(["link", "delete", &self.host_link])
            .output();
    }
}
