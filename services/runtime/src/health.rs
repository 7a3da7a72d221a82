//! Liveness and readiness. Liveness never looks at dependencies (a Redis outage must not restart every
//! instance); readiness runs the checks each service registers, each with its own timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lifecycle::Lifecycle;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

#[derive(Clone)]
pub struct Health {
    checks: Arc<RwLock<Vec<(String, CheckFn)>>>,
    lifecycle: Lifecycle,
    timeout: Duration,
    started: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub status: &'static str,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    pub status: &'static str,
    pub draining: bool,
    pub checks: BTreeMap<String, CheckReport>,
}

impl ReadinessReport {
    pub fn is_ready(&self) -> bool {
        self.status == "ok"
    }
}

impl Health {
    pub fn new(lifecycle: Lifecycle, timeout: Duration) -> Health {
        Health {
            checks: Arc::default(),
            lifecycle,
            timeout,
            started: Instant::now(),
        }
    }

    /// Registers a dependency check for `/readyz`, e.g. a Redis `PING`.
    pub fn register<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: CheckFn = Arc::new(move || Box::pin(check()));
        if let Ok(mut checks) = self.checks.write() {
            checks.push((name.to_owned(), check));
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn readiness(&self) -> ReadinessReport {
        let checks: Vec<(String, CheckFn)> = self
            .checks
            .read()
            .map(|checks| checks.clone())
            .unwrap_or_default();
        let mut running = tokio::task::JoinSet::new();
        for (name, check) in checks {
            let timeout = self.timeout;
            running.spawn(async move {
                let started = Instant::now();
                let outcome = tokio::time::timeout(timeout, check()).await;
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                let error = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
                };
                let status = if error.is_none() { "ok" } else { "fail" };
                (
                    name,
                    CheckReport {
                        status,
                        latency_ms,
                        error,
                    },
                )
            });
        }
        let mut reports = BTreeMap::new();
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((name, report)) => {
                    reports.insert(name, report);
                }
                Err(err) => {
                    let report = CheckReport {
                        status: "fail",
                        latency_ms: 0.0,
                        error: Some(err.to_string()),
                    };
                    reports.insert("check_panicked".to_owned(), report);
                }
            }
        }
        let draining = self.lifecycle.is_draining();
        let all_ok = reports.values().all(|report| report.status == "ok");
        let status = match (draining, all_ok) {
            (true, _) => "draining",
            (false, true) => "ok",
            (false, false) => "fail",
        };
        ReadinessReport {
            status,
            draining,
            checks: reports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_reports_each_check_and_times_out_slow_ones() {
        let lifecycle = Lifecycle::new();
        let health = Health::new(lifecycle.clone(), Duration::from_millis(100));
        health.register("fast", || async { Ok(()) });
        health.register("broken", || async { Err("connection refused".to_owned()) });
        health.register("slow", || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        });
        let started = Instant::now();
        let report = health.readiness().await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "checks run concurrently with a timeout"
        );
        assert_eq!(report.status, "fail");
        assert_eq!(report.checks["fast"].status, "ok");
        assert_eq!(
            report.checks["broken"].error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(
            report.checks["slow"].error.as_deref(),
            Some("no answer within 100 ms")
        );
    }

    #[tokio::test]
    async fn draining_is_not_ready_even_when_every_check_passes() {
        let lifecycle = Lifecycle::new();
        let health = Health::new(lifecycle.clone(), Duration::from_millis(100));
        health.register("fast", || async { Ok(()) });
        assert!(health.readiness().await.is_ready());
        lifecycle.begin_draining();
        let report = health.readiness().await;
        assert!(!report.is_ready());
        assert_eq!(report.status, "draining");
    }
}
