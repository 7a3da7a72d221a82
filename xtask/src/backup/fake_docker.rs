//! A stand-in `docker` for tests: a shell script that records every call's arguments, the secret
//! variables it was given, and its standard input, and answers like the real tools would, so the
//! real orchestration code runs end to end without Docker, MongoDB or Redis.

use std::fs;
use std::path::{Path, PathBuf};

use crate::backup::target::{MongoTarget, ToolPlace};
use crate::container_exec::{ContainerRef, DockerCli, SecretValue};

pub struct FakeDocker {
    pub dir: tempfile::TempDir,
}

const SCRIPT: &str = r#"#!/bin/sh
state="__STATE__"
# One line per call: newlines inside arguments (mongosh scripts) become spaces.
printf '%s' "$*" | tr '\n' ' ' >> "$state/calls.log"
echo >> "$state/calls.log"
for name in AVALON_MONGO_TOOLS_CONFIG AVALON_MONGODB_URI REDISCLI_AUTH; do
  eval "value=\${$name-}"
  if [ -n "$value" ]; then printf '%s=%s\n' "$name" "$value" >> "$state/env.log"; fi
done
for last; do :; done
case " $* " in
  *" ps "*) echo fakeid123 ;;
  *" mongosh "*)
    case "$*" in
      *countDocuments*)
        # counts.json names the throwaway database DB; answer with the name this run picked.
        db=$(printf '%s' "$*" | grep -o 'restoretest_[0-9a-f]*_[A-Za-z0-9]*' | head -n 1)
        sed "s/DB/$db/g" "$state/counts.json" ;;
      *dropDatabase*) printf '%s\n' "$last" >> "$state/dropped.log"; echo '{"dropped":[]}' ;;
      *) printf '{"setName":%s,"version":"7.0.14"}\n' "$(cat "$state/setname")" ;;
    esac ;;
  *" mongodump "*) cat "$state/dump.bin"; exit "$(cat "$state/dump_exit")" ;;
  *" mongorestore "*) cat > "$state/restored.bin"; exit "$(cat "$state/restore_exit")" ;;
  *" redis-cli SET "*) printf '%s\n' "$last" >> "$state/flag.log"; echo OK ;;
  *" redis-cli PUBLISH "*) echo 1 ;;
  *" redis-cli GET "*) tail -n 1 "$state/flag.log" 2>/dev/null ;;
  *) echo "fake docker: unexpected call: $*" >&2; exit 2 ;;
esac
"#;

impl FakeDocker {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = SCRIPT.replace("__STATE__", &dir.path().display().to_string());
        let program = dir.path().join("docker");
        fs::write(&program, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let fake = Self { dir };
        fake.set("setname", "null");
        fake.set("dump_exit", "0");
        fake.set("restore_exit", "0");
        fake.set("dump.bin", "");
        fake
    }

    pub fn program(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    pub fn docker(&self) -> DockerCli {
        DockerCli {
            program: self.program(),
            context: None,
        }
    }

    pub fn set(&self, name: &str, contents: impl AsRef<[u8]>) {
        fs::write(self.dir.path().join(name), contents).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn calls(&self) -> Vec<String> {
        self.read("calls.log").lines().map(str::to_owned).collect()
    }

    /// The values the maintenance flag was set to, in order.
    pub fn flag_values(&self) -> Vec<serde_json::Value> {
        self.read("flag.log")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The mongodb service of Compose project `avalon`, reached through this fake.
    pub fn mongo_target(&self, uri: Option<&str>) -> MongoTarget {
        MongoTarget {
            place: ToolPlace::Container {
                docker: self.docker(),
                container: ContainerRef::ComposeService {
                    project: "avalon".to_owned(),
                    service: "mongodb".to_owned(),
                },
            },
            uri: uri.map(|uri| SecretValue::new(uri.to_owned())),
        }
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mongodump")
            .join(name),
    )
    .unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}
