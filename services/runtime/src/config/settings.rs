//! The typed, validated configuration: what every service shares, what each service adds, and the
//! reloadable part that may change while the process runs.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use super::parse;
use super::reader::Reader;
use super::secret::Secret;
use super::spec::{self as var, AppEnv, ServiceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub password: Option<Secret>,
    pub db: u8,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Lifecycle {
    pub shutdown_drain_delay: Duration,
    pub shutdown_timeout: Duration,
    pub watchdog_timeout: Duration,
    pub readiness_timeout: Duration,
}

/// Settings both services read; fixed for the life of the process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Common {
    pub app_env: AppEnv,
    pub bind_address: IpAddr,
    pub api_port: u16,
    pub ws_port: u16,
    pub log_format: LogFormat,
    /// `None` in development without REDIS_HOST: the in-process store and bus.
    pub redis: Option<RedisSettings>,
    pub jwt_secret: Secret,
    pub jwt_expires_in: Duration,
    pub lifecycle: Lifecycle,
    pub debug_endpoints: bool,
    /// Where embedded (development) stores keep their files.
    pub data_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Maintenance {
    pub enabled: bool,
    pub message: String,
}

/// The keys applied on reload without a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Live {
    pub log_level: String,
    pub max_connections: u32,
    pub rate_limit_ip: u32,
    pub rate_limit_user: u32,
    pub maintenance: Maintenance,
    pub features: BTreeSet<String>,
}

impl Live {
    pub fn feature(&self, name: &str) -> bool {
        self.features.contains(name)
    }
}

