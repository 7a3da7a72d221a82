//! avalon-api: the HTTP API of Avalon — WeChat sign-in, rotating sessions, profile, game history — with rate
//! limits and maintenance mode in front. Start-up, health, metrics and shutdown come from `avalon-runtime`.

mod app;
pub mod client_ip;
pub mod error;
pub mod extract;
pub mod gate;
pub mod ingest;
pub mod maintenance;
pub mod model;
pub mod nickname;
pub mod ratelimit;
pub mod redis_conn;
pub mod routes;
pub mod rules;
pub mod state;
pub mod store;
pub mod tokens;
pub mod wechat;

pub use app::build;
