//! The OpenAPI 3.1 document, built from the route table and the field rules: every answer a route can give
//! (its own, plus the common refusals of the body, query, authentication, rate-limit and maintenance layers),
//! the exact rule of every field, and the schema of every body the server sends. schemathesis checks it against
//! a running server (tests/schema_fuzzing.rs).

use std::collections::BTreeMap;

use avalon_game::{Role, WinReason};
use serde_json::{Map, Value, json};

use super::{RouteDoc, games, table};

/// The OpenAPI 3.1 document of every route below `prefix`.
pub fn document(prefix: &str) -> Value {
    let mut paths = Map::new();
    for (route, _) in table() {
        let path = format!("{prefix}{}", route.path);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation(&route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Avalon API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sign-in, sessions, profile and game history of Avalon. Every refusal has the `Error` body with a stable `code`; docs/api.md describes each.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": schemas(),
        }
    })
}

fn operation(route: &RouteDoc) -> Value {
    let mut operation = json!({
        "summary": route.summary,
        "operationId": operation_id(route),
        "responses": responses(route),
    });
    if route.authenticated {
        operation["security"] = json!([{ "bearer": [] }]);
    }
    let mut parameters = Vec::new();
    if route.path.contains("{id}") {
        parameters.push(
            json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }),
        );
    }
    for param in route.query {
        parameters.push(json!({
            "name": param.name,
            "in": "query",
            "required": false,
            "description": param.description,
            "schema": (param.schema)(),
        }));
    }
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    if !route.body.is_empty() {
        let properties: Map<String, Value> = route
            .body
            .iter()
            .map(|rule| (rule.name.to_owned(), rule.schema()))
            .collect();
        let required: Vec<&str> = route.body.iter().map(|rule| rule.name).collect();
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            } } }
        });
    }
    operation
}

fn operation_id(route: &RouteDoc) -> String {
    let path = route
        .path
        .trim_start_matches('/')
        .replace(['/', '-', '.'], "_")
        .replace(['{', '}'], "");
    format!("{}_{path}", route.method.as_str().to_ascii_lowercase())
}

/// Every status the route can answer, each with the codes behind it.
fn responses(route: &RouteDoc) -> Map<String, Value> {
    let mut errors: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let mut add = |status: u16, codes: &str| {
        errors.entry(status).or_default().push(codes.to_owned());
    };
    for rule in route.body {
        add(
            rule.status.as_u16(),
            &format!("{} ({})", rule.code, rule.name),
        );
    }
    for (status, codes) in route.errors {
        add(*status, codes);
    }
    if !route.body.is_empty() {
        add(400, "INVALID_JSON (the body is not JSON)");
        add(413, "PAYLOAD_TOO_LARGE (body above API_BODY_LIMIT)");
        add(
            415,
            "UNSUPPORTED_MEDIA_TYPE (no Content-Type: application/json)",
        );
        add(
            422,
            "INVALID_BODY (not an object, a field missing, unknown or of the wrong type)",
        );
    }
    if !route.query.is_empty() {
        add(
            400,
            "INVALID_QUERY (unknown parameter, or not a number where one is needed, or outside its range)",
        );
        add(400, "INVALID_CURSOR");
    }
    if route.authenticated {
        add(
            401,
            "UNAUTHENTICATED, TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_MALFORMED, TOKEN_WRONG_TYPE",
        );
    }
    add(429, "RATE_LIMITED");
    add(
        503,
        "MAINTENANCE, STORE_UNAVAILABLE, REQUEST_TIMEOUT (each with Retry-After)",
    );
    add(
        500,
        "INTERNAL (a bug), FAULT_INJECTED (FAULT_INJECT_5XX_RATE, never in production)",
    );

    let mut responses = Map::new();
    let (status, description, schema) = route.success;
    let mut success = json!({ "description": description });
    if let Some(schema) = schema {
        success["content"] = json!({ "application/json": { "schema": component(schema) } });
    }
    responses.insert(status.to_string(), success);
    for (status, codes) in errors {
        let mut response = json!({
            "description": codes.join("; "),
            "content": { "application/json": { "schema": component("Error") } },
        });
        if status == 429 {
            response["headers"] = json!({ "Retry-After": {
                "description": "seconds to wait before retrying",
                "required": true,
                "schema": { "type": "string", "pattern": "^[0-9]+$" },
            } });
        }
        if status == 401 && route.authenticated {
            response["headers"] = json!({ "WWW-Authenticate": {
                "description": "the scheme to authenticate with",
                "required": true,
                "schema": { "type": "string", "const": "Bearer" },
            } });
        }
        responses.insert(status.to_string(), response);
    }
    responses
}

