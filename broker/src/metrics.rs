//! Prometheus metrics (`/metrics`, OpenMetrics text).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~4 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The broker's metrics.
pub struct Metrics {
    registry: Registry,
    /// Tokens issued, by evidence kind and how (attest, refresh).
    pub issued: Family<Labels, Counter>,
    /// Attestations denied, by reason code.
    pub denied: Family<Labels, Counter>,
    /// HTTP requests, by route and status.
    pub requests: Family<Labels, Counter>,
    /// HTTP latency in seconds, by route.
    pub latency: HistogramFamily,
    /// Tokens issued and neither expired nor revoked (set at scrape time).
    pub active_tokens: Gauge,
    /// Connections closed on arrival because `[limits] max_connections` were open.
    pub connections_refused: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("attest_broker");
        let issued = Family::<Labels, Counter>::default();
        let denied = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        let active_tokens = Gauge::default();
        let connections_refused = Counter::default();
        registry.register("tokens_issued", "Tokens issued", issued.clone());
        registry.register(
            "attestations_denied",
            "Attestations denied, by reason",
            denied.clone(),
        );
        registry.register("http_requests", "HTTP requests", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register(
            "active_tokens",
            "Tokens neither expired nor revoked",
            active_tokens.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed on arrival: max_connections were open",
            connections_refused.clone(),
        );
        Metrics {
            registry,
            issued,
            denied,
            requests,
            latency,
            active_tokens,
            connections_refused,
        }
    }
}

impl Metrics {
    /// Counts one issued token.
    pub fn issued(&self, tee: &str, how: &str) {
        self.issued
            .get_or_create(&vec![
                ("tee".into(), tee.into()),
                ("how".into(), how.into()),
            ])
            .inc();
    }

    /// Counts one denial per reason.
    pub fn denied(&self, reasons: &[String]) {
        for reason in reasons {
            self.denied
                .get_or_create(&vec![("reason".into(), reason.clone())])
                .inc();
        }
    }

    /// Records one request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("route".into(), route.into()),
                ("status".into(), status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("route".into(), route.into())])
            .observe(seconds);
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
