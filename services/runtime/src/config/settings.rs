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

/// The instance registry's timing (see [`crate::registry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RegistrySettings {
    /// How often a ready instance rewrites its record.
    pub heartbeat: Duration,
    /// The record's expiry; at least [`RegistrySettings::MIN_BEATS_PER_TTL`] heartbeats.
    pub ttl: Duration,
}

impl RegistrySettings {
    /// A record must survive this many heartbeats, so one slow or lost write never drops a live instance.
    pub const MIN_BEATS_PER_TTL: u32 = 3;
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
    pub registry: RegistrySettings,
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
    pub timeout: Duration,
    /// Check nicknames with `msgSecCheck`; only true when appid and secret are set too.
    pub msg_sec_check: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MongoPool {
    pub max_pool_size: u32,
    pub min_pool_size: u32,
    pub connect_timeout: Duration,
    pub server_selection_timeout: Duration,
}

/// An IP address or CIDR block (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IpBlock {
    pub network: IpAddr,
    pub prefix: u8,
}

impl IpBlock {
    pub fn parse(text: &str) -> Result<IpBlock, String> {
        let rule = || format!("{text:?} is not an IP address or CIDR block such as 10.0.0.0/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| rule())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(rule)?,
            None => max,
        };
        Ok(IpBlock { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(network: u128, ip: u128, prefix: u8) -> bool {
    let mask = match prefix {
        0 => 0,
        bits => u128::MAX << (128 - u32::from(bits.min(128))),
    };
    network & mask == ip & mask
}

/// Who is still served during maintenance.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AdminAllowlist {
    pub ips: Vec<IpBlock>,
    pub user_ids: BTreeSet<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiSettings {
    pub prefix: String,
    /// `None` in development without MONGODB_URI: the embedded store.
    pub mongodb_uri: Option<Secret>,
    pub mongodb_pool: MongoPool,
    pub refresh_token_expires_in: Duration,
    pub wechat: WechatSettings,
    pub dev_login: bool,
    pub trusted_proxies: Vec<IpBlock>,
    pub admin_allowlist: AdminAllowlist,
    pub cors_allowed_origins: Vec<String>,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// Share of application requests answered 500 on purpose (0 in production); see FAULT_INJECT_5XX_RATE.
    pub fault_inject_5xx_rate: f64,
}

/// The game server's own settings (fixed for the life of the process).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WsSettings {
    /// How long a disconnected player keeps a lobby seat.
    pub reconnect_window: Duration,
    /// An abandoned room expires after this long without a change.
    pub room_ttl: Duration,
    /// A socket silent for this long is disconnected.
    pub idle_timeout: Duration,
    /// Largest message a client may send.
    pub max_message_bytes: u32,
    /// Longest chat message, in characters.
    pub chat_max_length: u32,
    /// Chat messages per socket per minute.
    pub chat_per_minute: u32,
    /// Share of Socket.IO handshakes refused on purpose (0 in production); see FAULT_INJECT_WS_REFUSE_RATE.
    pub fault_inject_refuse_rate: f64,
}

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
        let mongodb_pool = read_mongo_pool(reader);
        let wechat = read_wechat(reader, strict);
        let dev_login = reader.development_switch(&var::DEV_LOGIN);
        let trusted_proxies = reader.value(&var::TRUSTED_PROXIES, |text| {
            comma_list(text)
                .map(IpBlock::parse)
                .collect::<Result<Vec<_>, _>>()
        });
        let admin_allowlist = reader.value(&var::ADMIN_ALLOWLIST, admin_allowlist);
        let cors_allowed_origins = reader.value(&var::CORS_ALLOWED_ORIGINS, |text| {
            comma_list(text)
                .map(cors_origin)
                .collect::<Result<Vec<_>, _>>()
        });
        let body_limit = reader.value(&var::API_BODY_LIMIT, |text| {
            match text.trim().parse::<usize>() {
                Ok(bytes @ 1024..=10_485_760) => Ok(bytes),
                _ => Err("must be a byte count from 1024 to 10485760".to_owned()),
            }
        });
        let request_timeout = reader.value(&var::API_REQUEST_TIMEOUT, parse::positive_duration);
        let fault_inject_5xx_rate = reader.value(&var::FAULT_INJECT_5XX_RATE, parse::share);
        if reader.app_env == AppEnv::Production
            && fault_inject_5xx_rate.is_some_and(|rate| rate > 0.0)
        {
            reader.violate(
                &var::FAULT_INJECT_5XX_RATE,
                "must be 0 when APP_ENV=production (it breaks requests on purpose, to test canary analysis in development and staging)",
            );
        }
        Some(ApiSettings {
            prefix: prefix?,
            mongodb_uri,
            mongodb_pool: mongodb_pool?,
            refresh_token_expires_in: refresh?,
            wechat: wechat?,
            dev_login,
            trusted_proxies: trusted_proxies.unwrap_or_default(),
            admin_allowlist: admin_allowlist.unwrap_or_default(),
            cors_allowed_origins: cors_allowed_origins.unwrap_or_default(),
            body_limit: body_limit?,
            request_timeout: request_timeout?,
            fault_inject_5xx_rate: fault_inject_5xx_rate?,
        })
    }
}

fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn admin_allowlist(text: &str) -> Result<AdminAllowlist, String> {
    let mut list = AdminAllowlist::default();
    for entry in comma_list(text) {
        if let Some(user_id) = entry.strip_prefix("user:") {
            let valid = !user_id.is_empty()
                && user_id.len() <= 64
                && user_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(format!(
                    "{entry:?}: a user id is 1-64 letters, digits, `-` or `_`"
                ));
            }
            list.user_ids.insert(user_id.to_owned());
        } else {
            list.ips.push(
                IpBlock::parse(entry)
                    .map_err(|rule| format!("{rule}; user ids are written `user:<id>`"))?,
            );
        }
    }
    Ok(list)
}