fn component(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn names<T: serde::Serialize>(values: impl IntoIterator<Item = T>) -> Vec<Value> {
    let mut names: Vec<Value> = values
        .into_iter()
        .filter_map(|value| serde_json::to_value(value).ok())
        .collect();
    names.dedup();
    names
}

/// Objects with exactly these properties, all required.
fn object(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default();
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

fn schemas() -> Value {
    let count = json!({ "type": "integer", "minimum": 0 });
    let millis = json!({ "type": "integer", "minimum": 0, "description": "milliseconds since the Unix epoch" });
    let role = json!({ "enum": names(Role::ALL) });
    let side = json!({ "enum": names(Role::ALL.map(Role::side)) });
    let reason = json!({ "enum": names([
        WinReason::MerlinSurvived,
        WinReason::MerlinAssassinated,
        WinReason::ThreeQuestsFailed,
        WinReason::FiveTeamsRejected,
    ]) });
    let tally = object(json!({ "played": count, "wins": count }));
    json!({
        "Error": object(json!({
            "error": object(json!({
                "code": { "type": "string", "pattern": "^[A-Z][A-Z0-9_]*$", "description": "stable; branch on it" },
                "message": { "type": "string", "description": "for people" },
                "request_id": {
                    "type": ["string", "null"],
                    "description": "also in the X-Request-Id header and the server's logs",
                },
            })),
        })),
        "User": object(json!({
            "id": { "type": "string" },
            "nickname": { "type": "string" },
            "created_at_ms": millis,
        })),
        "Session": object(json!({
            "access_token": { "type": "string", "description": "HS256 JWT, also accepted by the game server" },
            "token_type": { "const": "Bearer" },
            "expires_in": { "type": "integer", "minimum": 1, "description": "seconds" },
            "refresh_token": { "type": "string", "pattern": crate::rules::REFRESH_TOKEN.pattern },
            "refresh_expires_in": { "type": "integer", "minimum": 1, "description": "seconds" },
            "user": component("User"),
        })),
        "HistoryItem": object(json!({
            "game_id": { "type": "string" },
            "room_code": { "type": "string" },
            "finished_at_ms": millis,
            "duration_ms": count,
            "players": { "type": "integer", "minimum": avalon_game::MIN_PLAYERS, "maximum": avalon_game::MAX_PLAYERS },
            "winner": side,
            "reason": reason,
            "role": role,
            "side": side,
            "won": { "type": "boolean" },
        })),
        "HistoryPage": object(json!({
            "games": { "type": "array", "items": component("HistoryItem"), "maxItems": games::MAX_PAGE },
            "next_cursor": {
                "type": ["string", "null"],
                "pattern": crate::rules::CURSOR.pattern,
                "description": "pass as `cursor` for the next page; null on the last page",
            },
        })),
        "Game": object(json!({
            "game_id": { "type": "string" },
            "room_code": { "type": "string" },
            "player_ids": { "type": "array", "items": { "type": "string" } },
            "finished_at_ms": millis,
            "summary": { "type": "object", "description": "the game server's GameSummary: seed, options, players with roles, outcome, quests, proposals, Lady of the Lake, assassination, times" },
        })),
        "Tally": tally,
        "Stats": object(json!({
            "games_played": count,
            "wins": count,
            "losses": count,
            "win_rate": { "type": "number", "minimum": 0, "maximum": 1 },
            "by_side": { "type": "object", "additionalProperties": component("Tally") },
            "by_role": { "type": "object", "additionalProperties": component("Tally") },
        })),
        "Realtime": object(json!({
            "path": { "const": "/socket.io/" },
            "transports": { "type": "array", "items": { "enum": ["websocket", "polling"] } },
            "auth": object(json!({ "token": { "type": "string" } })),
            "token_expires_at": { "type": "integer", "minimum": 0, "description": "seconds since the Unix epoch" },
        })),
        "OpenApiDocument": { "type": "object", "required": ["openapi", "paths"] },
    })
}
