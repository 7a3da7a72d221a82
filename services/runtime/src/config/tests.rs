//! Every rule with a value that breaks it, plus layering and reporting behaviour.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

/// As an override value: remove the variable from the environment.
const UNSET: &str = "\u{0}unset";

const STRONG_SECRET: &str = "q8Vt2LxN4pR7sK1mZ9cB3wH6yJ0dF5gA";

/// An environment with no config directory, so only the given variables and defaults apply.
fn env(pairs: &[(&str, &str)]) -> Sources {
    let mut map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    map.entry("CONFIG_DIR".to_owned())
        .or_insert_with(|| "/nonexistent/avalon-config".to_owned());
    Sources::from_env(map)
}

/// A complete, valid production environment that individual tests break one variable at a time.
fn production(overrides: &[(&'static str, &'static str)]) -> Sources {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("APP_ENV", "production"),
        (
            "MONGODB_URI",
            "mongodb://avalon:pw@mongodb:27017/avalon?authSource=admin",
        ),
        ("REDIS_HOST", "redis"),
        ("JWT_SECRET", STRONG_SECRET),
        ("WECHAT_APPID", "wx0123456789abcdef"),
        ("WECHAT_SECRET", "0123456789abcdef0123456789abcdef"),
    ];
    for (key, value) in overrides {
        pairs.retain(|(existing, _)| existing != key);
        if *value != UNSET {
            pairs.push((key, value));
        }
    }
    env(&pairs)
}

fn violations(sources: &Sources) -> Vec<Violation> {
    check(sources, &ServiceKind::ALL)
}

/// Asserts that exactly one variable is named, and its rule mentions `rule_fragment`.
fn assert_refused(sources: &Sources, variable: &str, rule_fragment: &str) {
    let found = violations(sources);
    assert!(
        found
            .iter()
            .any(|v| v.variable == variable && v.rule.contains(rule_fragment)),
        "expected {variable} to be refused with {rule_fragment:?}, got {found:#?}"
    );
    assert!(
        found.iter().all(|v| v.variable == variable),
        "only {variable} should be refused, got {found:#?}"
    );
}

#[test]
fn development_defaults_are_valid_without_any_store() {
    let api = Config::<ApiSettings>::load(&env(&[])).unwrap();
    assert_eq!(api.common.app_env, AppEnv::Development);
    assert_eq!(api.port(), 3000);
    assert!(api.service.mongodb_uri.is_none());
    assert!(api.common.redis.is_none());
    let ws = Config::<WsSettings>::load(&env(&[])).unwrap();
    assert_eq!(ws.port(), 3001);
}

#[test]
fn complete_production_environment_is_valid() {
    assert_eq!(violations(&production(&[])), []);
}

#[test]
fn production_with_short_secret_lists_every_problem_at_once() {
    let found = violations(&env(&[("APP_ENV", "production"), ("JWT_SECRET", "short")]));
    let named: Vec<&str> = found.iter().map(|v| v.variable.as_str()).collect();
    for expected in [
        "JWT_SECRET",
        "WECHAT_APPID",
        "WECHAT_SECRET",
        "MONGODB_URI",
        "REDIS_HOST",
    ] {
        assert!(
            named.contains(&expected),
            "{expected} missing from {named:?}"
        );
    }
    let jwt = found.iter().find(|v| v.variable == "JWT_SECRET").unwrap();
    assert!(jwt.rule.contains("at least 32 bytes"), "{jwt}");
    assert!(
        !jwt.rule.contains("short"),
        "a secret value must not be printed: {jwt}"
    );
}

#[test]
fn app_env_must_be_known() {
    assert_refused(
        &production(&[("APP_ENV", "prod")]),
        "APP_ENV",
        "one of development, staging, production",
    );
}

#[test]
fn ports_must_be_in_range() {
    assert_refused(&production(&[("PORT", "70000")]), "PORT", "1 to 65535");
    assert_refused(&production(&[("WS_PORT", "0")]), "WS_PORT", "1 to 65535");
    assert_refused(
        &production(&[("REDIS_PORT", "http")]),
        "REDIS_PORT",
        "1 to 65535",
    );
}

