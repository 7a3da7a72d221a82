//! The API's own routes, all below `API_PREFIX`.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde_json::json;

use avalon_runtime::ServiceContext;
use avalon_runtime::config::ApiSettings;

pub fn router(context: &ServiceContext<ApiSettings>) -> Router {
    let prefix = context.config.service.prefix.clone();
    Router::new().nest(&prefix, Router::new().fallback(not_found))
}

/// JSON for unknown API paths, so clients always get a machine-readable error.
async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": { "code": "NOT_FOUND", "message": "no such API route" } })),
    )
}
