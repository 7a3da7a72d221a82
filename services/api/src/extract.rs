//! Extractors that fail with the API's JSON error shape instead of axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::{Json, http::header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use avalon_runtime::auth::{AccessClaims, TokenError, verify_access_token};

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON request body. The one way handlers read a body, so every route follows the same rule: a JSON object
/// holding exactly the fields of `T` — anything else (another JSON type, an unknown field, a missing or
/// mistyped one) is `422 INVALID_BODY`, whatever `T`'s own serde attributes say.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<Value>::from_request(request, state)
            .await
            .map_err(|rejection| json_rejection(&rejection))?;
        decode_body(value).map(ApiJson)
    }
}

/// Decodes a body's JSON into `T`, refusing non-objects and fields `T` does not have.
pub fn decode_body<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY", message);
    if !value.is_object() {
        return Err(invalid(format!(
            "the body must be a JSON object, not {}",
            json_kind(&value)
        )));
    }
    let mut unknown = Vec::new();
    let decoded: T = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()))
        .map_err(|err| invalid(err.to_string()))?;
    if unknown.is_empty() {
        Ok(decoded)
    } else {
        let names = unknown
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(invalid(format!("unknown field {names}")))
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(err) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_BODY",
            err.body_text(),
        ),
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request("INVALID_JSON", err.body_text())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "the request body is larger than this API accepts",
        ),
        other => ApiError::bad_request("INVALID_BODY", other.body_text()),
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::bad_request("INVALID_QUERY", rejection.body_text())
            })
    }
}

/// The caller's verified access token. The gate verifies it once and leaves the claims in the request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub AccessClaims);

/// How the gate found the Authorization header.
#[derive(Debug, Clone)]
pub enum Credentials {
    Valid(AccessClaims),
    Invalid(TokenError),
    Missing,
    NotBearer,
}

impl Credentials {
    pub fn from_parts(parts: &Parts, state: &AppState) -> Credentials {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Credentials::Missing;
        };
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
        else {
            return Credentials::NotBearer;
        };
        match verify_access_token(&state.config.common.jwt_secret, token.trim()) {
            Ok(claims) => Credentials::Valid(claims),
            Err(err) => Credentials::Invalid(err),
        }
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credentials = match parts.extensions.get::<Credentials>() {
            Some(credentials) => credentials.clone(),
            None => Credentials::from_parts(parts, state),
        };
        let challenge = |error: ApiError| error.with_header(header::WWW_AUTHENTICATE, "Bearer");
        match credentials {
            Credentials::Valid(claims) => Ok(Authenticated(claims)),
            Credentials::Missing => Err(challenge(ApiError::unauthorized(
                "UNAUTHENTICATED",
                "sign in first: send Authorization: Bearer <access token>",
            ))),
            Credentials::NotBearer => Err(challenge(ApiError::unauthorized(
                "UNAUTHENTICATED",
                "the Authorization header must be `Bearer <access token>`",
            ))),
            Credentials::Invalid(err) => {
                let message = match err {
                    TokenError::Expired => "the access token expired; refresh it",
                    _ => "the access token is not valid",
                };
                Err(challenge(ApiError::unauthorized(err.code(), message)))
            }
        }
    }
}