#[test]
fn ports_must_be_distinct() {
    assert_refused(
        &production(&[("PORT", "4000"), ("WS_PORT", "4000")]),
        "WS_PORT",
        "must differ from PORT",
    );
}

#[test]
fn bind_address_must_be_an_ip() {
    assert_refused(
        &production(&[("BIND_ADDRESS", "everywhere")]),
        "BIND_ADDRESS",
        "IP address",
    );
}

#[test]
fn api_prefix_shape() {
    assert_refused(
        &production(&[("API_PREFIX", "api/")]),
        "API_PREFIX",
        "must start with `/`",
    );
}

#[test]
fn jwt_secret_must_be_long() {
    assert_refused(
        &production(&[("JWT_SECRET", "0123456789abcdef")]),
        "JWT_SECRET",
        "at least 32 bytes",
    );
    // The length rule holds in development too.
    assert_refused(
        &env(&[("JWT_SECRET", "tiny")]),
        "JWT_SECRET",
        "at least 32 bytes",
    );
}

#[test]
fn jwt_secret_example_value_refused_outside_development() {
    assert_refused(
        &production(&[("JWT_SECRET", spec::EXAMPLE_JWT_SECRET)]),
        "JWT_SECRET",
        "must not be the .env.example",
    );
    assert_refused(
        &production(&[
            ("APP_ENV", "staging"),
            ("JWT_SECRET", spec::EXAMPLE_JWT_SECRET),
        ]),
        "JWT_SECRET",
        "must not be the .env.example",
    );
    assert!(violations(&env(&[("JWT_SECRET", spec::EXAMPLE_JWT_SECRET)])).is_empty());
}

#[test]
fn jwt_secret_weak_refused_outside_development() {
    assert_refused(
        &production(&[("JWT_SECRET", "abababababababababababababababab")]),
        "JWT_SECRET",
        "too weak",
    );
}

#[test]
fn wechat_credentials_required_in_staging_and_production() {
    for app_env in ["staging", "production"] {
        let sources = production(&[
            ("APP_ENV", app_env),
            ("WECHAT_APPID", ""),
            ("WECHAT_SECRET", ""),
        ]);
        let named: Vec<String> = violations(&sources)
            .into_iter()
            .map(|v| v.variable)
            .collect();
        assert_eq!(named, ["WECHAT_APPID", "WECHAT_SECRET"], "in {app_env}");
    }
    assert!(violations(&env(&[])).is_empty(), "optional in development");
}

#[test]
fn wechat_values_have_a_shape() {
    assert_refused(
        &production(&[("WECHAT_APPID", "12345")]),
        "WECHAT_APPID",
        "`wx` followed by 16",
    );
    assert_refused(
        &production(&[("WECHAT_SECRET", "short")]),
        "WECHAT_SECRET",
        "at least 16 characters",
    );
    assert_refused(
        &production(&[("WECHAT_API_BASE", "ftp://x")]),
        "WECHAT_API_BASE",
        "http:// or https://",
    );
    assert_refused(
        &production(&[("WECHAT_API_BASE", "http://127.0.0.1:9")]),
        "WECHAT_API_BASE",
        "must use https",
    );
}

#[test]
fn mongodb_uri_must_parse_and_is_required_outside_development() {
    assert_refused(
        &production(&[("MONGODB_URI", "mysql://db")]),
        "MONGODB_URI",
        "MongoDB connection string",
    );
    assert_refused(
        &production(&[("MONGODB_URI", "")]),
        "MONGODB_URI",
        "is required",
    );
    let found = violations(&production(&[(
        "MONGODB_URI",
        "mongodb://user:hunter2@db:99999/x",
    )]));
    assert!(
        found.iter().all(|v| !v.rule.contains("hunter2")),
        "credentials leaked: {found:?}"
    );
}

