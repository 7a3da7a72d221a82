//! The WeChat server API: `jscode2session` for login, `stable_token` + `msg_sec_check` for nicknames.
//! `session_key` is never deserialised, so it cannot be stored, logged or returned by accident.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use avalon_runtime::config::{Secret, WechatSettings};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WechatError {
    #[error("WeChat login is not configured (WECHAT_APPID/WECHAT_SECRET unset)")]
    NotConfigured,
    #[error("WeChat did not answer within {0:?}")]
    Timeout(Duration),
    #[error("WeChat is unreachable: {0}")]
    Unreachable(String),
    #[error("WeChat answered something unexpected: {0}")]
    BadResponse(String),
    #[error("WeChat errcode {errcode}")]
    Code { errcode: i64 },
}

impl WechatError {
    /// The answer the client gets, with a stable code per WeChat errcode.
    pub fn to_api(&self) -> ApiError {
        let (status, code, message) = match self {
            WechatError::NotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                "WECHAT_NOT_CONFIGURED",
                "WeChat sign-in is not configured on this server",
            ),
            WechatError::Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                "WECHAT_TIMEOUT",
                "WeChat did not answer in time; try again",
            ),
            WechatError::Unreachable(_) => (
                StatusCode::BAD_GATEWAY,
                "WECHAT_UNREACHABLE",
                "WeChat could not be reached; try again",
            ),
            WechatError::BadResponse(_) => (
                StatusCode::BAD_GATEWAY,
                "WECHAT_BAD_RESPONSE",
                "WeChat answered something unexpected",
            ),
            WechatError::Code { errcode: -1 } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "WECHAT_BUSY",
                "WeChat is busy; try again in a moment",
            ),
            WechatError::Code { errcode: 40029 } => (
                StatusCode::BAD_REQUEST,
                "WECHAT_CODE_INVALID",
                "the login code is invalid; call wx.login again",
            ),
            WechatError::Code { errcode: 40163 } => (
                StatusCode::BAD_REQUEST,
                "WECHAT_CODE_USED",
                "the login code was already used; call wx.login again",
            ),
            WechatError::Code { errcode: 45011 } => (
                StatusCode::TOO_MANY_REQUESTS,
                "WECHAT_RATE_LIMITED",
                "too many sign-in attempts; wait a minute",
            ),
            WechatError::Code { errcode: 40226 } => (
                StatusCode::FORBIDDEN,
                "WECHAT_USER_BLOCKED",
                "WeChat flagged this account as high-risk; sign-in refused",
            ),
            WechatError::Code { .. } => (
                StatusCode::BAD_GATEWAY,
                "WECHAT_ERROR",
                "WeChat refused the request",
            ),
        };
        let error = ApiError::new(status, code, message);
        match status {
            StatusCode::TOO_MANY_REQUESTS => error.retry_after(60),
            StatusCode::SERVICE_UNAVAILABLE => error.retry_after(5),
            _ => error,
        }
    }
}

/// Who WeChat says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatIdentity {
    pub openid: String,
    pub unionid: Option<String>,
}

/// WeChat's verdict on a piece of user text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextVerdict {
    Pass,
    /// `risky` or `review`: not shown to other players.
    Refused,
}

/// Only the fields we use; `session_key` is deliberately absent.
#[derive(Deserialize)]
struct SessionAnswer {
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    errcode: Option<i64>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    errcode: Option<i64>,
}

#[derive(Deserialize)]
struct CheckAnswer {
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    result: Option<CheckResult>,
}

#[derive(Deserialize)]
struct CheckResult {
    suggest: String,
}

/// errcode 87014: content is risky (older msgSecCheck answers use it instead of `suggest`).
const RISKY_CONTENT: i64 = 87014;
/// errcodes saying the access token is no longer valid: fetch a new one and retry once.
const TOKEN_INVALID: [i64; 3] = [40001, 42001, 40014];

pub struct WechatClient {
    http: reqwest::Client,
    settings: WechatSettings,
    /// The cached stable access token and when to stop using it.
    access_token: Mutex<Option<(Secret, Instant)>>,
}

