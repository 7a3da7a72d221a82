//! The one list of every configuration variable. Loading, validation, `docs/configuration.md` and
//! `.env.example` are all derived from it, so a variable cannot be documented differently from how it behaves.

/// Which service reads a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Api,
    Ws,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 2] = [ServiceKind::Api, ServiceKind::Ws];

    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Api => "api",
            ServiceKind::Ws => "ws",
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            ServiceKind::Api => "avalon-api",
            ServiceKind::Ws => "avalon-ws",
        }
    }
}

/// The services a variable applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Both,
    Api,
    Ws,
}

impl Scope {
    pub fn includes(self, service: ServiceKind) -> bool {
        matches!(
            (self, service),
            (Scope::Both, _) | (Scope::Api, ServiceKind::Api) | (Scope::Ws, ServiceKind::Ws)
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Scope::Both => "api, ws",
            Scope::Api => "api",
            Scope::Ws => "ws",
        }
    }
}

/// One configuration variable: its environment name, default and documentation.
#[derive(Debug)]
pub struct Var {
    pub name: &'static str,
    /// Default when no layer sets it; `None` means unset (optional, or required where a rule says so).
    pub default: Option<&'static str>,
    /// How the documentation states a default that depends on something else (`default` is then `None`).
    pub default_text: Option<&'static str>,
    /// Value written into `.env.example`.
    pub example: &'static str,
    pub help: &'static str,
    pub scope: Scope,
    /// Applied on SIGHUP / config-file change without a restart.
    pub reloadable: bool,
    /// Never printed; may also be read from `<NAME>_FILE` (Docker secrets).
    pub secret: bool,
    /// Only accepted when `APP_ENV=development`.
    pub development_only: bool,
}

