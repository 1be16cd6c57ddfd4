//! Prometheus metrics (SPEC section 5), exposed on the plain probe listener.

use std::sync::OnceLock;

use crate::engine::Action;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub webhook: &'static str,
    pub kind: String,
    pub operation: &'static str,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub rule: &'static str,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub what: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterKindLabels {
    pub cluster: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<WebhookLabels, Histogram>,
    findings: Family<FindingLabels, Counter>,
    /// Each rule's finding counters (by action), taken from `findings` at a rule's first
    /// finding of that action and kept: counting a finding is then one atomic add, not the
    /// family's lock and a hash of its labels (44-55 ns alone, about 315 ns with two threads
    /// counting at once, docs/performance.md item 37). Sorted by rule ID.
    finding_counters: Vec<(&'static str, [OnceLock<Counter>; Action::ALL.len()])>,
    pub reloads: Family<ReloadLabels, Counter>,
    pub skips: Family<RuleLabels, Counter>,
    pub rejected: Family<RuleLabels, Counter>,
    pub in_flight: Gauge,
    pub world_synced: Gauge,
    pub world_objects: Family<KindLabels, Gauge>,
    /// When the serving certificate in use expires (Unix seconds), for expiry alerts.
    pub certificate_expiry: Gauge,
    /// 1 while a discovered remote cluster answers, 0 while its last known state is used.
    pub remote_up: Family<ClusterLabels, Gauge>,
    /// Full lists of a remote's kind by discovery's watches: one each at the start, then only
    /// when a watch has to start over (a resource version the remote no longer has).
    pub remote_lists: Family<ClusterKindLabels, Counter>,
    /// Failover entries re-rendered by `serve --reconcile`, by result.
    pub reconciles: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "failover_guard_admission_requests",
            "Admission reviews answered, by webhook, kind, operation and decision",
            requests.clone(),
        );
        let duration = Family::<WebhookLabels, Histogram>::new_with_constructor(|| {
            // From 100 µs up to about 3.3 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register(
            "failover_guard_admission_duration_seconds",
            "Time to answer one admission review, from body received to response encoded",
            duration.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "failover_guard_findings",
            "Rule findings, by rule and action",
            findings.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "failover_guard_reloads",
            "Reloads of the configuration and the certificate, by result",
            reloads.clone(),
        );
        let skips = Family::<RuleLabels, Counter>::default();
        registry.register(
            "failover_guard_skips",
            "Rules skipped through the failover-guard.io/skip annotation",
            skips.clone(),
        );
        let rejected = Family::<RuleLabels, Counter>::default();
        registry.register(
            "failover_guard_bad_requests",
            "Request bodies rejected with HTTP 4xx or shed under load, by reason",
            rejected.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "failover_guard_admission_in_flight",
            "Admission reviews being answered now",
            in_flight.clone(),
        );
        let world_synced = Gauge::default();
        registry.register(
            "failover_guard_world_synced",
            "1 once every watched kind has been listed; cross-object rules are silent before",
            world_synced.clone(),
        );
        let world_objects = Family::<KindLabels, Gauge>::default();
        registry.register(
            "failover_guard_world_objects",
            "Objects in the watch cache, by kind",
            world_objects.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "failover_guard_certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires, in seconds since the Unix epoch",
            certificate_expiry.clone(),
        );
        let remote_up = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "failover_guard_remote_up",
            "1 while a discovered remote cluster answers; 0 while its last known state is used",
            remote_up.clone(),
        );
        let remote_lists = Family::<ClusterKindLabels, Counter>::default();
        registry.register(
            "failover_guard_remote_lists",
            "Full lists of a remote cluster's kind by discovery: one at the start, then one per watch that starts over",
            remote_lists.clone(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "failover_guard_reconciles",
            "Failover entries re-rendered by serve --reconcile, by result (applied, unchanged, error)",
            reconciles.clone(),
        );
        let mut finding_counters: Vec<_> = crate::rules::RULES
            .iter()
            .map(|rule| (rule.id, Default::default()))
            .collect();
        finding_counters.sort_unstable_by_key(|(id, _)| *id);
        Self {
            finding_counters,
            remote_up,
            remote_lists,
            reconciles,
            certificate_expiry,
            world_synced,
            world_objects,
            registry,
            requests,
            duration,
            findings,
            reloads,
            skips,
            rejected,
            in_flight,
        }
    }

    /// Counts a finding of `rule` with its action.
    pub fn finding(&self, rule: &'static str, action: Action) {
        let kept = self
            .finding_counters
            .binary_search_by_key(&rule, |(id, _)| id)
            .ok()
            .and_then(|r| self.finding_counters.get(r)?.1.get(action as usize));
        let labels = || FindingLabels {
            rule,
            action: action.as_str(),
        };
        match kept {
            Some(kept) => kept
                .get_or_init(|| self.findings.get_or_create(&labels()).clone())
                .inc(),
            None => self.findings.get_or_create(&labels()).inc(),
        };
    }

    /// Counts a reload attempt.
    pub fn reload(&self, what: &'static str, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                what,
                result: if ok { "success" } else { "error" },
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_counted_by_rule_and_action_once_each() {
        // The counters are indexed by `action as usize`.
        assert!(
            Action::ALL
                .iter()
                .enumerate()
                .all(|(i, a)| *a as usize == i)
        );
        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("failover_guard_findings_total{"));
        metrics.finding("FG208", Action::Mutate);
        metrics.finding("FG208", Action::Mutate);
        metrics.finding("FG208", Action::Deny);
        metrics.finding("FG101", Action::Warn);
        // A rule the table does not know is still counted, through the family.
        metrics.finding("FG999", Action::Deny);
        let text = metrics.encode();
        for line in [
            r#"failover_guard_findings_total{rule="FG208",action="mutate"} 2"#,
            r#"failover_guard_findings_total{rule="FG208",action="deny"} 1"#,
            r#"failover_guard_findings_total{rule="FG101",action="warn"} 1"#,
            r#"failover_guard_findings_total{rule="FG999",action="deny"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        // Only the series that were counted are exported.
        assert_eq!(text.matches("failover_guard_findings_total{").count(), 4);
    }
}
