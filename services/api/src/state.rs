//! What every handler shares.

use std::sync::Arc;

use avalon_runtime::config::{ApiSettings, Config};
use avalon_runtime::reload::LiveConfig;

use crate::maintenance::Maintenance;
use crate::ratelimit::RateLimiter;
use crate::store::SharedStore;
use crate::wechat::WechatClient;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config<ApiSettings>>,
    pub live: LiveConfig,
    pub store: SharedStore,
    pub limiter: Arc<RateLimiter>,
    pub maintenance: Arc<Maintenance>,
    pub wechat: Arc<WechatClient>,
}