fn cors_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text)
        .map_err(|_| format!("{text:?} is not an origin such as https://example.com"))?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !bare
        || text.ends_with('/')
    {
        return Err(format!(
            "{text:?} must be scheme://host[:port] with no path"
        ));
    }
    Ok(text.to_owned())
}

fn read_mongo_pool(reader: &mut Reader<'_>) -> Option<MongoPool> {
    let max_pool_size = reader.value(&var::MONGODB_MAX_POOL_SIZE, parse::positive_u32);
    let min_pool_size = reader.value(&var::MONGODB_MIN_POOL_SIZE, |text| {
        text.trim()
            .parse::<u32>()
            .map_err(|_| "must be a whole number".to_owned())
    });
    if let (Some(max), Some(min)) = (max_pool_size, min_pool_size)
        && min > max
    {
        reader.violate(
            &var::MONGODB_MIN_POOL_SIZE,
            format!("must be at most MONGODB_MAX_POOL_SIZE (got {min} > {max})"),
        );
        return None;
    }
    let connect_timeout = reader.value(&var::MONGODB_CONNECT_TIMEOUT, parse::positive_duration);
    let server_selection_timeout = reader.value(
        &var::MONGODB_SERVER_SELECTION_TIMEOUT,
        parse::positive_duration,
    );
    Some(MongoPool {
        max_pool_size: max_pool_size?,
        min_pool_size: min_pool_size?,
        connect_timeout: connect_timeout?,
        server_selection_timeout: server_selection_timeout?,
    })
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
    let appid_rule = |text: &str| {
        let appid = appid_rule(text)?;
        if strict && appid == var::EXAMPLE_WECHAT_APPID {
            return Err(format!(
                "must be your mini-program's AppID, not the .env.example placeholder {OUTSIDE_DEVELOPMENT}"
            ));
        }
        Ok(appid)
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
    let timeout = reader.value(&var::WECHAT_TIMEOUT, parse::positive_duration);
    let msg_sec_check = reader
        .value(&var::WECHAT_MSG_SEC_CHECK, parse::boolean)
        .unwrap_or(false);
    if msg_sec_check && (appid.is_none() || secret.is_none()) {
        reader.violate(
            &var::WECHAT_MSG_SEC_CHECK,
            "needs WECHAT_APPID and WECHAT_SECRET to call msgSecCheck",
        );
    }
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
        timeout: timeout?,
        msg_sec_check,
    })
}

impl ServiceSettings for WsSettings {
    const KIND: ServiceKind = ServiceKind::Ws;

