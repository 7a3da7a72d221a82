//! The signed-in user's own profile.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Authenticated};
use crate::model::now_ms;
use crate::nickname;
use crate::state::AppState;
use crate::tokens::PublicUser;
use crate::wechat::TextVerdict;

#[derive(Deserialize)]
pub struct UpdateMe {
    nickname: String,
}

fn gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "USER_NOT_FOUND",
        "this user no longer exists",
    )
}

pub async fn me(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> ApiResult<Json<PublicUser>> {
    let user = state.store.user(&claims.sub).await?.ok_or_else(gone)?;
    Ok(Json(PublicUser::from(&user)))
}

pub async fn update_me(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    ApiJson(body): ApiJson<UpdateMe>,
) -> ApiResult<Json<PublicUser>> {
    let nickname = nickname::validate(&body.nickname)?;
    let user = state.store.user(&claims.sub).await?.ok_or_else(gone)?;
    if state.wechat.checks_text() {
        let verdict = state
            .wechat
            .check_text(&user.openid, &nickname)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "msgSecCheck failed");
                err.to_api()
            })?;
        if verdict == TextVerdict::Refused {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "NICKNAME_REJECTED",
                "this nickname was refused by content review; choose another",
            ));
        }
    }
    let user = state
        .store
        .set_nickname(&claims.sub, &nickname, now_ms())
        .await?
        .ok_or_else(gone)?;
    Ok(Json(PublicUser::from(&user)))
}
