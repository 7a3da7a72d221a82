//! Every API route in one table: the router and the OpenAPI document are both built from it, so the
//! document cannot list a route that does not exist or miss one that does.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{MethodRouter, get, patch, post};
use serde_json::{Value, json};

use crate::state::AppState;

pub mod auth;
pub mod games;
pub mod realtime;
pub mod users;

/// One documented route. `path` is below API_PREFIX, axum style (`/v1/games/{id}`).
pub struct RouteDoc {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub authenticated: bool,
    /// Required JSON body fields, each `(name, description)`.
    pub body: &'static [(&'static str, &'static str)],
    /// Status codes this route answers besides the common ones (401, 429, 503 ...).
    pub responses: &'static [(u16, &'static str)],
}

fn doc(
    method: Method,
    path: &'static str,
    summary: &'static str,
    authenticated: bool,
    body: &'static [(&'static str, &'static str)],
    responses: &'static [(u16, &'static str)],
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        authenticated,
        body,
        responses,
    }
}

const SESSION: (u16, &str) = (
    200,
    "session: access_token, token_type, expires_in, refresh_token, refresh_expires_in, user",
);

pub fn table() -> Vec<(RouteDoc, MethodRouter<AppState>)> {
    vec![
        (
            doc(
                Method::POST,
                "/v1/auth/wechat",
                "Sign in with a wx.login code",
                false,
                &[("code", "the code from wx.login")],
                &[
                    SESSION,
                    (
                        400,
                        "INVALID_CODE, WECHAT_CODE_INVALID (40029), WECHAT_CODE_USED (40163)",
                    ),
                    (403, "WECHAT_USER_BLOCKED (40226)"),
                    (429, "WECHAT_RATE_LIMITED (45011)"),
                    (502, "WECHAT_ERROR, WECHAT_UNREACHABLE, WECHAT_BAD_RESPONSE"),
                    (503, "WECHAT_BUSY (-1), WECHAT_NOT_CONFIGURED"),
                    (504, "WECHAT_TIMEOUT"),
                ],
            ),
            post(auth::wechat),
        ),
        (
            doc(
                Method::POST,
                "/v1/auth/dev-login",
                "Sign in with any openid (development only, DEV_LOGIN=true)",
                false,
                &[("openid", "1-64 letters, digits, - or _")],
                &[
                    SESSION,
                    (400, "INVALID_OPENID"),
                    (404, "NOT_FOUND when dev-login is disabled"),
                ],
            ),
            post(auth::dev_login),
        ),
        (
            doc(
                Method::POST,
                "/v1/auth/refresh",
                "Rotate a refresh token for a new session pair",
                false,
                &[(
                    "refresh_token",
                    "the refresh token from sign-in or the last refresh",
                )],
                &[
                    SESSION,
                    (400, "INVALID_REFRESH_TOKEN"),
                    (
                        401,
                        "REFRESH_TOKEN_INVALID, REFRESH_TOKEN_REUSED (session revoked), REFRESH_TOKEN_REVOKED, REFRESH_TOKEN_EXPIRED, USER_NOT_FOUND",
                    ),
                ],
            ),
            post(auth::refresh),
        ),
        (
            doc(
                Method::POST,
                "/v1/auth/logout",
                "End the session of a refresh token",
                false,
                &[("refresh_token", "the current refresh token")],
                &[
                    (204, "session revoked (also for unknown tokens)"),
                    (400, "INVALID_REFRESH_TOKEN"),
                ],
            ),
            post(auth::logout),
        ),
        (
            doc(
                Method::GET,
                "/v1/users/me",
                "The signed-in user",
                true,
                &[],
                &[
                    (200, "user: id, nickname, created_at_ms"),
                    (404, "USER_NOT_FOUND"),
                ],
            ),
            get(users::me),
        ),
        (
            doc(
                Method::PATCH,
                "/v1/users/me",
                "Change the nickname",
                true,
                &[(
                    "nickname",
                    "1-16 characters, no control or invisible characters",
                )],
                &[
                    (200, "user"),
                    (422, "INVALID_NICKNAME, NICKNAME_REJECTED (msgSecCheck)"),
                    (404, "USER_NOT_FOUND"),
                ],
            ),
            patch(users::update_me),
        ),
        (
            doc(
                Method::GET,
                "/v1/games",
                "Own game history, newest first (?limit=1..50&cursor=)",
                true,
                &[],
                &[
                    (200, "games[], next_cursor"),
                    (400, "INVALID_QUERY, INVALID_CURSOR"),
                ],
            ),
            get(games::list),
        ),
        (
            doc(
                Method::GET,
                "/v1/games/{id}",
                "One finished game the caller played in, with every role",
                true,
                &[],
                &[
                    (
                        200,
                        "game: game_id, room_code, player_ids, finished_at_ms, summary",
                    ),
                    (404, "GAME_NOT_FOUND"),
                ],
            ),
            get(games::one),
        ),
        (
            doc(
                Method::GET,
                "/v1/stats/me",
                "Own statistics: games, wins, by side, by role",
                true,
                &[],
                &[(
                    200,
                    "stats: games_played, wins, losses, win_rate, by_side, by_role",
                )],
            ),
            get(games::stats),
        ),
        (
            doc(
                Method::GET,
                "/v1/realtime",
                "Where and how to connect to the game server",
                true,
                &[],
                &[(200, "path, transports, auth.token, token_expires_at")],
            ),
            get(realtime::realtime),
        ),
        (
            doc(
                Method::GET,
                "/v1/openapi.json",
                "This OpenAPI document",
                false,
                &[],
                &[(200, "OpenAPI 3.1 document")],
            ),
            get(openapi_json),
        ),
    ]
}

