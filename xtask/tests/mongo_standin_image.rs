//! The MongoDB stand-in's image (testing/mongo-standin) runs under the prod overlay's hardening —
//! `--read-only --cap-drop ALL --user 999:999` — with the users the overlay gives it, and the compose
//! healthcheck's own command (`mongosh --quiet --eval "quit(db.adminCommand('ping').ok ? 0 : 1)"`)
//! passes inside it; a script it does not know is refused with exit code 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stack_support;

use std::time::Duration;

use stack_support::{docker, docker_with_compose_v2, mongo_standin_image, run, run_ok};

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(&mut docker(&["rm", "--force", &self.0]));
    }
}

const HEALTHCHECK: &str = "quit(db.adminCommand('ping').ok ? 0 : 1)";

#[test]
fn the_standin_image_serves_the_compose_healthcheck_read_only_without_capabilities_as_uid_999() {
    if !docker_with_compose_v2() {
        return;
    }
    let sh = xshell::Shell::new().unwrap();
    let image = mongo_standin_image(&sh).unwrap();
    println!("stand-in image: {image}");
    // Built once: a second call finds the same reference.
    assert_eq!(mongo_standin_image(&sh).unwrap(), image);

    let secrets = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("mongodb_root_password", "root-pw\n"),
        ("mongodb_app_password", "app-pw\n"),
    ] {
        let path = secrets.path().join(name);
        std::fs::write(&path, value).unwrap();
        // Compose bind-mounts secret files as they are on the host; uid 999 must be able to read them.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
    }
    let name = format!("avalon-test-mongo-standin-{}", std::process::id());
    let mount = |file: &str| {
        format!(
            "type=bind,source={},target=/run/secrets/{file},readonly",
            secrets.path().join(file).display()
        )
    };
    let id = run_ok(&mut docker(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "--user",
        "999:999",
        "--tmpfs",
        "/tmp:size=64m",
        "--env",
        "MONGO_INITDB_ROOT_USERNAME=avalon",
        "--env",
        "MONGO_INITDB_ROOT_PASSWORD_FILE=/run/secrets/mongodb_root_password",
        "--env",
        "MONGO_INITDB_DATABASE=avalon",
        "--mount",
        &mount("mongodb_root_password"),
        "--mount",
        &mount("mongodb_app_password"),
        &image,
    ]));
    let _container = Container(name.clone());
    println!("container {}", id.trim());

    let healthy = avalon_testkit::wait_until(Duration::from_secs(30), || {
        docker(&["exec", &name, "mongosh", "--quiet", "--eval", HEALTHCHECK])
            .status()
            .is_ok_and(|status| status.success())
    });
    let logs = run(&mut docker(&["logs", &name]));
    let log_text = String::from_utf8_lossy(&logs.stderr).into_owned();
    println!("{log_text}");
    assert!(healthy, "the healthcheck never passed");
    assert!(
        log_text.contains("avalon@admin") && log_text.contains("avalon_app@avalon"),
        "{log_text}"
    );

    let user = run_ok(&mut docker(&[
        "inspect",
        "--format",
        "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}",
        &name,
    ]));
    assert_eq!(user.trim(), "999:999 true [ALL]");

    let refused = run(&mut docker(&[
        "exec",
        &name,
        "mongosh",
        "--quiet",
        "--eval",
        "db.users.find()",
    ]));
    assert_eq!(
        refused.status.code(),
        Some(2),
        "an unknown script must be refused"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unsupported script"));
}
