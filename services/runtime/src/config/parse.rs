//! Parsers for single values. Each returns the rule the value broke, phrased for an operator.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

pub fn port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err("must be a port number from 1 to 65535".to_owned()),
    }
}

pub fn positive_u32(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(value) if value > 0 => Ok(value),
        _ => Err("must be a whole number greater than 0".to_owned()),
    }
}

/// A share of something: a decimal number from 0 to 1.
pub fn share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err("must be a number from 0 to 1 (e.g. 0.25)".to_owned()),
    }
}

pub fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

pub fn ip_addr(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| "must be an IP address such as 0.0.0.0 or 127.0.0.1".to_owned())
}

/// A duration such as `500ms`, `15m`, `2h` or `7d`.
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| "must be a duration such as 30s, 15m, 2h or 7d".to_owned())
}

pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        value if value.is_zero() => Err("must be a duration greater than 0".to_owned()),
        value => Ok(value),
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A level or `tracing` directives (`info,avalon_api=debug`). Stricter than `EnvFilter`, which would take a
/// misspelt level such as `verbose` as a target name and silently log nothing extra.
pub fn log_filter(text: &str) -> Result<String, String> {
    let rule = "must be a level (off, error, warn, info, debug, trace) or directives like `info,avalon_api=debug`";
    let text = text.trim();
    if text.is_empty() {
        return Err(rule.to_owned());
    }
    for directive in text.split(',').map(str::trim) {
        let level = match directive.split_once('=') {
            Some((target, level)) => {
                let target_ok = !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
                if !target_ok {
                    return Err(rule.to_owned());
                }
                level
            }
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(rule.to_owned());
        }
    }
    tracing_subscriber::EnvFilter::try_new(text).map_err(|_| rule.to_owned())?;
    Ok(text.to_owned())
}

pub fn api_prefix(text: &str) -> Result<String, String> {
    let rule = "must start with `/`, not end with `/`, and use only letters, digits, `-`, `_`, `.` and single `/`";
    let valid = text.starts_with('/')
        && text.len() > 1
        && !text.ends_with('/')
        && !text.contains("//")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(rule.to_owned())
    }
}

/// The driver's own parser decides; its message is not passed on, as it quotes parts of the string
/// (hosts, option values, credentials) and the whole string is a secret.
pub fn mongodb_uri(text: &str) -> Result<(), String> {
    let rule = "must be a MongoDB connection string: mongodb:// or mongodb+srv://, hosts, optional /database and known ?options";
    mongodb::options::ConnectionString::parse(text)
        .map(|_| ())
        .map_err(|_| rule.to_owned())
}

pub fn hostname(text: &str) -> Result<String, String> {
    let text = text.trim();
    let valid = !text.is_empty()
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be a host name or IP address (no scheme, port or path)".to_owned())
    }
}

pub fn http_url(text: &str) -> Result<url::Url, String> {
    match url::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        _ => Err("must be an http:// or https:// URL".to_owned()),
    }
}

pub fn features(text: &str) -> Result<BTreeSet<String>, String> {
    let mut names = BTreeSet::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let valid = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!(
                "must be comma-separated names of lower-case letters, digits and `_` (`{name}` is not)"
            ));
        }
        names.insert(name.to_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_days_and_refuse_words() {
        assert_eq!(duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(duration("150ms").unwrap(), Duration::from_millis(150));
        assert!(duration("soon").is_err());
        assert!(positive_duration("0s").is_err());
    }

    #[test]
    fn log_filter_refuses_misspelt_levels_that_envfilter_would_take() {
        assert!(log_filter("debug").is_ok());
        assert!(log_filter("info,avalon_api=debug,tower_http=warn").is_ok());
        assert!(log_filter("verbose").is_err());
        assert!(log_filter("info,=debug").is_err());
        assert!(log_filter("").is_err());
    }

    #[test]
    fn api_prefix_shapes() {
        assert!(api_prefix("/api").is_ok());
        assert!(api_prefix("/game/api").is_ok());
        for bad in ["api", "/api/", "/", "/a//b", "/api?x"] {
            assert!(api_prefix(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn booleans_and_numbers() {
        assert!(boolean("on").unwrap());
        assert!(!boolean("0").unwrap());
        assert!(boolean("maybe").is_err());
        assert!(positive_u32("0").is_err());
        assert!(positive_u32("-3").is_err());
        assert_eq!(port("8080").unwrap(), 8080);
        assert!(port("0").is_err());
        assert!(port("65536").is_err());
    }

    #[test]
    fn mongodb_uri_uses_the_driver_parser() {
        assert!(mongodb_uri("mongodb://user:pw@db1:27017,db2:27017/avalon?replicaSet=rs0").is_ok());
        assert!(mongodb_uri("mongodb+srv://cluster.example.com/avalon").is_ok());
        assert!(mongodb_uri("http://db:27017").is_err());
        assert!(mongodb_uri("mongodb://db:99999").is_err());
    }

    #[test]
    fn features_are_names() {
        assert_eq!(features("a_b, c1").unwrap().len(), 2);
        assert!(features("Bad-Name").is_err());
    }
}
