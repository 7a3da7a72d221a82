//! Destinations for real: a directory, and an S3 API served by moto on loopback.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use avalon_testkit::{Process, free_port, require_tool, wait_for_port};

use super::*;

fn sample_files(dir: &Path, archive_bytes: usize) -> (PathBuf, PathBuf) {
    let archive = dir.join("b1.archive.gz");
    let manifest = dir.join("b1.manifest.json");
    let data: Vec<u8> = (0..archive_bytes).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(&archive, &data).unwrap();
    fs::write(&manifest, b"{\"id\":\"b1\"}\n").unwrap();
    (archive, manifest)
}

fn round_trip(destination: &Destination, archive: &Path, manifest: &Path) {
    destination.upload_backup(archive, manifest).unwrap();
    assert_eq!(destination.manifest_names().unwrap(), ["b1.manifest.json"]);
    let back = tempfile::tempdir().unwrap();
    let copy = back.path().join("b1.archive.gz");
    destination.download("b1.archive.gz", &copy).unwrap();
    assert_eq!(fs::read(&copy).unwrap(), fs::read(archive).unwrap());
    assert_eq!(
        destination.read_small_file("b1.manifest.json").unwrap(),
        fs::read(manifest).unwrap()
    );
    destination.delete("b1.archive.gz").unwrap();
    destination.delete("b1.manifest.json").unwrap();
    assert!(destination.manifest_names().unwrap().is_empty());
}

#[test]
fn directory_destination_round_trips_a_backup() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let (archive, manifest) = sample_files(source.path(), 300_000);
    let config = DestinationConfig::Directory {
        path: target.path().join("nested"),
    };
    let destination = Destination::open("nas", &config).unwrap();
    round_trip(&destination, &archive, &manifest);
}

/// moto's S3 server on a free loopback port, with one bucket.
struct MotoS3 {
    _process: Process,
    endpoint: String,
}

fn start_moto(bucket: &str) -> Option<MotoS3> {
    let moto = require_tool("moto_server")?;
    let port = free_port();
    let mut command = Command::new(moto);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let process = Process::spawn_command("moto_server", command);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        wait_for_port(addr, Duration::from_secs(30)),
        "moto_server did not start"
    );
    // Bucket creation is not part of object_store's API; moto accepts an unsigned request.
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    Some(MotoS3 {
        _process: process,
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

#[test]
fn s3_destination_round_trips_a_multipart_backup() {
    let Some(moto) = start_moto("avalon-backups") else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    fs::write(keys.path().join("id"), "testing\n").unwrap();
    fs::write(keys.path().join("secret"), "testing\n").unwrap();
    let toml = format!(
        r#"
[destinations.offsite]
kind = "s3"
bucket = "avalon-backups"
prefix = "/production/"
region = "us-east-1"
endpoint = "{}"
allow_http = true
access_key_id_file = "{}"
secret_access_key_file = "{}"
"#,
        moto.endpoint,
        keys.path().join("id").display(),
        keys.path().join("secret").display()
    );
    let config_path = keys.path().join("backup.toml");
    fs::write(&config_path, toml).unwrap();
    let config = BackupConfig::load(Some(&config_path)).unwrap();
    let destinations = config.open_destinations(&[]).unwrap();
    assert_eq!(destinations.len(), 1);
    assert_eq!(
        destinations[0].describe("x"),
        "s3://avalon-backups/production/x"
    );
    let source = tempfile::tempdir().unwrap();
    // Larger than one part, so the multipart path runs.
    let (archive, manifest) = sample_files(source.path(), UPLOAD_PART_BYTES + 1_234_567);
    round_trip(&destinations[0], &archive, &manifest);
}

#[test]
fn config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.toml");
    fs::write(
        &path,
        "[destinations.offsite]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://x\"\n",
    )
    .unwrap();
    let error = format!("{:#}", BackupConfig::load(Some(&path)).unwrap_err());
    assert!(error.contains("destinations.offsite.endpoint"), "{error}");

    fs::write(&path, "[destinations.x]\nkind = \"ftp\"\n").unwrap();
    let error = format!("{:#}", BackupConfig::load(Some(&path)).unwrap_err());
    assert!(error.contains("ftp"), "{error}");

    let config = BackupConfig::default();
    let error = config
        .open_destinations(&["offsite".to_owned()])
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("--dest offsite"), "{error}");
}
