//! Wiring: stores, Redis, background tasks, readiness checks and the layered router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, header};
use axum::middleware;
use tower_http::cors::{AllowOrigin, CorsLayer};

use avalon_runtime::ServiceContext;
use avalon_runtime::config::ApiSettings;

use crate::maintenance::Maintenance;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;
use crate::store::{EmbeddedStore, MongoStore, SharedStore};
use crate::wechat::WechatClient;
use crate::{gate, ingest, redis_conn, routes};

/// Builds the API router for `run_service`.
pub async fn build(context: ServiceContext<ApiSettings>) -> Result<Router, String> {
    let config = Arc::clone(&context.config);
    let store = open_store(&context).await?;
    let maintenance = Arc::new(Maintenance::default());
    let consumer = consumer_name();

    let limiter = match &config.common.redis {
        Some(settings) => {
            let redis = redis_conn::connect(settings, Duration::from_secs(2)).await?;
            let ping = redis.clone();
            context.health.register("redis", move || {
                let mut ping = ping.clone();
                async move {
                    redis::cmd("PING")
                        .query_async::<String>(&mut ping)
                        .await
                        .map(|_| ())
                        .map_err(|err| err.to_string())
                }
            });
            tokio::spawn(Arc::clone(&maintenance).poll(redis.clone(), context.lifecycle.clone()));
            // The stream reader blocks; give it its own connection so it never delays a rate-limit hit.
            let stream = redis_conn::connect(settings, Duration::from_secs(10)).await?;
            tokio::spawn(ingest::consume_stream(
                Arc::clone(&store),
                stream,
                consumer,
                context.lifecycle.clone(),
            ));
            RateLimiter::redis(redis)
        }
        None => {
            let spool = config
                .common
                .data_dir
                .join(avalon_game::FINISHED_GAMES_SPOOL);
            tokio::spawn(ingest::tail_spool(
                Arc::clone(&store),
                spool,
                context.lifecycle.clone(),
            ));
            RateLimiter::memory()
        }
    };

    let state = AppState {
        wechat: Arc::new(WechatClient::new(config.service.wechat.clone())?),
        config: Arc::clone(&config),
        live: context.live.clone(),
        store,
        limiter: Arc::new(limiter),
        maintenance,
    };
    Ok(router(state))
}

/// The API routes below API_PREFIX with their layers (outermost last).
pub fn router(state: AppState) -> Router {
    let prefix = state.config.service.prefix.clone();
    let body_limit = state.config.service.body_limit;
    let cors = cors(&state.config.service.cors_allowed_origins);
    let fault_rate = state.config.service.fault_inject_5xx_rate;
    if fault_rate > 0.0 {
        tracing::warn!(
            rate = fault_rate,
            "FAULT_INJECT_5XX_RATE is set: this instance answers that share of API requests with 500 on purpose"
        );
    }
    let api = routes::router()
        .fallback(gate::not_found)
        .method_not_allowed_fallback(gate::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::fault_injection,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::admission,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate::deadline,
        ))
        .layer(middleware::from_fn(gate::request_scope))
        .with_state(state);
    let api = match cors {
        Some(cors) => api.layer(cors),
        None => api,
    };
    Router::new()
        .nest(&prefix, api)
        .fallback(gate::not_found)
        .layer(middleware::from_fn(gate::request_scope))
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins = origins
        .iter()
        .filter_map(|origin| origin.parse().ok())
        .collect::<Vec<_>>();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

async fn open_store(context: &ServiceContext<ApiSettings>) -> Result<SharedStore, String> {
    let config = &context.config;
    let store: SharedStore = match &config.service.mongodb_uri {
        Some(uri) => {
            let mongo = MongoStore::connect(uri.expose(), &config.service.mongodb_pool)
                .await
                .map_err(|err| format!("MongoDB: {err}"))?;
            // Indexes in the background: a MongoDB that is still starting must not stop the API from
            // starting (readiness reports it until it answers).
            let indexing = mongo.clone();
            tokio::spawn(async move {
                loop {
                    match indexing.create_indexes().await {
                        Ok(()) => {
                            tracing::info!("MongoDB indexes in place");
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot create MongoDB indexes yet; retrying");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            });
            Arc::new(mongo)
        }
        None => {
            let embedded = EmbeddedStore::open(&config.common.data_dir)
                .map_err(|err| format!("embedded store: {err}"))?;
            tracing::info!(dir = %config.common.data_dir.display(), "using the embedded store (development)");
            Arc::new(embedded)
        }
    };
    let checked = Arc::clone(&store);
    let name = if config.service.mongodb_uri.is_some() {
        "mongodb"
    } else {
        "store"
    };
    context.health.register(name, move || {
        let checked = Arc::clone(&checked);
        async move { checked.ping().await.map_err(|err| err.to_string()) }
    });
    Ok(store)
}

/// A consumer name unique to this instance and stable across its restarts where the host name is.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "api".to_owned());
    format!("{host}-{}", std::process::id())
}
