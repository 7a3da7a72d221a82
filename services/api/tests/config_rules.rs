//! The API's own configuration variables: valid values load, bad ones are refused naming the variable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use avalon_runtime::config::{ApiSettings, Config, Sources};

fn load(pairs: &[(&str, &str)]) -> Result<Config<ApiSettings>, String> {
    let mut env: BTreeMap<String, String> = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    env.insert(
        "CONFIG_DIR".to_owned(),
        "/nonexistent/avalon-config".to_owned(),
    );
    Config::<ApiSettings>::load(&Sources::from_env(env)).map_err(|invalid| invalid.to_string())
}

fn refused(pairs: &[(&str, &str)], variable: &str) {
    let error = load(pairs)
        .err()
        .unwrap_or_else(|| panic!("{pairs:?} was accepted"));
    assert!(error.contains(variable), "{variable} not named in: {error}");
}

#[test]
fn api_variables_parse_into_settings() {
    let config = load(&[
        ("TRUSTED_PROXIES", "10.0.0.0/8, 172.16.0.1, ::1"),
        ("ADMIN_ALLOWLIST", "192.0.2.0/24,user:abc_123"),
        (
            "CORS_ALLOWED_ORIGINS",
            "https://game.example,http://localhost:5173",
        ),
        ("API_BODY_LIMIT", "2048"),
        ("MONGODB_MAX_POOL_SIZE", "7"),
        ("WECHAT_TIMEOUT", "750ms"),
    ])
    .unwrap();
    let api = &config.service;
    assert_eq!(api.trusted_proxies.len(), 3);
    assert!(api.trusted_proxies[0].contains("10.200.3.4".parse::<IpAddr>().unwrap()));
    assert!(!api.trusted_proxies[0].contains("11.0.0.1".parse::<IpAddr>().unwrap()));
    assert!(api.trusted_proxies[2].contains("::1".parse::<IpAddr>().unwrap()));
    assert!(api.admin_allowlist.user_ids.contains("abc_123"));
    assert!(api.admin_allowlist.ips[0].contains("192.0.2.77".parse::<IpAddr>().unwrap()));
    assert_eq!(api.cors_allowed_origins.len(), 2);
    assert_eq!(api.body_limit, 2048);
    assert_eq!(api.mongodb_pool.max_pool_size, 7);
    assert_eq!(api.wechat.timeout.as_millis(), 750);

    let defaults = load(&[]).unwrap();
    assert!(defaults.service.trusted_proxies.is_empty());
    assert!(defaults.service.cors_allowed_origins.is_empty());
    assert!(!defaults.service.wechat.msg_sec_check);
}

#[test]
fn bad_api_values_are_refused_naming_the_variable() {
    refused(&[("TRUSTED_PROXIES", "10.0.0.0/33")], "TRUSTED_PROXIES");
    refused(&[("TRUSTED_PROXIES", "nginx")], "TRUSTED_PROXIES");
    refused(&[("ADMIN_ALLOWLIST", "user:")], "ADMIN_ALLOWLIST");
    refused(&[("ADMIN_ALLOWLIST", "bob")], "ADMIN_ALLOWLIST");
    refused(
        &[("CORS_ALLOWED_ORIGINS", "https://game.example/path")],
        "CORS_ALLOWED_ORIGINS",
    );
    refused(&[("CORS_ALLOWED_ORIGINS", "*")], "CORS_ALLOWED_ORIGINS");
    refused(&[("API_BODY_LIMIT", "12")], "API_BODY_LIMIT");
    refused(&[("API_REQUEST_TIMEOUT", "0s")], "API_REQUEST_TIMEOUT");
    refused(&[("WECHAT_TIMEOUT", "soon")], "WECHAT_TIMEOUT");
    refused(&[("WECHAT_MSG_SEC_CHECK", "true")], "WECHAT_MSG_SEC_CHECK");
    refused(
        &[
            ("MONGODB_MIN_POOL_SIZE", "30"),
            ("MONGODB_MAX_POOL_SIZE", "5"),
        ],
        "MONGODB_MIN_POOL_SIZE",
    );
    refused(&[("MONGODB_MAX_POOL_SIZE", "0")], "MONGODB_MAX_POOL_SIZE");
}
