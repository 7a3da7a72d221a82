//! Prometheus metrics shared by both services; each service registers its own beside these.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::build_info;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    config_reloads: IntCounterVec,
    draining: IntGauge,
    in_flight: IntGauge,
}

impl Metrics {
    pub fn new(service: &str) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Build of the running binary; always 1"),
            &["service", "version", "revision"],
        )?;
        build_info
            .with_label_values(&[service, build_info::VERSION, build_info::REVISION])
            .set(1);
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new("config_reloads_total", "Configuration reloads, by result"),
            &["result"],
        )?;
        let draining = IntGauge::new(
            "shutdown_draining",
            "1 while the process drains before exit",
        )?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        let in_flight = IntGauge::new(
            "http_requests_in_flight",
            "HTTP requests being answered right now (the API's `connections` in the instance registry)",
        )?;
        registry.register(Box::new(draining.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            config_reloads,
            draining,
            in_flight,
        })
    }

    /// Where services register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request as in flight until the returned guard is dropped (answered or cancelled).
    pub fn request_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub fn requests_in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    pub fn observe_reload(&self, result: &str) {
        self.config_reloads.with_label_values(&[result]).inc();
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.set(i64::from(draining));
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|err| prometheus::Error::Msg(err.to_string()))
    }
}

/// One request in flight; see [`Metrics::request_started`].
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