#[test]
fn redis_settings() {
    assert_refused(
        &production(&[("REDIS_HOST", "")]),
        "REDIS_HOST",
        "is required",
    );
    assert_refused(
        &production(&[("REDIS_HOST", "redis://x:6379")]),
        "REDIS_HOST",
        "host name",
    );
    assert_refused(&production(&[("REDIS_DB", "16")]), "REDIS_DB", "0 to 15");
}

#[test]
fn durations_must_be_positive() {
    assert_refused(
        &production(&[("JWT_EXPIRES_IN", "0s")]),
        "JWT_EXPIRES_IN",
        "greater than 0",
    );
    assert_refused(
        &production(&[("JWT_EXPIRES_IN", "forever")]),
        "JWT_EXPIRES_IN",
        "duration",
    );
    assert_refused(
        &production(&[("REFRESH_TOKEN_EXPIRES_IN", "-1d")]),
        "REFRESH_TOKEN_EXPIRES_IN",
        "duration",
    );
    assert_refused(
        &production(&[("SHUTDOWN_TIMEOUT", "0s")]),
        "SHUTDOWN_TIMEOUT",
        "greater than 0",
    );
    assert_refused(
        &production(&[("SHUTDOWN_DRAIN_DELAY", "later")]),
        "SHUTDOWN_DRAIN_DELAY",
        "duration",
    );
    assert_refused(
        &production(&[("WATCHDOG_TIMEOUT", "100ms")]),
        "WATCHDOG_TIMEOUT",
        "at least 1s",
    );
    assert_refused(
        &production(&[("READINESS_TIMEOUT", "1m")]),
        "READINESS_TIMEOUT",
        "at most 30s",
    );
}

#[test]
fn registry_heartbeat_and_ttl_are_bounded_and_the_ttl_covers_three_beats() {
    let defaults = Config::<WsSettings>::load(&production(&[])).unwrap();
    assert_eq!(
        defaults.common.registry,
        RegistrySettings {
            heartbeat: std::time::Duration::from_secs(1),
            ttl: std::time::Duration::from_secs(5),
        }
    );
    let tuned = Config::<ApiSettings>::load(&production(&[
        ("REGISTRY_HEARTBEAT", "500ms"),
        ("REGISTRY_TTL", "1500ms"),
    ]))
    .unwrap();
    assert_eq!(
        tuned.common.registry.ttl,
        std::time::Duration::from_millis(1500)
    );
    assert_refused(
        &production(&[("REGISTRY_HEARTBEAT", "2s"), ("REGISTRY_TTL", "5s")]),
        "REGISTRY_TTL",
        "at least 3 × REGISTRY_HEARTBEAT, so a record outlives a missed heartbeat (got 5s < 3 × 2s)",
    );
    assert_refused(
        &production(&[("REGISTRY_HEARTBEAT", "50ms")]),
        "REGISTRY_HEARTBEAT",
        "at least 100ms",
    );
    assert_refused(
        &production(&[("REGISTRY_HEARTBEAT", "2m"), ("REGISTRY_TTL", "10m")]),
        "REGISTRY_HEARTBEAT",
        "at most 60s",
    );
    assert_refused(
        &production(&[("REGISTRY_TTL", "1h")]),
        "REGISTRY_TTL",
        "at most 10m",
    );
    assert_refused(
        &production(&[("REGISTRY_TTL", "soon")]),
        "REGISTRY_TTL",
        "duration",
    );
}

#[test]
fn refresh_must_outlive_access_token() {
    assert_refused(
        &production(&[("JWT_EXPIRES_IN", "2d"), ("REFRESH_TOKEN_EXPIRES_IN", "1d")]),
        "REFRESH_TOKEN_EXPIRES_IN",
        "longer than JWT_EXPIRES_IN",
    );
}

#[test]
fn limits_must_be_positive() {
    assert_refused(
        &production(&[("MAX_CONNECTIONS", "0")]),
        "MAX_CONNECTIONS",
        "greater than 0",
    );
    assert_refused(
        &production(&[("RATE_LIMIT_IP", "-5")]),
        "RATE_LIMIT_IP",
        "greater than 0",
    );
    assert_refused(
        &production(&[("RATE_LIMIT_USER", "many")]),
        "RATE_LIMIT_USER",
        "greater than 0",
    );
}

