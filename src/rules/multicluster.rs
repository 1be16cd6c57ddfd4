//! Rules about where an object lives in a multicluster mesh (FG603).
//!
//! In primary-remote, the primary's istiod reads Istio configuration only from its own
//! cluster; an object applied in a remote cluster is stored there and never read.

use serde_json::Value;

use super::{Context, Issue, Issues, Rule};
use crate::{config::Mode, object::Kind};

// === FG603 config-in-remote-cluster ===

/// FG603: Istio configuration applied in a primary-remote remote cluster.
pub static FG603: Rule = Rule {
    id: "FG603",
    name: "config-in-remote-cluster",
    kinds: &[
        Kind::DestinationRule,
        Kind::ServiceEntry,
        Kind::AuthorizationPolicy,
        Kind::PeerAuthentication,
        Kind::Gateway,
    ],
    default: Mode::Warn,
    can_mutate: false,
    needs_world: false,
    guards_istiod: false,
    summary: "With multicluster.model primaryRemote and role remote, an Istio configuration \
              object (DestinationRule, ServiceEntry, AuthorizationPolicy, PeerAuthentication, \
              Gateway) is a warning that says to apply it in the primary; the other rules do not \
              judge it here.",
    istio: "In primary-remote, the remote cluster has no istiod: its proxies are served by the \
            primary's, whose config controller watches Istio CRDs in its own (config) cluster \
            only (pilot/pkg/bootstrap/configcontroller.go initK8SConfigStore; remote secrets \
            add Services, endpoints and Pods of a remote through the kube registry, never its \
            Istio config). An object applied in the remote is accepted by the API server and \
            has no effect: no outlier detection, no failover, no policy.",
    example_bad: "# in a primary-remote remote cluster\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    example_fixed: "# the same object, applied in the primary (config) cluster\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 5, maxEjectionPercent: 100}\n",
    check: check_fg603,
};

fn check_fg603(_object: &mut Value, cx: &Context<'_>, _fix: bool, out: &mut Issues) {
    if cx.config.multicluster.istiod_reads_here(cx.subject.kind) {
        return;
    }
    out.push(
        Issue::warn(
            "metadata.name",
            format!(
                "{} {}/{} is in a primary-remote remote cluster, where istiod reads no Istio configuration",
                cx.subject.kind.as_str(),
                cx.subject.namespace,
                cx.subject.name
            ),
        )
        .because("the primary's istiod watches Istio objects in its own cluster only, so this one has no effect on any proxy")
        .fix("apply it in the primary (config) cluster instead, and delete it here"),
    );
}
