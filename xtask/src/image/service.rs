//! The two service images: which binary, which Dockerfile stage, which repository name.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceChoice {
    Api,
    Ws,
    All,
}

impl ServiceChoice {
    pub fn services(self) -> Vec<ServiceImage> {
        match self {
            ServiceChoice::Api => vec![ServiceImage::API],
            ServiceChoice::Ws => vec![ServiceImage::WS],
            ServiceChoice::All => vec![ServiceImage::API, ServiceImage::WS],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceImage {
    /// `api` or `ws`, as in `--service` and the JSON report.
    pub service: &'static str,
    /// Cargo package that builds the binary.
    pub package: &'static str,
    /// Binary name, also the image repository name.
    pub binary: &'static str,
    /// Stage of docker/Dockerfile and docker/Dockerfile.builder.
    pub target: &'static str,
}

impl ServiceImage {
    pub const API: ServiceImage = ServiceImage {
        service: "api",
        package: "avalon-api",
        binary: "avalon-api",
        target: "api",
    };
    pub const WS: ServiceImage = ServiceImage {
        service: "ws",
        package: "avalon-ws",
        binary: "avalon-ws",
        target: "ws",
    };

    /// `avalon-api`, or `<registry>/avalon-api` when a registry prefix is given.
    pub fn repository(&self, registry: Option<&str>) -> String {
        match registry.map(|prefix| prefix.trim_end_matches('/')) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}/{}", self.binary),
            _ => self.binary.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_prefix_is_joined_with_one_slash() {
        assert_eq!(ServiceImage::API.repository(None), "avalon-api");
        assert_eq!(
            ServiceImage::WS.repository(Some("ghcr.io/avalon-ops/")),
            "ghcr.io/avalon-ops/avalon-ws"
        );
    }
}