#[test]
fn log_settings() {
    assert_refused(
        &production(&[("LOG_LEVEL", "verbose")]),
        "LOG_LEVEL",
        "must be a level",
    );
    assert_refused(
        &production(&[("LOG_FORMAT", "xml")]),
        "LOG_FORMAT",
        "json or pretty",
    );
}

#[test]
fn maintenance_and_features() {
    assert_refused(
        &production(&[("MAINTENANCE_MODE", "sometimes")]),
        "MAINTENANCE_MODE",
        "true or false",
    );
    let long = "x".repeat(501);
    let long: &'static str = Box::leak(long.into_boxed_str());
    assert_refused(
        &production(&[("MAINTENANCE_MESSAGE", long)]),
        "MAINTENANCE_MESSAGE",
        "at most 500",
    );
    assert_refused(
        &production(&[("FEATURES", "Lady-Of-Lake")]),
        "FEATURES",
        "lower-case",
    );
}

#[test]
fn development_only_switches_refused_elsewhere() {
    assert_refused(
        &production(&[("DEV_LOGIN", "true")]),
        "DEV_LOGIN",
        "development-only switch",
    );
    assert_refused(
        &production(&[("DEBUG_ENDPOINTS", "1")]),
        "DEBUG_ENDPOINTS",
        "development-only switch",
    );
    assert!(violations(&env(&[("DEV_LOGIN", "true"), ("DEBUG_ENDPOINTS", "true")])).is_empty());
}

#[test]
fn fault_injection_is_a_share_and_never_in_production() {
    assert_refused(
        &production(&[("FAULT_INJECT_5XX_RATE", "0.5")]),
        "FAULT_INJECT_5XX_RATE",
        "must be 0 when APP_ENV=production",
    );
    for bad in ["1.5", "-0.1", "half", "NaN"] {
        assert_refused(
            &env(&[("FAULT_INJECT_5XX_RATE", bad)]),
            "FAULT_INJECT_5XX_RATE",
            "from 0 to 1",
        );
    }
    assert!(violations(&env(&[("FAULT_INJECT_5XX_RATE", "0.25")])).is_empty());
    assert!(violations(&production(&[("FAULT_INJECT_5XX_RATE", "0")])).is_empty());
}

#[test]
fn refused_handshake_injection_is_a_share_and_never_in_production() {
    assert_refused(
        &production(&[("FAULT_INJECT_WS_REFUSE_RATE", "1")]),
        "FAULT_INJECT_WS_REFUSE_RATE",
        "must be 0 when APP_ENV=production",
    );
    for bad in ["2", "-0.5", "all", "NaN"] {
        assert_refused(
            &env(&[("FAULT_INJECT_WS_REFUSE_RATE", bad)]),
            "FAULT_INJECT_WS_REFUSE_RATE",
            "from 0 to 1",
        );
    }
    assert!(violations(&env(&[("FAULT_INJECT_WS_REFUSE_RATE", "0.5")])).is_empty());
    assert!(violations(&production(&[("FAULT_INJECT_WS_REFUSE_RATE", "0")])).is_empty());
}

#[test]
fn secrets_never_appear_in_messages_or_debug() {
    let secret = "0123456789";
    let found = violations(&production(&[
        ("JWT_SECRET", secret),
        ("REDIS_PASSWORD", ""),
    ]));
    assert!(found.iter().all(|v| !v.to_string().contains(secret)));
    let config = Config::<ApiSettings>::load(&production(&[])).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(STRONG_SECRET));
    assert!(!debug.contains("0123456789abcdef0123456789abcdef"));
    assert!(!debug.contains(":pw@"));
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[test]
fn layers_apply_in_order_file_then_env_then_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "development.toml",
        "port = 4100\nws_port = 4101\nlog_level = \"warn\"\n",
    );
    let secret_file = write(dir.path(), "jwt", &format!("{STRONG_SECRET}\n"));
    let config_dir = dir.path().display().to_string();
    let sources = env(&[
        ("CONFIG_DIR", &config_dir),
        ("PORT", "4200"),
        ("JWT_SECRET_FILE", &secret_file),
    ]);
    let config = Config::<ApiSettings>::load(&sources).unwrap();
    assert_eq!(config.common.api_port, 4200, "environment beats file");
    assert_eq!(config.common.ws_port, 4101, "file beats default");
    assert_eq!(config.live.log_level, "warn");
    assert_eq!(
        config.common.jwt_secret.expose(),
        STRONG_SECRET,
        "secret file, trailing newline dropped"
    );
}