/// What one service adds to [`Common`].
pub trait ServiceSettings: std::fmt::Debug + Clone + Send + Sync + 'static {
    const KIND: ServiceKind;
    fn read(reader: &mut Reader<'_>) -> Option<Self>;
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WechatSettings {
    pub appid: Option<String>,
    pub secret: Option<Secret>,
    pub api_base: url::Url,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiSettings {
    pub prefix: String,
    /// `None` in development without MONGODB_URI: the embedded store.
    pub mongodb_uri: Option<Secret>,
    pub refresh_token_expires_in: Duration,
    pub wechat: WechatSettings,
    pub dev_login: bool,
}

/// The game server's own settings. Everything it reads today is shared ([`Common`], [`Live`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WsSettings {}

const OUTSIDE_DEVELOPMENT: &str = "when APP_ENV is staging or production";

impl ServiceSettings for ApiSettings {
    const KIND: ServiceKind = ServiceKind::Api;

    fn read(reader: &mut Reader<'_>) -> Option<ApiSettings> {
        let strict = reader.app_env != AppEnv::Development;
        let prefix = reader.value(&var::API_PREFIX, parse::api_prefix);
        let mongodb_uri = if strict {
            reader.required(&var::MONGODB_URI, OUTSIDE_DEVELOPMENT, parse::mongodb_uri)
        } else {
            reader.value(&var::MONGODB_URI, parse::mongodb_uri)
        }
        .and_then(|()| reader.raw(&var::MONGODB_URI))
        .map(|resolved| Secret::new(resolved.value));
        let refresh = reader.value(&var::REFRESH_TOKEN_EXPIRES_IN, parse::positive_duration);
        let access = reader.value(&var::JWT_EXPIRES_IN, parse::positive_duration);
        if let (Some(refresh), Some(access)) = (refresh, access)
            && refresh <= access
        {
            reader.violate(
                &var::REFRESH_TOKEN_EXPIRES_IN,
                format!(
                    "must be longer than JWT_EXPIRES_IN (got {} ≤ {})",
                    humantime::format_duration(refresh),
                    humantime::format_duration(access)
                ),
            );
        }
        let wechat = read_wechat(reader, strict);
        let dev_login = reader.development_switch(&var::DEV_LOGIN);
        Some(ApiSettings {
            prefix: prefix?,
            mongodb_uri,
            refresh_token_expires_in: refresh?,
            wechat: wechat?,
            dev_login,
        })
    }
}

fn read_wechat(reader: &mut Reader<'_>, strict: bool) -> Option<WechatSettings> {
    let appid_rule = |text: &str| {
        let valid = text.len() == 18
            && text.starts_with("wx")
            && text.chars().all(|c| c.is_ascii_alphanumeric());
        if valid {
            Ok(text.to_owned())
        } else {
            Err("must be a mini-program AppID: `wx` followed by 16 letters or digits".to_owned())
        }
    };
    let secret_rule = |text: &str| {
        if text.len() >= 16 {
            Ok(Secret::new(text))
        } else {
            Err("must be the AppSecret from the WeChat console (at least 16 characters)".to_owned())
        }
    };
    let (appid, secret) = if strict {
        (
            reader.required(&var::WECHAT_APPID, OUTSIDE_DEVELOPMENT, appid_rule),
            reader.required(&var::WECHAT_SECRET, OUTSIDE_DEVELOPMENT, secret_rule),
        )
    } else {
        (
            reader.value(&var::WECHAT_APPID, appid_rule),
            reader.value(&var::WECHAT_SECRET, secret_rule),
        )
    };
    let api_base = reader.value(&var::WECHAT_API_BASE, parse::http_url)?;
    if strict && api_base.scheme() != "https" {
        reader.violate(
            &var::WECHAT_API_BASE,
            format!("must use https {OUTSIDE_DEVELOPMENT}"),
        );
    }
    Some(WechatSettings {
        appid,
        secret,
        api_base,
    })
}

impl ServiceSettings for WsSettings {
    const KIND: ServiceKind = ServiceKind::Ws;

    fn read(_reader: &mut Reader<'_>) -> Option<WsSettings> {
        Some(WsSettings {})
    }
}

pub(super) fn read_common(reader: &mut Reader<'_>) -> Option<Common> {
    let strict = reader.app_env != AppEnv::Development;
    let bind_address = reader.value(&var::BIND_ADDRESS, parse::ip_addr);
    let api_port = reader.value(&var::PORT, parse::port);
    let ws_port = reader.value(&var::WS_PORT, parse::port);
    if let (Some(api), Some(ws)) = (api_port, ws_port)
        && api == ws
    {
        reader.violate(
            &var::WS_PORT,
            format!("must differ from PORT (both are {api})"),
        );
    }
    let log_format = reader.value(&var::LOG_FORMAT, |text| match text.trim() {
        "json" => Ok(LogFormat::Json),
        "pretty" => Ok(LogFormat::Pretty),
        _ => Err("must be json or pretty".to_owned()),
    });
    let redis = read_redis(reader, strict);
    let jwt_secret = read_jwt_secret(reader, strict);
    let jwt_expires_in = reader.value(&var::JWT_EXPIRES_IN, parse::positive_duration);
    let lifecycle = read_lifecycle(reader);
    let debug_endpoints = reader.development_switch(&var::DEBUG_ENDPOINTS);
    let data_dir = reader.value(&var::DATA_DIR, |text| {
        if text.trim().is_empty() {
            Err("must be a directory path".to_owned())
        } else {
            Ok(text.into())
        }
    });
    Some(Common {
        app_env: reader.app_env,
        bind_address: bind_address?,
        api_port: api_port?,
        ws_port: ws_port?,
        log_format: log_format?,
        redis: redis?,
        jwt_secret: jwt_secret?,
        jwt_expires_in: jwt_expires_in?,
        lifecycle: lifecycle?,
        debug_endpoints,
        data_dir: data_dir?,
    })
}

/// `Some(None)` is a valid "no Redis" (development only); `None` means a violation was recorded.
fn read_redis(reader: &mut Reader<'_>, strict: bool) -> Option<Option<RedisSettings>> {
    let host = if strict {
        reader.required(&var::REDIS_HOST, OUTSIDE_DEVELOPMENT, parse::hostname)
    } else {
        reader.value(&var::REDIS_HOST, parse::hostname)
    };
    let port = reader.value(&var::REDIS_PORT, parse::port);
    let db = reader.value(&var::REDIS_DB, |text| match text.trim().parse::<u8>() {
        Ok(db @ 0..=15) => Ok(db),
        _ => Err("must be a Redis database number from 0 to 15".to_owned()),
    });
    let password = reader
        .raw(&var::REDIS_PASSWORD)
        .map(|resolved| Secret::new(resolved.value));
    let (port, db) = (port?, db?);
    if strict && host.is_none() {
        return None;
    }
    let host_was_set = reader.raw(&var::REDIS_HOST).is_some();
    match host {
        Some(host) => Some(Some(RedisSettings {
            host,
            port,
            password,
            db,
        })),
        None if host_was_set => None,
        None => Some(None),
    }
}

fn read_jwt_secret(reader: &mut Reader<'_>, strict: bool) -> Option<Secret> {
    let resolved = reader.raw(&var::JWT_SECRET);
    let Some(resolved) = resolved else {
        reader.violate(&var::JWT_SECRET, "is required");
        return None;
    };
    let secret = resolved.value;
    let mut valid = true;
    if secret.len() < 32 {
        reader.violate(
            &var::JWT_SECRET,
            format!(
                "must be at least 32 bytes (got {} bytes from {})",
                secret.len(),
                resolved.origin
            ),
        );
        valid = false;
    }
    if !valid {
        // A short secret is already refused; further strength rules would only repeat it.
    } else if strict && secret == var::EXAMPLE_JWT_SECRET {
        reader.violate(
            &var::JWT_SECRET,
            format!(
                "must not be the .env.example / development value when APP_ENV={} (from {})",
                reader.app_env.name(),
                resolved.origin
            ),
        );
        valid = false;
    } else if strict && distinct_chars(&secret) < 10 {
        reader.violate(
            &var::JWT_SECRET,
            format!(
                "is too weak: use at least 10 distinct characters (from {})",
                resolved.origin
            ),
        );
        valid = false;
    }
    valid.then(|| Secret::new(secret))
}

fn distinct_chars(text: &str) -> usize {
    text.chars().collect::<BTreeSet<_>>().len()
}

fn read_lifecycle(reader: &mut Reader<'_>) -> Option<Lifecycle> {
    let shutdown_drain_delay = reader.value(&var::SHUTDOWN_DRAIN_DELAY, parse::duration);
    let shutdown_timeout = reader.value(&var::SHUTDOWN_TIMEOUT, parse::positive_duration);
    let watchdog_timeout = reader.value(&var::WATCHDOG_TIMEOUT, |text| {
        match parse::duration(text)? {
            value if value < Duration::from_secs(1) => Err("must be at least 1s".to_owned()),
            value => Ok(value),
        }
    });
    let readiness_timeout =
        reader.value(
            &var::READINESS_TIMEOUT,
            |text| match parse::positive_duration(text)? {
                value if value > Duration::from_secs(30) => Err("must be at most 30s".to_owned()),
                value => Ok(value),
            },
        );
    Some(Lifecycle {
        shutdown_drain_delay: shutdown_drain_delay?,
        shutdown_timeout: shutdown_timeout?,
        watchdog_timeout: watchdog_timeout?,
        readiness_timeout: readiness_timeout?,
    })
}

pub(super) fn read_live(reader: &mut Reader<'_>) -> Option<Live> {
    let log_level = reader.value(&var::LOG_LEVEL, parse::log_filter);
    let max_connections = reader.value(&var::MAX_CONNECTIONS, parse::positive_u32);
    let rate_limit_ip = reader.value(&var::RATE_LIMIT_IP, parse::positive_u32);
    let rate_limit_user = reader.value(&var::RATE_LIMIT_USER, parse::positive_u32);
    let enabled = reader.value(&var::MAINTENANCE_MODE, parse::boolean);
    let message = reader.value(&var::MAINTENANCE_MESSAGE, |text| {
        if text.chars().count() <= 500 {
            Ok(text.to_owned())
        } else {
            Err("must be at most 500 characters".to_owned())
        }
    });
    let features = reader.value(&var::FEATURES, parse::features);
    Some(Live {
        log_level: log_level?,
        max_connections: max_connections?,
        rate_limit_ip: rate_limit_ip?,
        rate_limit_user: rate_limit_user?,
        maintenance: Maintenance {
            enabled: enabled?,
            message: message.unwrap_or_else(|| {
                var::MAINTENANCE_MESSAGE
                    .default
                    .unwrap_or_default()
                    .to_owned()
            }),
        },
        features: features.unwrap_or_default(),
    })
}
