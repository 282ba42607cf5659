//! Prometheus metrics (prefix `clodo_`). Labels come from closed sets only.

use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Operator metrics. The Cloudflare client registers its own request metrics on the same registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub reconcile_total: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    /// `clodo_reconcile_errors_total{controller,reason}`: failed passes by the bounded reason of
    /// their typed error (passes skipped as stale or after leadership was lost are not failures).
    pub reconcile_errors_total: IntCounterVec,
    pub deployments_total: IntCounterVec,
    pub rollbacks_total: IntCounterVec,
    pub migrations_applied_total: IntCounterVec,
    pub production_tests_total: IntCounterVec,
    pub production_test_duration: HistogramVec,
    pub resources_ready: IntGaugeVec,
    /// `clodo_resync_effective_period_seconds`: the resync period after stretching it to the
    /// resync share of the budget (the longest over Customers).
    pub resync_effective_period: Gauge,
}

impl Metrics {
    /// Create and register every series on a fresh registry.
    pub fn new() -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new();
        let reconcile_total = IntCounterVec::new(
            Opts::new("clodo_reconcile_total", "Reconcile passes by controller and result"),
            &["controller", "result"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("clodo_reconcile_duration_seconds", "Duration of reconcile passes")
                .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["controller", "result"],
        )?;
        let reconcile_errors_total = IntCounterVec::new(
            Opts::new("clodo_reconcile_errors_total", "Failed reconcile passes by controller and error reason"),
            &["controller", "reason"],
        )?;
        let deployments_total = IntCounterVec::new(
            Opts::new("clodo_deployments_total", "Worker versions deployed by strategy"),
            &["strategy"],
        )?;
        let rollbacks_total =
            IntCounterVec::new(Opts::new("clodo_rollbacks_total", "Rollbacks by trigger"), &["reason"])?;
        let migrations_applied_total = IntCounterVec::new(
            Opts::new("clodo_migrations_applied_total", "D1 migrations applied by result"),
            &["result"],
        )?;
        let production_tests_total = IntCounterVec::new(
            Opts::new("clodo_production_tests_total", "Production test checks by suite and result"),
            &["suite", "result"],
        )?;
        let production_test_duration = HistogramVec::new(
            HistogramOpts::new("clodo_production_test_duration_seconds", "Duration of production test checks")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["suite"],
        )?;
        let resources_ready =
            IntGaugeVec::new(Opts::new("clodo_resources_ready", "Resources with Ready=True by kind"), &["kind"])?;
        let resync_effective_period = Gauge::new(
            "clodo_resync_effective_period_seconds",
            "CloudflareService resync period after stretching it to the resync share of the token's budget (longest over Customers)",
        )?;
        for c in [
            Box::new(reconcile_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_duration.clone()),
            Box::new(reconcile_errors_total.clone()),
            Box::new(deployments_total.clone()),
            Box::new(rollbacks_total.clone()),
            Box::new(migrations_applied_total.clone()),
            Box::new(production_tests_total.clone()),
            Box::new(production_test_duration.clone()),
            Box::new(resources_ready.clone()),
            Box::new(resync_effective_period.clone()),
        ] {
            registry.register(c)?;
        }
        for kind in ["CloudflareService", "Customer", "Portfolio"] {
            resources_ready.with_label_values(&[kind]).set(0);
        }
        Ok(Arc::new(Self {
            registry,
            reconcile_total,
            reconcile_duration,
            reconcile_errors_total,
            deployments_total,
            rollbacks_total,
            migrations_applied_total,
            production_tests_total,
            production_test_duration,
            resources_ready,
            resync_effective_period,
        }))
    }

    /// Prometheus text exposition of every registered series.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_series() {
        let m = Metrics::new().unwrap();
        m.reconcile_total.with_label_values(&["service", "ok"]).inc();
        m.deployments_total.with_label_values(&["Immediate"]).inc();
        m.reconcile_errors_total.with_label_values(&["customer", "TokenInvalid"]).inc();
        let text = m.render();
        assert!(text.contains("clodo_reconcile_total{controller=\"service\",result=\"ok\"} 1"));
        assert!(text.contains("clodo_resources_ready{kind=\"Customer\"} 0"));
        assert!(text.contains("clodo_deployments_total"));
        assert!(text.contains("clodo_reconcile_errors_total{controller=\"customer\",reason=\"TokenInvalid\"} 1"));
    }
}
