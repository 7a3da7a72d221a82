//! Sign-in (WeChat, dev), refresh and logout. Bodies are decoded by [`ApiJson`] (unknown fields refused) and
//! each field is checked against its published rule in [`crate::rules`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::model::{User, now_ms};
use crate::rules::{DEV_OPENID, WECHAT_CODE};
use crate::state::AppState;
use crate::tokens::{self, SessionTokens};

#[derive(Deserialize)]
pub struct WechatLogin {
    code: String,
}

#[derive(Deserialize)]
pub struct DevLogin {
    openid: String,
}

#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

pub async fn wechat(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<WechatLogin>,
) -> ApiResult<Json<SessionTokens>> {
    WECHAT_CODE.check(&body.code)?;
    let identity = state
        .wechat
        .code_to_session(&body.code)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "WeChat sign-in failed");
            err.to_api()
        })?;
    sign_in(&state, &identity.openid).await
}

pub async fn dev_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DevLogin>,
) -> ApiResult<Json<SessionTokens>> {
    if !state.config.service.dev_login {
        return Err(ApiError::not_found(
            "dev-login is disabled (DEV_LOGIN=true in development enables it)",
        ));
    }
    DEV_OPENID.check(&body.openid)?;
    sign_in(&state, &format!("dev:{}", body.openid)).await
}

async fn sign_in(state: &AppState, openid: &str) -> ApiResult<Json<SessionTokens>> {
    let user = state.store.upsert_user(User::new(openid, now_ms())).await?;
    tracing::info!(user_id = %user.id, "signed in");
    Ok(Json(tokens::start_session(state, &user).await?))
}

pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<Json<SessionTokens>> {
    tokens::check_refresh_shape(&body.refresh_token)?;
    Ok(Json(
        tokens::refresh_session(&state, &body.refresh_token).await?,
    ))
}

pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> ApiResult<StatusCode> {
    tokens::check_refresh_shape(&body.refresh_token)?;
    tokens::end_session(&state, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
