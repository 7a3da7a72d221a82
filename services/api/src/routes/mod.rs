//! Every API route in one table: the router and the OpenAPI document are both built from it, so the
//! document cannot list a route that does not exist or miss one that does.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{MethodRouter, get, patch, post};
use serde_json::{Value, json};

use crate::rules::{CURSOR, DEV_OPENID, FieldRule, NICKNAME, REFRESH_TOKEN, WECHAT_CODE};
use crate::state::AppState;

pub mod auth;
pub mod games;
pub mod openapi;
pub mod realtime;
pub mod users;

/// One documented route. `path` is below API_PREFIX, axum style (`/v1/games/{id}`).
pub struct RouteDoc {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub authenticated: bool,
    /// The JSON body's fields (all required, nothing else accepted); empty = the route reads no body.
    pub body: &'static [&'static FieldRule],
    /// Query parameters (all optional); empty = the route reads no query.
    pub query: &'static [QueryParam],
    /// The success answer: status, description and the component schema of its body (`None`: no body).
    pub success: (u16, &'static str, Option<&'static str>),
    /// This route's own refusals. The common ones (body, query, authentication, rate limit, maintenance,
    /// store) are added by [`openapi::document`] from `body`, `query` and `authenticated`.
    pub errors: &'static [(u16, &'static str)],
}

/// A query parameter and its JSON Schema.
pub struct QueryParam {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn() -> Value,
}

const ROUTE: RouteDoc = RouteDoc {
    method: Method::GET,
    path: "",
    summary: "",
    authenticated: false,
    body: &[],
    query: &[],
    success: (200, "", None),
    errors: &[],
};

const SESSION: (u16, &str, Option<&str>) = (
    200,
    "a new session: access and refresh tokens and the user",
    Some("Session"),
);

const PAGE_QUERY: &[QueryParam] = &[
    QueryParam {
        name: "limit",
        description: "games per page",
        schema: || json!({ "type": "integer", "minimum": 1, "maximum": games::MAX_PAGE, "default": games::DEFAULT_PAGE }),
    },
    QueryParam {
        name: "cursor",
        description: "the previous page's next_cursor; empty or absent for the first page",
        schema: || CURSOR.schema(),
    },
];

// Statics, not constants: a rule holds its compiled pattern, which a constant cannot refer to.
static WECHAT_BODY: [&FieldRule; 1] = [&WECHAT_CODE];
static DEV_LOGIN_BODY: [&FieldRule; 1] = [&DEV_OPENID];
static REFRESH_BODY: [&FieldRule; 1] = [&REFRESH_TOKEN];
static NICKNAME_BODY: [&FieldRule; 1] = [&NICKNAME];

pub fn table() -> Vec<(RouteDoc, MethodRouter<AppState>)> {
    vec![
        (
            RouteDoc {
                method: Method::POST,
                path: "/v1/auth/wechat",
                summary: "Sign in with a wx.login code",
                body: &WECHAT_BODY,
                success: SESSION,
                errors: &[
                    (400, "WECHAT_CODE_INVALID (40029), WECHAT_CODE_USED (40163)"),
                    (403, "WECHAT_USER_BLOCKED (40226)"),
                    (429, "WECHAT_RATE_LIMITED (45011)"),
                    (502, "WECHAT_ERROR, WECHAT_UNREACHABLE, WECHAT_BAD_RESPONSE"),
                    (503, "WECHAT_BUSY (-1), WECHAT_NOT_CONFIGURED"),
                    (504, "WECHAT_TIMEOUT"),
                ],
                ..ROUTE
            },
            post(auth::wechat),
        ),
        (
            RouteDoc {
                method: Method::POST,
                path: "/v1/auth/dev-login",
                summary: "Sign in with any openid (development only, DEV_LOGIN=true)",
                body: &DEV_LOGIN_BODY,
                success: SESSION,
                errors: &[(404, "NOT_FOUND when dev-login is disabled")],
                ..ROUTE
            },
            post(auth::dev_login),
        ),
        (
            RouteDoc {
                method: Method::POST,
                path: "/v1/auth/refresh",
                summary: "Rotate a refresh token for a new session pair",
                body: &REFRESH_BODY,
                success: SESSION,
                errors: &[(
                    401,
                    "REFRESH_TOKEN_INVALID, REFRESH_TOKEN_REUSED (session revoked), REFRESH_TOKEN_REVOKED, REFRESH_TOKEN_EXPIRED, USER_NOT_FOUND",
                )],
                ..ROUTE
            },
            post(auth::refresh),
        ),
        (
            RouteDoc {
                method: Method::POST,
                path: "/v1/auth/logout",
                summary: "End the session of a refresh token",
                body: &REFRESH_BODY,
                success: (204, "session revoked (also for unknown tokens)", None),
                ..ROUTE
            },
            post(auth::logout),
        ),
        (
            RouteDoc {
                path: "/v1/users/me",
                summary: "The signed-in user",
                authenticated: true,
                success: (200, "the user", Some("User")),
                errors: &[(404, "USER_NOT_FOUND")],
                ..ROUTE
            },
            get(users::me),
        ),
        (
            RouteDoc {
                method: Method::PATCH,
                path: "/v1/users/me",
                summary: "Change the nickname",
                authenticated: true,
                body: &NICKNAME_BODY,
                success: (200, "the user with the new nickname", Some("User")),
                errors: &[
                    (404, "USER_NOT_FOUND"),
                    (422, "NICKNAME_REJECTED (msgSecCheck)"),
                    (
                        502,
                        "WECHAT_ERROR, WECHAT_UNREACHABLE, WECHAT_BAD_RESPONSE (WECHAT_MSG_SEC_CHECK=true)",
                    ),
                    (503, "WECHAT_BUSY (WECHAT_MSG_SEC_CHECK=true)"),
                    (504, "WECHAT_TIMEOUT (WECHAT_MSG_SEC_CHECK=true)"),
                ],
                ..ROUTE
            },
            patch(users::update_me),
        ),
        (
            RouteDoc {
                path: "/v1/games",
                summary: "Own game history, newest first",
                authenticated: true,
                query: PAGE_QUERY,
                success: (200, "one page of history", Some("HistoryPage")),
                ..ROUTE
            },
            get(games::list),
        ),
        (
            RouteDoc {
                path: "/v1/games/{id}",
                summary: "One finished game the caller played in, with every role",
                authenticated: true,
                success: (200, "the game", Some("Game")),
                errors: &[(404, "GAME_NOT_FOUND")],
                ..ROUTE
            },
            get(games::one),
        ),
        (
            RouteDoc {
                path: "/v1/stats/me",
                summary: "Own statistics: games, wins, by side, by role",
                authenticated: true,
                success: (200, "the statistics", Some("Stats")),
                ..ROUTE
            },
            get(games::stats),
        ),
        (
            RouteDoc {
                path: "/v1/realtime",
                summary: "Where and how to connect to the game server",
                authenticated: true,
                success: (
                    200,
                    "how to open the Socket.IO connection",
                    Some("Realtime"),
                ),
                ..ROUTE
            },
            get(realtime::realtime),
        ),
        (
            RouteDoc {
                path: "/v1/openapi.json",
                summary: "This OpenAPI document",
                success: (200, "the OpenAPI 3.1 document", Some("OpenApiDocument")),
                ..ROUTE
            },
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
    axum::Json(openapi::document(&state.config.service.prefix))
}

/// The OpenAPI 3.1 document of every route below `prefix`.
pub fn openapi(prefix: &str) -> Value {
    openapi::document(prefix)
}