#[test]
fn errors_name_the_layer_a_bad_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "production.toml", "rate_limit_ip = 0\n");
    let config_dir = dir.path().display().to_string();
    let found = violations(&production(&[(
        "CONFIG_DIR",
        Box::leak(config_dir.into_boxed_str()),
    )]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].rule.contains("production.toml"), "{}", found[0]);
}

#[test]
fn bad_config_files_are_violations() {
    let dir = tempfile::tempdir().unwrap();
    let config_dir: &'static str = Box::leak(dir.path().display().to_string().into_boxed_str());
    write(dir.path(), "production.toml", "prot = 3000\n");
    let found = violations(&production(&[("CONFIG_DIR", config_dir)]));
    assert!(
        found.iter().any(|v| v.rule.contains("unknown key `prot`")),
        "{found:?}"
    );
    write(dir.path(), "production.toml", "port = [\n");
    let found = violations(&production(&[("CONFIG_DIR", config_dir)]));
    assert!(
        found.iter().any(|v| v.rule.contains("not valid TOML")),
        "{found:?}"
    );
    write(dir.path(), "production.toml", "app_env = \"development\"\n");
    let found = violations(&production(&[("CONFIG_DIR", config_dir)]));
    assert!(
        found
            .iter()
            .any(|v| v.rule.contains("only be set in the environment")),
        "{found:?}"
    );
}

#[test]
fn secret_file_problems_are_violations() {
    assert_refused(
        &production(&[
            ("JWT_SECRET", UNSET),
            ("JWT_SECRET_FILE", "/nonexistent/jwt"),
        ]),
        "JWT_SECRET_FILE",
        "cannot read secret file",
    );
    let dir = tempfile::tempdir().unwrap();
    let file: &'static str = Box::leak(write(dir.path(), "jwt", STRONG_SECRET).into_boxed_str());
    assert_refused(
        &production(&[("JWT_SECRET_FILE", file)]),
        "JWT_SECRET_FILE",
        "not both",
    );
}

#[test]
fn needs_restart_lists_changed_fixed_keys_only() {
    let before = Config::<ApiSettings>::load(&env(&[])).unwrap();
    let after =
        Config::<ApiSettings>::load(&env(&[("PORT", "3100"), ("LOG_LEVEL", "debug")])).unwrap();
    assert_eq!(before.needs_restart(&after), ["PORT"]);
}

#[test]
fn an_empty_value_is_refused_where_a_default_exists_and_unset_elsewhere() {
    for name in [
        "PORT",
        "RATE_LIMIT_IP",
        "LOG_LEVEL",
        "APP_ENV",
        "JWT_SECRET",
    ] {
        assert_refused(
            &production(&[(name, "")]),
            name,
            "must not be empty; unset it to use",
        );
    }
    assert_refused(
        &production(&[("PORT", "")]),
        "PORT",
        "unset it to use the default `3000`",
    );
    // No default, or an empty one: empty is the same as unset.
    assert!(violations(&production(&[("REDIS_PASSWORD", ""), ("FEATURES", "")])).is_empty());
    assert_refused(
        &production(&[("WECHAT_APPID", "")]),
        "WECHAT_APPID",
        "is required",
    );
}

#[test]
fn a_non_utf8_value_of_ours_is_named_and_others_are_ignored() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let mut env = Environment::from(BTreeMap::from([(
        "CONFIG_DIR".to_owned(),
        "/nonexistent".to_owned(),
    )]));
    env.set("JWT_SECRET", OsString::from_vec(b"sentinel-\xff".to_vec()));
    env.set("SOMEONE_ELSES", OsString::from_vec(b"\xfe".to_vec()));
    let found = violations(&Sources::from_env(env));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].variable, "JWT_SECRET");
    assert!(found[0].rule.contains("must be UTF-8"), "{}", found[0]);
    assert!(!found[0].rule.contains("sentinel"));
}