/// The routes, grouped by path.
pub fn router() -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for (doc, method_router) in table() {
        let merged = match by_path.remove(doc.path) {
            Some(existing) => existing.merge(method_router),
            None => method_router,
        };
        by_path.insert(doc.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, method_router)| {
            router.route(path, method_router)
        })
}

async fn openapi_json(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(openapi(&state.config.service.prefix))
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The OpenAPI 3.1 document of every route below `prefix`.
pub fn openapi(prefix: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for (route, _) in table() {
        let mut responses = serde_json::Map::new();
        for (status, description) in route.responses {
            let response = if *status < 300 {
                json!({ "description": description })
            } else {
                error_response(description)
            };
            responses.insert(status.to_string(), response);
        }
        responses.insert(
            "429".to_owned(),
            error_response("RATE_LIMITED (Retry-After, RateLimit-* headers)"),
        );
        responses.insert(
            "503".to_owned(),
            error_response("MAINTENANCE (Retry-After), STORE_UNAVAILABLE, REQUEST_TIMEOUT"),
        );
        if route.authenticated {
            responses.insert(
                "401".to_owned(),
                error_response("UNAUTHENTICATED, TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_MALFORMED, TOKEN_WRONG_TYPE"),
            );
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": format!("{}_{}", route.method.as_str().to_ascii_lowercase(), route.path.trim_start_matches('/').replace(['/', '-', '.'], "_").replace(['{', '}'], "")),
            "responses": responses,
        });
        if route.authenticated {
            operation["security"] = json!([{ "bearer": [] }]);
        }
        if route.path.contains("{id}") {
            operation["parameters"] = json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }]);
        }
        if !route.body.is_empty() {
            let properties: serde_json::Map<String, Value> = route
                .body
                .iter()
                .map(|(name, description)| {
                    (
                        (*name).to_owned(),
                        json!({ "type": "string", "description": description }),
                    )
                })
                .collect();
            let required: Vec<&str> = route.body.iter().map(|(name, _)| *name).collect();
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": { "type": "object", "properties": properties, "required": required } } }
            });
        }
        let path = format!("{prefix}{}", route.path);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Avalon API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string" },
                            "message": { "type": "string" },
                            "request_id": { "type": ["string", "null"] }
                        }
                    } }
                }
            }
        }
    })
}
