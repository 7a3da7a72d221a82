//! What a production host supplies to the shipped prod overlay, for the stack tests that run it
//! (stack_prod.rs, workflow_replay.rs): `cargo xtask host init --root` for the secrets, env file and a
//! self-signed certificate, and the images this machine can have — the offline nginx/redis builds and the
//! MongoDB wire-protocol stand-in (no MongoDB runs here) in place of the official ones.

use std::path::{Path, PathBuf};

use super::{run_ok, xtask};

pub const WECHAT_APPID: &str = "wx5e1f0c2d9a7b3e48";

pub struct ProdHost {
    pub root: PathBuf,
    pub secrets: PathBuf,
    pub certs: PathBuf,
}

impl ProdHost {
    /// `host init --root DIR/host` as an operator rehearses it: staging (so it makes a self-signed
    /// certificate), the WeChat values filled in; `host check` must pass afterwards.
    pub fn init(dir: &Path) -> ProdHost {
        let root = dir.join("host");
        std::fs::create_dir_all(&root).unwrap();
        let wechat_secret = dir.join("wechat_secret.txt");
        std::fs::write(&wechat_secret, "0123456789abcdef0123456789abcdef").unwrap();
        let root_arg = root.to_str().unwrap();
        run_ok(xtask().args([
            "host",
            "init",
            "--root",
            root_arg,
            "--env",
            "staging",
            "--set",
            &format!("WECHAT_APPID={WECHAT_APPID}"),
            "--wechat-secret-file",
            wechat_secret.to_str().unwrap(),
        ]));
        run_ok(xtask().args(["host", "check", "--root", root_arg, "--env", "staging"]));
        ProdHost {
            secrets: root.join("etc/avalon/secrets"),
            certs: root.join("etc/avalon/certs"),
            root,
        }
    }

    /// The variables an operator exports before `cargo xtask up --env prod` (docs/deployment.md).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("WECHAT_APPID", WECHAT_APPID.to_owned()),
            ("AVALON_SECRETS_DIR", self.secrets.display().to_string()),
            ("AVALON_CERTS_DIR", self.certs.display().to_string()),
        ]
        .map(|(key, value)| (key.to_owned(), value))
        .to_vec()
    }
}

/// `NGINX_IMAGE`, `REDIS_IMAGE`, `MONGO_IMAGE` as this machine can supply them (built locally).
pub fn store_and_edge_images() -> Vec<(String, String)> {
    run_ok(xtask().args(["image", "base"]));
    let mongo = super::mongo_standin_image(&xshell::Shell::new().unwrap()).unwrap();
    vec![
        (
            "NGINX_IMAGE".to_owned(),
            "avalon-offline/nginx:1.22".to_owned(),
        ),
        (
            "REDIS_IMAGE".to_owned(),
            "avalon-offline/redis:7".to_owned(),
        ),
        ("MONGO_IMAGE".to_owned(), mongo),
    ]
}
