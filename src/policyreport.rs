//! `wgpolicyk8s.io/v1alpha2` PolicyReports from a report of findings: one report per
//! namespace, one result per finding, the format Kyverno, the Kubewarden audit scanner, Trivy
//! operator and the Policy Reporter UI share. Every object failover-guard judges is
//! namespaced, so no ClusterPolicyReport is needed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{engine::Action, report::Report};

/// The apiVersion of a judged kind, for the results' resource references.
fn api_version(kind: &str) -> &'static str {
    match kind {
        "Service" => "v1",
        "AuthorizationPolicy" => "security.istio.io/v1",
        _ => "networking.istio.io/v1",
    }
}

/// PolicyReports for every namespace with findings, as Kubernetes objects. `now` is the
/// results' timestamp in seconds since the epoch.
pub fn reports(report: &Report, now: u64) -> Vec<Value> {
    let mut by_namespace: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut summaries: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for finding in &report.findings {
        // deny: it breaks failover (fail); warn: it may (warn); mutate: the webhook fixes it
        // on admission, so the object as stored passes.
        let (result, severity) = match finding.action {
            Action::Deny => ("fail", "high"),
            Action::Warn => ("warn", "medium"),
            Action::Mutate => ("pass", "info"),
        };
        let summary = summaries.entry(&finding.namespace).or_default();
        match result {
            "fail" => summary.1 += 1,
            "warn" => summary.2 += 1,
            _ => summary.0 += 1,
        }
        by_namespace
            .entry(&finding.namespace)
            .or_default()
            .push(json!({
                "policy": "failover-guard",
                "rule": finding.rule,
                "result": result,
                "severity": severity,
                "category": "Istio locality failover",
                "source": "failover-guard",
                "scored": true,
                "message": finding.message,
                "timestamp": {"seconds": now, "nanos": 0},
                "properties": {"path": finding.path},
                "resources": [{
                    "apiVersion": api_version(finding.kind),
                    "kind": finding.kind,
                    "namespace": finding.namespace,
                    "name": finding.name,
                }],
            }));
    }
    by_namespace
        .into_iter()
        .map(|(namespace, results)| {
            let counts = summaries.get(namespace).copied().unwrap_or_default();
            policy_report(namespace, results, counts)
        })
        .collect()
}

/// A report with no results, for a namespace whose findings are gone.
pub fn empty(namespace: &str) -> Value {
    policy_report(namespace, Vec::new(), (0, 0, 0))
}

/// The PolicyReport object of one namespace; `(pass, fail, warn)` are the summary counts.
fn policy_report(
    namespace: &str,
    results: Vec<Value>,
    (pass, fail, warn): (u64, u64, u64),
) -> Value {
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": "failover-guard",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "failover-guard"},
        },
        "summary": {"pass": pass, "fail": fail, "warn": warn, "error": 0, "skip": 0},
        "results": results,
    })
}

/// The reports as a YAML stream, ready for `kubectl apply -f -`.
pub fn yaml(reports: &[Value]) -> String {
    reports
        .iter()
        .map(|r| serde_yaml_ng::to_string(r).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}
