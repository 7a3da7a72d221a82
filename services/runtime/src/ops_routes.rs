//! Routes every service serves beside its own: health, metrics and (development only) debug endpoints.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::build_info;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::registry::RegistryStore;

#[derive(Clone)]
struct OpsState {
    service: &'static str,
    health: Health,
    metrics: Metrics,
}

pub fn router(
    service: &'static str,
    health: Health,
    metrics: Metrics,
    // `Some` turns the development-only debug endpoints on; they include this registry's listing.
    debug_registry: Option<RegistryStore>,
) -> Router {
    let mut router = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/health", get(health_alias))
        .route("/metrics", get(metrics_text));
    if let Some(registry) = debug_registry {
        router = router
            .route("/debug/sleep", get(debug_sleep))
            .route("/debug/stall", post(debug_stall))
            .route(
                "/debug/instances",
                get(move || debug_instances(registry.clone())),
            );
    }
    router.with_state(OpsState {
        service,
        health,
        metrics,
    })
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn livez(State(state): State<OpsState>) -> Response {
    no_store(
        Json(json!({
            "status": "ok",
            "service": state.service,
            "version": build_info::VERSION,
            "revision": build_info::REVISION,
            "uptime_seconds": state.health.uptime().as_secs(),
        }))
        .into_response(),
    )
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let report = state.health.readiness().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store((status, Json(report)).into_response())
}

/// The original design's `/health`: the readiness report plus a timestamp and uptime.
async fn health_alias(State(state): State<OpsState>) -> Response {
    let report = state.health.readiness().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = json!({
        "status": report.status,
        "service": state.service,
        "timestamp": timestamp,
        "uptime": state.health.uptime().as_secs(),
        "draining": report.draining,
        "checks": report.checks,
    });
    no_store((status, Json(body)).into_response())
}

async fn metrics_text(State(state): State<OpsState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// The instance registry this process writes to (Redis: every instance of the stack; in-process: this
/// one), for `cargo xtask dev`, where no `cargo xtask instances` can reach it.
async fn debug_instances(registry: RegistryStore) -> Response {
    match registry.list().await {
        Ok(records) => no_store(Json(json!({ "instances": records })).into_response()),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct SleepQuery {
    ms: u64,
}

/// An in-flight request of known length, for the graceful-shutdown test.
async fn debug_sleep(Query(query): Query<SleepQuery>) -> Response {
    let ms = query.ms.min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({ "slept_ms": ms })).into_response()
}

#[derive(serde::Deserialize)]
struct StallQuery {
    secs: u64,
}

/// Blocks the worker thread that runs it (deliberately wrong async code) so the watchdog test can stall a
/// runtime started with TOKIO_WORKER_THREADS=1.
async fn debug_stall(Query(query): Query<StallQuery>) -> Response {
    let secs = query.secs.min(600);
    tracing::warn!(secs, "debug: stalling this runtime worker on purpose");
    std::thread::sleep(Duration::from_secs(secs));
    Json(json!({ "stalled_secs": secs })).into_response()
}