impl Var {
    /// The TOML key of this variable in `config/<APP_ENV>.toml`.
    pub fn toml_key(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    pub fn file_variant(&self) -> String {
        format!("{}_FILE", self.name)
    }
}

const fn var(name: &'static str, default: Option<&'static str>, help: &'static str) -> Var {
    Var {
        name,
        default,
        default_text: None,
        example: match default {
            Some(value) => value,
            None => "",
        },
        help,
        scope: Scope::Both,
        reloadable: false,
        secret: false,
        development_only: false,
    }
}

/// The JWT secret shipped in `.env.example` and used as the development default; refused elsewhere.
pub const EXAMPLE_JWT_SECRET: &str = "dev-only-insecure-jwt-secret-change-me-0123456789";

pub const APP_ENV: Var = Var {
    example: "development",
    ..var(
        "APP_ENV",
        Some("development"),
        "Deployment environment: development, staging or production. Selects `config/<APP_ENV>.toml` and the strictness of validation.",
    )
};
pub const CONFIG_DIR: Var = var(
    "CONFIG_DIR",
    Some("config"),
    "Directory holding the optional `<APP_ENV>.toml` layer (read from the environment only). Its file is watched for hot reload.",
);
pub const BIND_ADDRESS: Var = Var {
    example: "127.0.0.1",
    default_text: Some("127.0.0.1 in development, 0.0.0.0 otherwise"),
    ..var(
        "BIND_ADDRESS",
        None,
        "IP address the HTTP listener binds to. Unset: 127.0.0.1 when APP_ENV=development (development switches such as DEV_LOGIN stay off the network), 0.0.0.0 otherwise; the images set 0.0.0.0, as a container is reached through its own interface.",
    )
};

/// Where a listener binds when BIND_ADDRESS is unset.
pub fn default_bind_address(app_env: AppEnv) -> std::net::IpAddr {
    match app_env {
        AppEnv::Development => std::net::Ipv4Addr::LOCALHOST.into(),
        AppEnv::Staging | AppEnv::Production => std::net::Ipv4Addr::UNSPECIFIED.into(),
    }
}
pub const PORT: Var = var("PORT", Some("3000"), "Port of the HTTP API (avalon-api).");
pub const WS_PORT: Var = var(
    "WS_PORT",
    Some("3001"),
    "Port of the Socket.IO game server (avalon-ws).",
);
pub const API_PREFIX: Var = Var {
    scope: Scope::Api,
    ..var(
        "API_PREFIX",
        Some("/api"),
        "Path prefix of every API route (routes are versioned below it, e.g. `/api/v1`).",
    )
};
pub const MONGODB_URI: Var = Var {
    scope: Scope::Api,
    secret: true,
    example: "mongodb://localhost:27017/avalon",
    ..var(
        "MONGODB_URI",
        None,
        "MongoDB connection string. Required outside development; unset in development selects the embedded store.",
    )
};
pub const DATA_DIR: Var = var(
    "DATA_DIR",
    Some(".avalon/data"),
    "Directory of the embedded stores used in development without MongoDB/Redis (created if missing).",
);
pub const REDIS_HOST: Var = var(
    "REDIS_HOST",
    None,
    "Redis host. Required outside development; unset in development selects the in-process store and bus (single instance).",
);
pub const REDIS_PORT: Var = var("REDIS_PORT", Some("6379"), "Redis port.");
pub const REDIS_PASSWORD: Var = Var {
    secret: true,
    ..var(
        "REDIS_PASSWORD",
        None,
        "Redis password (AUTH), if the server requires one.",
    )
};
pub const REDIS_DB: Var = var("REDIS_DB", Some("0"), "Redis logical database, 0–15.");
pub const JWT_SECRET: Var = Var {
    secret: true,
    example: EXAMPLE_JWT_SECRET,
    ..var(
        "JWT_SECRET",
        Some(EXAMPLE_JWT_SECRET),
        "HMAC key signing access tokens, shared by api and ws. At least 32 bytes; the example/development value is refused outside development.",
    )
};
pub const JWT_EXPIRES_IN: Var = var(
    "JWT_EXPIRES_IN",
    Some("2h"),
    "Access-token lifetime (e.g. `15m`, `2h`, `7d`); more than 0.",
);
pub const REFRESH_TOKEN_EXPIRES_IN: Var = Var {
    scope: Scope::Api,
    ..var(
        "REFRESH_TOKEN_EXPIRES_IN",
        Some("30d"),
        "Refresh-token lifetime; more than 0 and longer than JWT_EXPIRES_IN.",
    )
};
/// The AppID placeholder shipped in `.env.example`; refused outside development.
pub const EXAMPLE_WECHAT_APPID: &str = "wx0000000000000000";

pub const WECHAT_APPID: Var = Var {
    scope: Scope::Api,
    example: EXAMPLE_WECHAT_APPID,
    ..var(
        "WECHAT_APPID",
        None,
        "WeChat mini-program AppID. Required in staging and production, where the `.env.example` placeholder is refused.",
    )
};
pub const WECHAT_SECRET: Var = Var {
    scope: Scope::Api,
    secret: true,
    ..var(
        "WECHAT_SECRET",
        None,
        "WeChat mini-program AppSecret. Required in staging and production.",
    )
};
pub const WECHAT_API_BASE: Var = Var {
    scope: Scope::Api,
    ..var(
        "WECHAT_API_BASE",
        Some("https://api.weixin.qq.com"),
        "Base URL of the WeChat server API (tests point it at a local stub).",
    )
};
pub const WECHAT_TIMEOUT: Var = Var {
    scope: Scope::Api,
    ..var(
        "WECHAT_TIMEOUT",
        Some("5s"),
        "Deadline of each call to the WeChat server API (connect and answer); a timeout answers 504 WECHAT_TIMEOUT. More than 0.",
    )
};
pub const WECHAT_MSG_SEC_CHECK: Var = Var {
    scope: Scope::Api,
    ..var(
        "WECHAT_MSG_SEC_CHECK",
        Some("false"),
        "Check new nicknames with WeChat `msgSecCheck` (needs WECHAT_APPID and WECHAT_SECRET).",
    )
};
pub const MONGODB_MAX_POOL_SIZE: Var = Var {
    scope: Scope::Api,
    ..var(
        "MONGODB_MAX_POOL_SIZE",
        Some("20"),
        "Most MongoDB connections one API instance opens.",
    )
};
pub const MONGODB_MIN_POOL_SIZE: Var = Var {
    scope: Scope::Api,
    ..var(
        "MONGODB_MIN_POOL_SIZE",
        Some("0"),
        "MongoDB connections kept open while idle; at most MONGODB_MAX_POOL_SIZE.",
    )
};
pub const MONGODB_CONNECT_TIMEOUT: Var = Var {
    scope: Scope::Api,
    ..var(
        "MONGODB_CONNECT_TIMEOUT",
        Some("5s"),
        "Deadline for opening one MongoDB connection; more than 0.",
    )
};
pub const MONGODB_SERVER_SELECTION_TIMEOUT: Var = Var {
    scope: Scope::Api,
    ..var(
        "MONGODB_SERVER_SELECTION_TIMEOUT",
        Some("5s"),
        "How long an operation waits for a usable MongoDB server before failing (503 STORE_UNAVAILABLE); more than 0.",
    )
};
pub const TRUSTED_PROXIES: Var = Var {
    scope: Scope::Api,
    ..var(
        "TRUSTED_PROXIES",
        Some(""),
        "Comma-separated IPs or CIDR blocks of reverse proxies (nginx). Only when the peer is one of them is the client IP taken from X-Forwarded-For.",
    )
};
pub const ADMIN_ALLOWLIST: Var = Var {
    scope: Scope::Api,
    ..var(
        "ADMIN_ALLOWLIST",
        Some(""),
        "Comma-separated client IPs/CIDR blocks and `user:<id>` entries still served while maintenance mode is on.",
    )
};
pub const CORS_ALLOWED_ORIGINS: Var = Var {
    scope: Scope::Api,
    ..var(
        "CORS_ALLOWED_ORIGINS",
        Some(""),
        "Comma-separated origins (`https://host[:port]`) allowed to call the API from a browser; empty sends no CORS headers.",
    )
};
pub const API_BODY_LIMIT: Var = Var {
    scope: Scope::Api,
    ..var(
        "API_BODY_LIMIT",
        Some("65536"),
        "Largest request body in bytes (1024 to 10485760); larger bodies get 413 PAYLOAD_TOO_LARGE.",
    )
};
pub const API_REQUEST_TIMEOUT: Var = Var {
    scope: Scope::Api,
    ..var(
        "API_REQUEST_TIMEOUT",
        Some("15s"),
        "Deadline for one API request; a slower one gets 503 REQUEST_TIMEOUT. More than 0.",
    )
};
pub const LOG_LEVEL: Var = Var {
    reloadable: true,
    ..var(
        "LOG_LEVEL",
        Some("info"),
        "Log filter: a level (`error`…`trace`) or `tracing` directives such as `info,avalon_api=debug`.",
    )
};
pub const LOG_FORMAT: Var = var(
    "LOG_FORMAT",
    Some("json"),
    "Log output: `json` (one object per line) or `pretty` (for a terminal).",
);
pub const MAX_CONNECTIONS: Var = Var {
    reloadable: true,
    ..var(
        "MAX_CONNECTIONS",
        Some("36000"),
        "Most concurrent Socket.IO connections one game-server instance accepts; more are refused with a clear error. The default fits the 500 MiB memory limit of docker/compose.prod.yml and k8s/ at the ~7.6 KiB per idle connection `cargo xtask bench ws` measures (about 275 MiB), with the rest left for games in play (docs/protocol.md §9). Each connection is an open file: at start the server raises its soft open-file limit to cover this (as far as the hard limit allows) and warns when it cannot.",
    )
};
pub const RATE_LIMIT_IP: Var = Var {
    reloadable: true,
    ..var(
        "RATE_LIMIT_IP",
        Some("100"),
        "Requests per minute allowed from one client IP.",
    )
};
pub const RATE_LIMIT_USER: Var = Var {
    reloadable: true,
    ..var(
        "RATE_LIMIT_USER",
        Some("60"),
        "Requests (API, shared by all instances through Redis) or game-server events (ws, across all of the user's sockets on one instance; `sync` is free) per minute allowed for one signed-in user.",
    )
};
pub const MAINTENANCE_MODE: Var = Var {
    reloadable: true,
    ..var(
        "MAINTENANCE_MODE",
        Some("false"),
        "When true the services refuse new work with 503 and a message; health endpoints are unaffected.",
    )
};
pub const MAINTENANCE_MESSAGE: Var = Var {
    reloadable: true,
    ..var(
        "MAINTENANCE_MESSAGE",
        Some("Avalon is down for maintenance. Please try again shortly."),
        "Message shown to players while maintenance mode is on.",
    )
};
pub const FEATURES: Var = Var {
    reloadable: true,
    ..var(
        "FEATURES",
        Some(""),
        "Comma-separated feature switches (lower-case names of letters, digits and `_`).",
    )
};
pub const SHUTDOWN_DRAIN_DELAY: Var = var(
    "SHUTDOWN_DRAIN_DELAY",
    Some("5s"),
    "After SIGTERM, how long readiness reports 503 before the listener stops accepting (lets the load balancer notice); `0s` or more.",
);
pub const SHUTDOWN_TIMEOUT: Var = var(
    "SHUTDOWN_TIMEOUT",
    Some("20s"),
    "Deadline for in-flight work to finish after the listener stops; must exceed SHUTDOWN_DRAIN_DELAY's share of the container grace period. More than 0.",
);
pub const WATCHDOG_TIMEOUT: Var = var(
    "WATCHDOG_TIMEOUT",
    Some("10s"),
    "If the async runtime makes no progress for this long the process aborts, so the restart policy replaces it. At least `1s`.",
);
pub const READINESS_TIMEOUT: Var = var(
    "READINESS_TIMEOUT",
    Some("2s"),
    "Timeout of each dependency check behind /readyz; more than 0 and at most `30s`.",
);
pub const REGISTRY_HEARTBEAT: Var = var(
    "REGISTRY_HEARTBEAT",
    Some("1s"),
    "How often a ready instance rewrites its record in the instance registry (Redis key `avalon:instance:<id>`, see docs/operations.md \"Instances and the registry\"). From `100ms` to `60s`.",
);
pub const REGISTRY_TTL: Var = var(
    "REGISTRY_TTL",
    Some("5s"),
    "Expiry of an instance's registry record: an instance that stops beating (killed, hung, cut off from Redis) vanishes from the registry this long after its last heartbeat. At least 3 × REGISTRY_HEARTBEAT and at most `10m`.",
);
pub const DEV_LOGIN: Var = Var {
    scope: Scope::Api,
    development_only: true,
    ..var(
        "DEV_LOGIN",
        Some("false"),
        "Enables `POST /api/v1/auth/dev-login` (sign in with any openid). Development only.",
    )
};
pub const DEBUG_ENDPOINTS: Var = Var {
    development_only: true,
    ..var(
        "DEBUG_ENDPOINTS",
        Some("false"),
        "Enables `/debug/sleep` and `/debug/stall` used by the shutdown and watchdog tests, and `/debug/instances` (the instance registry this process writes to). Development only.",
    )
};
pub const FAULT_INJECT_5XX_RATE: Var = Var {
    scope: Scope::Api,
    ..var(
        "FAULT_INJECT_5XX_RATE",
        Some("0"),
        "Share (0 to 1) of API requests answered 500 on purpose, so a canary built with it proves that canary analysis aborts a bad release. Health, readiness and metrics are never affected. Must be 0 in production.",
    )
};
pub const FAULT_INJECT_WS_REFUSE_RATE: Var = Var {
    scope: Scope::Ws,
    ..var(
        "FAULT_INJECT_WS_REFUSE_RATE",
        Some("0"),
        "Share (0 to 1) of Socket.IO handshakes the game server refuses on purpose with `connect_error` `FAULT_INJECTED`, so a canary built with it proves that the judgment sees the game server. Health, readiness and metrics are never affected. Must be 0 in production.",
    )
};

pub const WS_RECONNECT_WINDOW: Var = Var {
    scope: Scope::Ws,
    ..var(
        "WS_RECONNECT_WINDOW",
        Some("2m"),
        "How long a disconnected player keeps their seat in a room's lobby; seats in a running game are kept while the room lives (WS_ROOM_TTL). More than 0 and shorter than WS_ROOM_TTL.",
    )
};
pub const WS_ROOM_TTL: Var = Var {
    scope: Scope::Ws,
    ..var(
        "WS_ROOM_TTL",
        Some("1h"),
        "An abandoned room (no change for this long) expires with its game; at least `1m`.",
    )
};
pub const WS_IDLE_TIMEOUT: Var = Var {
    scope: Scope::Ws,
    ..var(
        "WS_IDLE_TIMEOUT",
        Some("15m"),
        "A socket that sends no event for this long is told `server:idle` and disconnected; at least `10s`.",
    )
};
pub const WS_MAX_MESSAGE_BYTES: Var = Var {
    scope: Scope::Ws,
    ..var(
        "WS_MAX_MESSAGE_BYTES",
        Some("16384"),
        "Largest Socket.IO message a client may send, in bytes (1024–1048576); larger ones close the connection.",
    )
};
pub const WS_CHAT_MAX_LENGTH: Var = Var {
    scope: Scope::Ws,
    ..var(
        "WS_CHAT_MAX_LENGTH",
        Some("300"),
        "Longest chat message in characters (1–2000).",
    )
};
pub const WS_CHAT_PER_MINUTE: Var = Var {
    scope: Scope::Ws,
    ..var(
        "WS_CHAT_PER_MINUTE",
        Some("20"),
        "Chat messages one signed-in user may send per minute, across all of their sockets on one game-server instance (game actions are limited by RATE_LIMIT_USER).",
    )
};

/// Every variable, in documentation order.
pub const ALL: &[&Var] = &[
    &APP_ENV,
    &CONFIG_DIR,
    &BIND_ADDRESS,
    &PORT,
    &WS_PORT,
    &API_PREFIX,
    &MONGODB_URI,
    &DATA_DIR,
    &REDIS_HOST,
    &REDIS_PORT,
    &REDIS_PASSWORD,
    &REDIS_DB,
    &JWT_SECRET,
    &JWT_EXPIRES_IN,
    &REFRESH_TOKEN_EXPIRES_IN,
    &WECHAT_APPID,
    &WECHAT_SECRET,
    &WECHAT_API_BASE,
    &WECHAT_TIMEOUT,
    &WECHAT_MSG_SEC_CHECK,
    &MONGODB_MAX_POOL_SIZE,
    &MONGODB_MIN_POOL_SIZE,
    &MONGODB_CONNECT_TIMEOUT,
    &MONGODB_SERVER_SELECTION_TIMEOUT,
    &TRUSTED_PROXIES,
    &ADMIN_ALLOWLIST,
    &CORS_ALLOWED_ORIGINS,
    &API_BODY_LIMIT,
    &API_REQUEST_TIMEOUT,
    &LOG_LEVEL,
    &LOG_FORMAT,
    &MAX_CONNECTIONS,
    &WS_RECONNECT_WINDOW,
    &WS_ROOM_TTL,
    &WS_IDLE_TIMEOUT,
    &WS_MAX_MESSAGE_BYTES,
    &WS_CHAT_MAX_LENGTH,
    &WS_CHAT_PER_MINUTE,
    &RATE_LIMIT_IP,
    &RATE_LIMIT_USER,
    &MAINTENANCE_MODE,
    &MAINTENANCE_MESSAGE,
    &FEATURES,
    &SHUTDOWN_DRAIN_DELAY,
    &SHUTDOWN_TIMEOUT,
    &WATCHDOG_TIMEOUT,
    &READINESS_TIMEOUT,
    &REGISTRY_HEARTBEAT,
    &REGISTRY_TTL,
    &DEV_LOGIN,
    &DEBUG_ENDPOINTS,
    &FAULT_INJECT_5XX_RATE,
    &FAULT_INJECT_WS_REFUSE_RATE,
];

pub fn lookup(name: &str) -> Option<&'static Var> {
    ALL.iter().copied().find(|var| var.name == name)
}

/// The value of `APP_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Development,
    Staging,
    Production,
}

impl AppEnv {
    pub fn parse(text: &str) -> Result<AppEnv, String> {
        match text.trim() {
            "development" => Ok(AppEnv::Development),
            "staging" => Ok(AppEnv::Staging),
            "production" => Ok(AppEnv::Production),
            _ => Err("must be one of development, staging, production".to_owned()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Staging => "staging",
            AppEnv::Production => "production",
        }
    }
}