    fn read(reader: &mut Reader<'_>) -> Option<WsSettings> {
        let reconnect_window = reader.value(&var::WS_RECONNECT_WINDOW, parse::positive_duration);
        let room_ttl = reader.value(&var::WS_ROOM_TTL, |text| {
            match parse::positive_duration(text)? {
                value if value < Duration::from_secs(60) => Err("must be at least 1m".to_owned()),
                value => Ok(value),
            }
        });
        let idle_timeout =
            reader.value(
                &var::WS_IDLE_TIMEOUT,
                |text| match parse::positive_duration(text)? {
                    value if value < Duration::from_secs(10) => {
                        Err("must be at least 10s".to_owned())
                    }
                    value => Ok(value),
                },
            );
        let max_message_bytes = reader.value(&var::WS_MAX_MESSAGE_BYTES, |text| {
            within(parse::positive_u32(text)?, 1024, 1_048_576)
        });
        let chat_max_length = reader.value(&var::WS_CHAT_MAX_LENGTH, |text| {
            within(parse::positive_u32(text)?, 1, 2000)
        });
        let chat_per_minute = reader.value(&var::WS_CHAT_PER_MINUTE, parse::positive_u32);
        if let (Some(window), Some(ttl)) = (reconnect_window, room_ttl)
            && window >= ttl
        {
            reader.violate(
                &var::WS_RECONNECT_WINDOW,
                "must be shorter than WS_ROOM_TTL (a seat cannot outlive its room)",
            );
        }
        let fault_inject_refuse_rate =
            reader.value(&var::FAULT_INJECT_WS_REFUSE_RATE, parse::share);
        if reader.app_env == AppEnv::Production
            && fault_inject_refuse_rate.is_some_and(|rate| rate > 0.0)
        {
            reader.violate(
                &var::FAULT_INJECT_WS_REFUSE_RATE,
                "must be 0 when APP_ENV=production (it refuses players on purpose, to test canary analysis in development and staging)",
            );
        }
        Some(WsSettings {
            reconnect_window: reconnect_window?,
            room_ttl: room_ttl?,
            idle_timeout: idle_timeout?,
            max_message_bytes: max_message_bytes?,
            chat_max_length: chat_max_length?,
            chat_per_minute: chat_per_minute?,
            fault_inject_refuse_rate: fault_inject_refuse_rate?,
        })
    }
}

pub(super) fn read_common(reader: &mut Reader<'_>) -> Option<Common> {
    let strict = reader.app_env != AppEnv::Development;
    let bind_address = match reader.raw(&var::BIND_ADDRESS) {
        Some(_) => reader.value(&var::BIND_ADDRESS, parse::ip_addr),
        None => Some(var::default_bind_address(reader.app_env)),
    };
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
    let registry = read_registry(reader);
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
        registry: registry?,
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

fn read_registry(reader: &mut Reader<'_>) -> Option<RegistrySettings> {
    let heartbeat = reader.value(
        &var::REGISTRY_HEARTBEAT,
        |text| match parse::positive_duration(text)? {
            value if value < Duration::from_millis(100) => Err("must be at least 100ms".to_owned()),
            value if value > Duration::from_secs(60) => Err("must be at most 60s".to_owned()),
            value => Ok(value),
        },
    );
    let ttl = reader.value(&var::REGISTRY_TTL, |text| {
        match parse::positive_duration(text)? {
            value if value > Duration::from_secs(600) => Err("must be at most 10m".to_owned()),
            value => Ok(value),
        }
    });
    let (heartbeat, ttl) = (heartbeat?, ttl?);
    let beats = RegistrySettings::MIN_BEATS_PER_TTL;
    if ttl < heartbeat * beats {
        reader.violate(
            &var::REGISTRY_TTL,
            format!(
                "must be at least {beats} × REGISTRY_HEARTBEAT, so a record outlives a missed heartbeat (got {} < {beats} × {})",
                humantime::format_duration(ttl),
                humantime::format_duration(heartbeat)
            ),
        );
        return None;
    }
    Some(RegistrySettings { heartbeat, ttl })
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

fn within(value: u32, min: u32, max: u32) -> Result<u32, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}