#[test]
fn secrets_are_one_line_and_never_come_from_the_toml_layer() {
    assert_refused(
        &production(&[("JWT_SECRET", "q8Vt2LxN4pR7sK1m\nZ9cB3wH6yJ0dF5gA")]),
        "JWT_SECRET",
        "must be one line",
    );
    let dir = tempfile::tempdir().unwrap();
    let echoed: &'static str =
        Box::leak(write(dir.path(), "jwt", &format!("{STRONG_SECRET}\n")).into_boxed_str());
    assert!(
        violations(&production(&[
            ("JWT_SECRET", UNSET),
            ("JWT_SECRET_FILE", echoed)
        ]))
        .is_empty()
    );
    let two_lines: &'static str = Box::leak(
        write(dir.path(), "jwt2", &format!("{STRONG_SECRET}\nsecond\n")).into_boxed_str(),
    );
    assert_refused(
        &production(&[("JWT_SECRET", UNSET), ("JWT_SECRET_FILE", two_lines)]),
        "JWT_SECRET_FILE",
        "must be one line",
    );
    let config_dir: &'static str = Box::leak(dir.path().display().to_string().into_boxed_str());
    write(
        dir.path(),
        "production.toml",
        "jwt_secret = \"toml-sentinel-0123456789abcdefghij\"\n",
    );
    let found = violations(&production(&[("CONFIG_DIR", config_dir)]));
    assert!(
        found
            .iter()
            .any(|v| v.variable == "JWT_SECRET" && v.rule.contains("secrets come only from")),
        "{found:?}"
    );
    assert!(found.iter().all(|v| !v.rule.contains("toml-sentinel")));
}

#[test]
fn the_template_appid_is_refused_outside_development() {
    assert_refused(
        &production(&[("WECHAT_APPID", spec::EXAMPLE_WECHAT_APPID)]),
        "WECHAT_APPID",
        "not the .env.example placeholder",
    );
    assert!(violations(&env(&[("WECHAT_APPID", spec::EXAMPLE_WECHAT_APPID)])).is_empty());
}

#[test]
fn mongodb_uri_problems_quote_no_part_of_the_uri() {
    let found = violations(&production(&[(
        "MONGODB_URI",
        "mongodb://user:pwsentinel@db:27017/avalon?maxPoolSize=optsentinel&readPreference=majorityx",
    )]));
    assert!(!found.is_empty());
    for violation in &found {
        let text = violation.to_string();
        assert!(
            !text.contains("sentinel") && !text.contains("majorityx"),
            "{text}"
        );
    }
}

#[test]
fn lookalike_variables_are_refused_in_production_and_warned_in_development() {
    assert_refused(
        &production(&[("RATE_LIMT_IP", "5")]),
        "RATE_LIMT_IP",
        "did you mean RATE_LIMIT_IP?",
    );
    assert_refused(
        &production(&[("PORT_FILE", "/x")]),
        "PORT_FILE",
        "no file form",
    );
    let development = env(&[("JWT_SECRETT", "x")]);
    assert!(violations(&development).is_empty());
    assert_eq!(warnings(&development)[0].variable, "JWT_SECRETT");
}

#[test]
fn listeners_bind_loopback_in_development_unless_told_otherwise() {
    let dev = Config::<ApiSettings>::load(&env(&[])).unwrap();
    assert_eq!(dev.common.bind_address.to_string(), "127.0.0.1");
    let open = Config::<ApiSettings>::load(&env(&[("BIND_ADDRESS", "0.0.0.0")])).unwrap();
    assert_eq!(open.common.bind_address.to_string(), "0.0.0.0");
    let prod = Config::<ApiSettings>::load(&production(&[])).unwrap();
    assert_eq!(prod.common.bind_address.to_string(), "0.0.0.0");
}
