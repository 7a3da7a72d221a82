//! The edge's certificate and key in `/etc/avalon/certs/`: a self-signed pair made here for staging; for
//! production, real ones the operator puts there (copies, not links: the directory is what the edge
//! container sees, so a link into /etc/letsencrypt would point nowhere inside it).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};

use super::HostEnv;
use super::layout::{CERT_FILE, CERTS_DIR, KEY_FILE, Owner};
use super::plan::{Entry, Kind, Source};

pub const KEY_MODE: u32 = 0o640;
pub const DAYS: u32 = 365;

pub fn entries(env: HostEnv, domain: &str) -> Vec<Entry> {
    let dir = Entry {
        path: CERTS_DIR.to_owned(),
        mode: 0o750,
        owner: Owner::SECRET,
        kind: Kind::Dir,
    };
    let (cert_kind, key_kind) = match env {
        HostEnv::Staging => (
            Kind::Once(Source::SelfSigned {
                domain: domain.to_owned(),
                key: KEY_FILE.to_owned(),
            }),
            Kind::KeyOf {
                cert: CERT_FILE.to_owned(),
            },
        ),
        HostEnv::Prod => (
            Kind::Supplied {
                hint: format!(
                    "the certificate chain for {domain} (e.g. certbot's fullchain.pem), copied here with mode 0644"
                ),
            },
            Kind::Supplied {
                hint: format!(
                    "its private key (certbot's privkey.pem), copied here: install -m 0640 -g 10001 … {KEY_FILE}"
                ),
            },
        ),
    };
    vec![
        dir,
        Entry {
            path: CERT_FILE.to_owned(),
            mode: 0o644,
            owner: Owner::ROOT,
            kind: cert_kind,
        },
        Entry {
            path: KEY_FILE.to_owned(),
            mode: KEY_MODE,
            owner: Owner::SECRET,
            kind: key_kind,
        },
    ]
}

/// Checks `--domain`: it becomes the certificate's name and goes on openssl's command line.
pub fn check_domain(domain: &str) -> anyhow::Result<()> {
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !domain.starts_with(['-', '.']);
    if !valid {
        bail!("--domain {domain:?}: must be a host name (letters, digits, `.` and `-`)");
    }
    Ok(())
}

/// The openssl command that makes a self-signed P-256 certificate for `domain` (and localhost).
pub fn self_signed_argv(cert: &Path, key: &Path, domain: &str) -> Vec<String> {
    let san = if domain == "localhost" {
        "subjectAltName=DNS:localhost,IP:127.0.0.1".to_owned()
    } else {
        format!("subjectAltName=DNS:{domain},DNS:localhost,IP:127.0.0.1")
    };
    [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        &DAYS.to_string(),
        "-subj",
        &format!("/CN={domain}"),
        "-addext",
        &san,
        "-keyout",
        &key.display().to_string(),
        "-out",
        &cert.display().to_string(),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect()
}

/// Makes the pair in a private directory beside them and moves both into place, the key already 0640.
pub fn self_signed(cert: &Path, key: &Path, domain: &str) -> anyhow::Result<()> {
    let dir = cert
        .parent()
        .with_context(|| format!("{} has no parent", cert.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".host-init-cert")
        .tempdir_in(dir)
        .with_context(|| format!("creating a scratch directory in {}", dir.display()))?;
    let (new_cert, new_key) = (
        scratch.path().join("fullchain.pem"),
        scratch.path().join("privkey.pem"),
    );
    let argv = self_signed_argv(&new_cert, &new_key, domain);
    let sh = xshell::Shell::new()?;
    let (program, args) = (&argv[0], &argv[1..]);
    xshell::cmd!(sh, "{program} {args...}")
        .ignore_stderr()
        .run()
        .context("openssl could not make the self-signed certificate (is openssl installed?)")?;
    fs::set_permissions(&new_key, fs::Permissions::from_mode(KEY_MODE))?;
    fs::set_permissions(&new_cert, fs::Permissions::from_mode(0o644))?;
    fs::rename(&new_key, key).with_context(|| format!("moving the key to {}", key.display()))?;
    fs::rename(&new_cert, cert)
        .with_context(|| format!("moving the certificate to {}", cert.display()))?;
    Ok(())
}

/// What `host check` says about a certificate pair that is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertState {
    Valid { subject: String, not_after: String },
    Problem(String),
}

/// Parses the certificate, checks it has not expired and that the key is its key (read-only openssl calls).
pub fn inspect(sh: &xshell::Shell, cert: &Path, key: &Path, verbose: bool) -> CertState {
    let read = |args: &[&str]| -> Result<String, String> {
        let command = xshell::cmd!(sh, "openssl {args...}");
        let command = super::checks::read_only(command, verbose);
        let output = command
            .ignore_status()
            .output()
            .map_err(|err| format!("cannot run openssl: {err}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    };
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let facts = match read(&["x509", "-in", &cert, "-noout", "-subject", "-enddate"]) {
        Ok(text) => text,
        Err(err) => return CertState::Problem(format!("not a PEM certificate: {err}")),
    };
    let field = |prefix: &str| {
        facts
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or("?")
            .trim()
            .to_owned()
    };
    let (subject, not_after) = (field("subject="), field("notAfter="));
    if read(&["x509", "-in", &cert, "-noout", "-checkend", "0"]).is_err() {
        return CertState::Problem(format!("expired on {not_after}"));
    }
    let cert_key = read(&["x509", "-in", &cert, "-noout", "-pubkey"]);
    let private_key = read(&["pkey", "-in", &key, "-pubout"]);
    match (cert_key, private_key) {
        (Ok(a), Ok(b)) if a == b => CertState::Valid { subject, not_after },
        (Ok(_), Ok(_)) => CertState::Problem(format!("{key} is not the key of this certificate")),
        (_, Err(err)) => CertState::Problem(format!("{key} is not a readable private key: {err}")),
        (Err(err), _) => CertState::Problem(format!("no public key in the certificate: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_host_names() {
        assert!(check_domain("game.example.com").is_ok());
        assert!(check_domain("localhost").is_ok());
        assert!(check_domain("-oops").is_err());
        assert!(check_domain("a b").is_err());
        assert!(check_domain("").is_err());
    }

    #[test]
    fn the_self_signed_command_names_the_domain_and_localhost() {
        let argv = self_signed_argv(
            Path::new("/c/f.pem"),
            Path::new("/c/k.pem"),
            "stage.example.com",
        );
        let text = argv.join(" ");
        assert!(text.starts_with("openssl req -x509 -newkey ec"), "{text}");
        assert!(text.contains("-subj /CN=stage.example.com"), "{text}");
        assert!(
            text.contains("subjectAltName=DNS:stage.example.com,DNS:localhost,IP:127.0.0.1"),
            "{text}"
        );
        assert!(text.ends_with("-keyout /c/k.pem -out /c/f.pem"), "{text}");
    }

    #[test]
    fn production_certificates_are_the_operators() {
        let entries = entries(HostEnv::Prod, "game.example.com");
        assert!(matches!(entries[1].kind, Kind::Supplied { .. }));
        assert!(matches!(entries[2].kind, Kind::Supplied { .. }));
        assert_eq!(entries[2].mode, 0o640);
        assert_eq!(entries[2].owner, Owner::SECRET);
    }
}