impl WechatClient {
    pub fn new(settings: WechatSettings) -> Result<WechatClient, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("avalon-api/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot build the WeChat HTTP client: {err}"))?;
        Ok(WechatClient {
            http,
            settings,
            access_token: Mutex::new(None),
        })
    }

    fn credentials(&self) -> Result<(&str, &Secret), WechatError> {
        match (&self.settings.appid, &self.settings.secret) {
            (Some(appid), Some(secret)) => Ok((appid, secret)),
            _ => Err(WechatError::NotConfigured),
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, WechatError> {
        self.settings
            .api_base
            .join(path)
            .map_err(|err| WechatError::BadResponse(format!("bad URL {path}: {err}")))
    }

    fn transport(&self, err: reqwest::Error) -> WechatError {
        if err.is_timeout() {
            WechatError::Timeout(self.settings.timeout)
        } else {
            // Without the URL: it carries the secret in its query string.
            WechatError::Unreachable(err.without_url().to_string())
        }
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, WechatError> {
        let response = response.map_err(|err| self.transport(err))?;
        let status = response.status();
        // WeChat often labels JSON as text/plain, so parse the text ourselves.
        let body = response.text().await.map_err(|err| self.transport(err))?;
        if !status.is_success() {
            return Err(WechatError::BadResponse(format!("HTTP {status}")));
        }
        serde_json::from_str(&body)
            .map_err(|_| WechatError::BadResponse(format!("not the expected JSON (HTTP {status})")))
    }

    /// Exchanges a `wx.login` code for the user's openid.
    pub async fn code_to_session(&self, code: &str) -> Result<WechatIdentity, WechatError> {
        let (appid, secret) = self.credentials()?;
        let mut url = self.url("/sns/jscode2session")?;
        url.query_pairs_mut()
            .append_pair("appid", appid)
            .append_pair("secret", secret.expose())
            .append_pair("js_code", code)
            .append_pair("grant_type", "authorization_code");
        let answer: SessionAnswer = self.read_json(self.http.get(url).send().await).await?;
        match (answer.errcode, answer.openid) {
            (Some(errcode), _) if errcode != 0 => Err(WechatError::Code { errcode }),
            (_, Some(openid)) if !openid.is_empty() => Ok(WechatIdentity {
                openid,
                unionid: answer.unionid,
            }),
            _ => Err(WechatError::BadResponse(
                "no openid in the answer".to_owned(),
            )),
        }
    }

    /// The stable access token, cached until five minutes before it expires.
    async fn stable_token(&self, force_refresh: bool) -> Result<Secret, WechatError> {
        let mut cached = self.access_token.lock().await;
        if !force_refresh
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (appid, secret) = self.credentials()?;
        let body = json!({
            "grant_type": "client_credential",
            "appid": appid,
            "secret": secret.expose(),
            "force_refresh": force_refresh,
        });
        let url = self.url("/cgi-bin/stable_token")?;
        let answer: TokenAnswer = self
            .read_json(self.http.post(url).json(&body).send().await)
            .await?;
        if let Some(errcode) = answer.errcode.filter(|code| *code != 0) {
            return Err(WechatError::Code { errcode });
        }
        let token = answer
            .access_token
            .filter(|token| !token.is_empty())
            .map(Secret::new)
            .ok_or_else(|| WechatError::BadResponse("no access_token in the answer".to_owned()))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(7200).saturating_sub(300));
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// Asks `msgSecCheck` (v2) whether `content` written by `openid` may be shown.
    pub async fn check_text(
        &self,
        openid: &str,
        content: &str,
    ) -> Result<TextVerdict, WechatError> {
        let mut force_refresh = false;
        loop {
            let token = self.stable_token(force_refresh).await?;
            let mut url = self.url("/wxa/msg_sec_check")?;
            url.query_pairs_mut()
                .append_pair("access_token", token.expose());
            let body = json!({ "content": content, "version": 2, "scene": 1, "openid": openid });
            let answer: CheckAnswer = self
                .read_json(self.http.post(url).json(&body).send().await)
                .await?;
            match answer.errcode.unwrap_or(0) {
                0 => {}
                RISKY_CONTENT => return Ok(TextVerdict::Refused),
                errcode if TOKEN_INVALID.contains(&errcode) && !force_refresh => {
                    force_refresh = true;
                    continue;
                }
                errcode => return Err(WechatError::Code { errcode }),
            }
            return match answer.result.map(|result| result.suggest) {
                Some(suggest) if suggest == "pass" => Ok(TextVerdict::Pass),
                Some(_) => Ok(TextVerdict::Refused),
                None => Err(WechatError::BadResponse(
                    "no result in the answer".to_owned(),
                )),
            };
        }
    }

    pub fn checks_text(&self) -> bool {
        self.settings.msg_sec_check
    }
}
