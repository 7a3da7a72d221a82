//! What stands in front of every API route: the request id for error bodies, a deadline, maintenance mode,
//! rate limits and the deliberate faults of FAULT_INJECT_5XX_RATE. Ops routes (/livez, /readyz, /health,
//! /metrics) are served by the runtime outside this.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::client_ip;
use crate::error::{ApiError, REQUEST_ID};
use crate::extract::Credentials;
use crate::ratelimit::Decision;
use crate::state::AppState;

/// The client IP the gate settled on, for handlers that want it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Makes the request id available to [`ApiError`] responses.
pub async fn request_scope(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    REQUEST_ID.scope(id, next.run(request)).await
}

/// Answers 503 REQUEST_TIMEOUT when a request runs past API_REQUEST_TIMEOUT.
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config.service.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "REQUEST_TIMEOUT",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .retry_after(1)
        .into_response(),
    }
}

/// Answers FAULT_INJECT_5XX_RATE of the API's requests with 500, on purpose: a canary built with it must be
/// caught and aborted by the canary analysis. Ops routes are outside this gate, so the instance stays
/// healthy and gets traffic, as a subtly broken release would.
pub async fn fault_injection(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let rate = state.config.service.fault_inject_5xx_rate;
    if rate > 0.0 && rand::random::<f64>() < rate {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "FAULT_INJECTED",
            format!("answered 500 on purpose (FAULT_INJECT_5XX_RATE={rate})"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Maintenance, then the per-IP and per-user limits.
pub async fn admission(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
    let ip = client_ip::resolve(peer, &parts.headers, &state.config.service.trusted_proxies);
    let credentials = Credentials::from_parts(&parts, &state);
    let user_id = match &credentials {
        Credentials::Valid(claims) => Some(claims.sub.clone()),
        _ => None,
    };
    parts.extensions.insert(ClientIp(ip));
    parts.extensions.insert(credentials);
    let live = state.live.get();

    if let Some(active) = state.maintenance.active(&live) {
        let allow = &state.config.service.admin_allowlist;
        let admin = allow.ips.iter().any(|block| block.contains(ip))
            || user_id
                .as_ref()
                .is_some_and(|id| allow.user_ids.contains(id));
        if !admin {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "MAINTENANCE",
                active.message,
            )
            .retry_after(active.retry_after)
            .into_response();
        }
    }

    let by_ip = state
        .limiter
        .hit(&format!("ip:{ip}"), live.rate_limit_ip)
        .await;
    let by_user = match &user_id {
        Some(id) => Some(
            state
                .limiter
                .hit(&format!("user:{id}"), live.rate_limit_user)
                .await,
        ),
        None => None,
    };
    // Report the tighter of the two budgets.
    let shown = match by_user {
        Some(user) if !user.allowed || (by_ip.allowed && user.remaining < by_ip.remaining) => user,
        _ => by_ip,
    };
    if !shown.allowed {
        let scope = if by_user.is_some_and(|user| !user.allowed) {
            "user"
        } else {
            "IP address"
        };
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("too many requests from this {scope}; slow down"),
        )
        .retry_after(shown.reset_secs())
        .into_response();
        add_rate_headers(&mut response, &shown);
        return response;
    }
    let mut response = next.run(Request::from_parts(parts, body)).await;
    add_rate_headers(&mut response, &shown);
    response
}

fn add_rate_headers(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", u64::from(decision.limit)),
        ("ratelimit-remaining", u64::from(decision.remaining)),
        ("ratelimit-reset", decision.reset_secs()),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such API route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this route does not accept that method",
    )
}
