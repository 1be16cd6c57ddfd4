//! A model of what Istio does with the objects failover-guard reads, one function per
//! question, each named after and citing the Istio code it mirrors (istio/istio at the version
//! pinned in tests/istio/go.mod). Rules ask this module instead of re-deriving Istio in place;
//! the Istio harness (tests/istio.rs) checks the model's answers against pilot itself.

pub mod ambient;
pub mod destination_rule;
pub mod kube;
pub mod locality;
pub mod mesh;
pub mod multicluster;
pub mod peer_authentication;
pub mod traffic;
pub mod version;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::Field as _;

use version::{Behaviour, IstioVersion};

/// Endpoint and proxy label keys that pilot derives from topology.
pub mod labels {
    pub const REGION: &str = "topology.kubernetes.io/region";
    pub const ZONE: &str = "topology.kubernetes.io/zone";
    pub const SUBZONE: &str = "topology.istio.io/subzone";
    pub const CLUSTER: &str = "topology.istio.io/cluster";
    pub const NETWORK: &str = "topology.istio.io/network";
    pub const HOSTNAME: &str = "kubernetes.io/hostname";
    /// A workload's locality, read before the node's (pkg/model GetLocalityLabel).
    pub const LOCALITY: &str = "topology.istio.io/locality";
    /// The legacy spelling of [`LOCALITY`], read after it.
    pub const LEGACY_LOCALITY: &str = "istio-locality";
    /// `istio` on a workload: the sidecar accepts Istio mTLS (auto mTLS sends it).
    pub const TLS_MODE: &str = "security.istio.io/tlsMode";
    /// Every label pilot may add to an endpoint or a proxy by itself.
    pub const TOPOLOGY: [&str; 6] = [REGION, ZONE, SUBZONE, CLUSTER, NETWORK, HOSTNAME];
}

/// The annotation pilot reads for a service's traffic distribution, on a Service, a
/// ServiceEntry or a Namespace (`annotation.NetworkingTrafficDistribution`).
pub const TRAFFIC_DISTRIBUTION_ANNOTATION: &str = "networking.istio.io/traffic-distribution";

/// Kubernetes' topology-aware routing annotations, which nothing in pilot reads (it orders
/// endpoints by the traffic distribution above, pilot/pkg/model/service.go
/// GetTrafficDistribution, not by EndpointSlice hints).
pub const IGNORED_TOPOLOGY_ANNOTATIONS: [&str; 2] = [
    "service.kubernetes.io/topology-mode",
    "service.kubernetes.io/topology-aware-hints",
];

/// A service's traffic distribution as pilot keeps it (`model.TrafficDistribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficDistribution {
    /// No preference: locality load balancing as the DestinationRule and mesh config say.
    #[default]
    Any,
    /// `PreferClose` / `PreferSameZone`: failoverPriority [network, region, zone], forced.
    PreferSameZone,
    /// `PreferSameNode`: [network, region, zone, subzone, hostname], forced.
    PreferSameNode,
}

/// An annotation or spec value: the annotation case-insensitively (`strings.ToLower` in
/// GetTrafficDistribution), the spec field exactly; `None` for a value pilot at `version`
/// does not know, which it takes as [`TrafficDistribution::Any`].
fn distribution_of(value: &str, exact: bool, version: IstioVersion) -> Option<TrafficDistribution> {
    let lowered;
    let value = if exact {
        value
    } else {
        lowered = value.to_ascii_lowercase();
        match lowered.as_str() {
            "preferclose" => "PreferClose",
            "prefersamezone" => "PreferSameZone",
            "prefersamenode" => "PreferSameNode",
            _ => return None,
        }
    };
    let newer = version.has(Behaviour::PreferSameZoneAndNode);
    match value {
        "PreferClose" => Some(TrafficDistribution::PreferSameZone),
        "PreferSameZone" if newer => Some(TrafficDistribution::PreferSameZone),
        "PreferSameNode" if newer => Some(TrafficDistribution::PreferSameNode),
        _ => None,
    }
}

/// Whether pilot at `version` knows a traffic-distribution annotation value; an unknown one
/// (a typo, or a value of a later release) silently means no preference
/// (GetTrafficDistribution logs a warning in istiod only).
pub fn traffic_distribution_known(value: &str, version: IstioVersion) -> bool {
    distribution_of(value, false, version).is_some()
}

/// pilot/pkg/model/service.go GetTrafficDistribution: the Service's `spec.trafficDistribution`
/// (exact values) first; else the object's annotation, whose unknown value means `Any`; else
/// the namespace's annotation, the same way (from 1.30). `spec` is `None` for a ServiceEntry.
pub fn traffic_distribution(
    spec: Option<&str>,
    annotations: Option<&Value>,
    namespace_annotations: Option<&Value>,
    version: IstioVersion,
) -> TrafficDistribution {
    if let Some(distribution) = spec.and_then(|s| distribution_of(s, true, version)) {
        return distribution;
    }
    let namespace_annotations =
        namespace_annotations.filter(|_| version.has(Behaviour::NamespaceTrafficDistribution));
    for annotations in [annotations, namespace_annotations] {
        if let Some(value) = annotations
            .and_then(|a| a.field(TRAFFIC_DISTRIBUTION_ANNOTATION))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            return distribution_of(value, false, version).unwrap_or_default();
        }
    }
    TrafficDistribution::Any
}

/// A Kubernetes Service's traffic distribution, its Namespace object given (or not known):
/// [`traffic_distribution`] over the Service's spec and annotations and the Namespace's.
pub fn service_traffic_distribution(
    service: &Value,
    namespace: Option<&Value>,
    version: IstioVersion,
) -> TrafficDistribution {
    traffic_distribution(
        service
            .path(&["spec", "trafficDistribution"])
            .and_then(Value::as_str),
        service.path(&["metadata", "annotations"]),
        namespace.and_then(|n| n.path(&["metadata", "annotations"])),
        version,
    )
}

/// Whether a ServiceEntry is resolved by DNS, so pilot builds a STRICT_DNS (`DNS`) or
/// LOGICAL_DNS (`DNS_ROUND_ROBIN`) cluster that carries its endpoints in CDS
/// (serviceentry/conversion.go convertResolution, cluster_builder.go buildCluster).
pub fn dns_resolved(entry: &Value) -> bool {
    matches!(
        crate::object::str_at(entry, &["spec", "resolution"]),
        Some("DNS" | "DNS_ROUND_ROBIN")
    )
}

/// The fully qualified name of a host written in a namespace, as
/// `pilot/pkg/model.ResolveShortnameToFQDN` computes it: only a name without dots (`reviews`)
/// is expanded with the namespace and cluster domain; anything with a dot is taken as already
/// qualified.
pub fn fqdn(host: &str, namespace: &str, cluster_domain: &str) -> String {
    if host == "*" || host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
        return host.to_owned();
    }
    format!("{host}.{namespace}.{cluster_domain}")
}

/// The host pilot's Kubernetes registry gives a Service, `<svc>.<ns>.<clusterDomain>`
/// (`pilot/pkg/serviceregistry/kube.ServiceHostname`).
pub fn service_host(name: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{name}.{namespace}.{cluster_domain}")
}

/// Whether pilot merges a ServiceEntry's endpoints into the Kubernetes Service with this host
/// in `service_namespace`: services of one hostname and namespace are one service
/// (pilot/pkg/serviceregistry/aggregate Controller.Services, EndpointIndex shards by hostname
/// and namespace), so the entry must live in the Service's namespace, list its host, and have
/// no workloadSelector (which selects workloads instead of declaring endpoints).
pub fn entry_merges_into_service(
    se: &Value,
    entry_namespace: &str,
    host: &str,
    service_namespace: &str,
) -> bool {
    entry_namespace == service_namespace
        && se.pointer("/spec/workloadSelector").is_none()
        && se
            .pointer("/spec/hosts")
            .and_then(Value::as_array)
            .is_some_and(|hosts| hosts.iter().any(|h| h.as_str() == Some(host)))
}

/// `(service, namespace)` when the host is `<svc>.<ns>.<clusterDomain>`, the name pilot's
/// Kubernetes registry gives a Service (`pilot/pkg/serviceregistry/kube.ServiceHostname`).
pub fn cluster_local_service<'a>(
    host: &'a str,
    cluster_domain: &str,
) -> Option<(&'a str, &'a str)> {
    let rest = host.strip_suffix(cluster_domain)?.strip_suffix('.')?;
    let (service, namespace) = rest.split_once('.')?;
    (!service.is_empty() && !namespace.is_empty() && !namespace.contains('.'))
        .then_some((service, namespace))
}

/// `pilot/pkg/serviceregistry/util/label.AugmentLabels`: the labels pilot gives an endpoint
/// (and, in `pilot/pkg/xds/ads.go initializeProxy`, a proxy) besides its own: region, zone and
/// subzone from the locality, the cluster *always* overwritten with `cluster`, and the network
/// only where no network label is set yet.
pub fn augment_labels(
    own: &BTreeMap<String, String>,
    cluster: &str,
    locality: &str,
    network: &str,
) -> BTreeMap<String, String> {
    let mut out = own.clone();
    let mut parts = locality.splitn(3, '/');
    for key in [labels::REGION, labels::ZONE, labels::SUBZONE] {
        if let Some(value) = parts.next().filter(|v| !v.is_empty()) {
            out.insert(key.to_owned(), value.to_owned());
        }
    }
    if !cluster.is_empty() {
        out.insert(labels::CLUSTER.to_owned(), cluster.to_owned());
    }
    if !network.is_empty() && out.get(labels::NETWORK).is_none_or(String::is_empty) {
        out.insert(labels::NETWORK.to_owned(), network.to_owned());
    }
    out
}

/// The labels of a ServiceEntry endpoint as pilot sees them
/// (`pilot/pkg/serviceregistry/serviceentry/conversion.go convertWorkloadEntryToWorkloadInstance`):
/// its own labels augmented with its locality (the `locality` field, or the `istio-locality`
/// label), the *local* istiod's cluster (`local_cluster`: whatever remote cluster the endpoint
/// stands for), and its `network`.
pub fn entry_endpoint_labels(endpoint: &Value, local_cluster: &str) -> BTreeMap<String, String> {
    let own = own_labels(endpoint);
    let locality = entry_endpoint_locality(endpoint);
    let network = endpoint
        .field("network")
        .and_then(Value::as_str)
        .unwrap_or("");
    augment_labels(&own, local_cluster, &locality, network)
}

/// The locality a workload's labels give it (pkg/model/proxy.go GetLocalityLabel and
/// SanitizeLocalityLabel): `topology.istio.io/locality` first, then the legacy
/// `istio-locality`; dots stand for slashes unless the value has a slash already.
pub fn locality_from_labels(labels: &BTreeMap<String, String>) -> Option<String> {
    let label = labels
        .get(labels::LOCALITY)
        .or_else(|| labels.get(labels::LEGACY_LOCALITY))?;
    Some(if label.contains('/') {
        label.clone()
    } else {
        label.replace('.', "/")
    })
}

/// Whether a ServiceEntry endpoint takes Istio mTLS (serviceentry/conversion.go
/// getTLSModeFromWorkloadEntry): its `security.istio.io/tlsMode` label when it has one, else
/// `istio` when it names a `serviceAccount`.
pub fn entry_endpoint_mtls(endpoint: &Value) -> bool {
    match endpoint
        .field("labels")
        .and_then(|l| l.field(labels::TLS_MODE))
    {
        Some(mode) => mode.as_str() == Some("istio"),
        None => endpoint
            .field("serviceAccount")
            .and_then(Value::as_str)
            .is_some_and(|sa| !sa.is_empty()),
    }
}

/// The locality label pilot keeps for a ServiceEntry endpoint
/// (serviceentry/conversion.go convertWorkloadEntryToWorkloadInstance): its `locality` as
/// written, else the one its labels give ([`locality_from_labels`]).
pub fn entry_endpoint_locality(endpoint: &Value) -> String {
    if let Some(written) = endpoint
        .field("locality")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
    {
        return written.to_owned();
    }
    locality_from_labels(&own_labels(endpoint)).unwrap_or_default()
}

/// An endpoint's own `labels` (string values only, as Kubernetes labels are).
fn own_labels(endpoint: &Value) -> BTreeMap<String, String> {
    endpoint
        .field("labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// The priority `failoverPriority` gives one endpoint for one proxy, before priorities are
/// renumbered without gaps: `pilot/pkg/networking/core/loadbalancer.
/// applyFailoverPriorityPerLocality`. The priority is the number of labels minus the index of
/// the first label whose value differs (0: all match); a `key=value` entry compares the
/// endpoint with that value instead of the proxy's; a mismatching network in first place does
/// not stop the comparison but ranks the endpoint after every one of the proxy's network.
pub fn failover_priority(
    priority_labels: &[&str],
    proxy: &BTreeMap<String, String>,
    endpoint: &BTreeMap<String, String>,
) -> usize {
    let lowest = priority_labels.len();
    let includes_network = priority_labels.first() == Some(&labels::NETWORK);
    let mut priority = 0;
    let mut adjust = 0;
    for (j, entry) in priority_labels.iter().enumerate() {
        let (key, value_for_proxy) = match entry.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (*entry, proxy.get(*entry).map(String::as_str)),
        };
        if value_for_proxy.unwrap_or("") != endpoint.get(key).map_or("", String::as_str) {
            if j == 0 && includes_network {
                adjust = lowest;
                continue;
            }
            priority = lowest - j;
            break;
        }
    }
    priority + adjust
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn traffic_distribution_follows_pilots_precedence() {
        use TrafficDistribution::*;
        let v = version::PINNED;
        let a = |v: &str| json!({TRAFFIC_DISTRIBUTION_ANNOTATION: v});
        assert_eq!(
            traffic_distribution(Some("PreferClose"), None, None, v),
            PreferSameZone
        );
        // The spec's values are exact; an unknown one falls through to the annotations.
        assert_eq!(
            traffic_distribution(Some("preferclose"), None, None, v),
            Any
        );
        assert_eq!(
            traffic_distribution(None, Some(&a("preferSAMEnode")), None, v),
            PreferSameNode
        );
        // An unknown annotation is Any, and hides the namespace's.
        assert_eq!(
            traffic_distribution(None, Some(&a("PreferClosest")), Some(&a("PreferClose")), v),
            Any
        );
        assert_eq!(
            traffic_distribution(None, Some(&json!({})), Some(&a("PreferClose")), v),
            PreferSameZone
        );
        assert!(!traffic_distribution_known("PreferClosest", v));
        assert!(traffic_distribution_known("PREFERCLOSE", v));
    }

    #[test]
    fn traffic_distribution_follows_the_istio_version() {
        use TrafficDistribution::*;
        let at = |minor| version::IstioVersion { major: 1, minor };
        let a = |v: &str| json!({TRAFFIC_DISTRIBUTION_ANNOTATION: v});
        // PreferSameZone and PreferSameNode arrived in 1.27; before, they meant no preference.
        assert_eq!(
            traffic_distribution(Some("PreferSameZone"), None, None, at(26)),
            Any
        );
        assert_eq!(
            traffic_distribution(None, Some(&a("PreferSameNode")), None, at(26)),
            Any
        );
        assert!(!traffic_distribution_known("PreferSameZone", at(26)));
        assert!(traffic_distribution_known("PreferClose", at(26)));
        assert_eq!(
            traffic_distribution(Some("PreferSameZone"), None, None, at(27)),
            PreferSameZone
        );
        // The namespace's annotation is inherited from 1.30.
        let ns = a("PreferClose");
        assert_eq!(traffic_distribution(None, None, Some(&ns), at(29)), Any);
        assert_eq!(
            traffic_distribution(None, None, Some(&ns), at(30)),
            PreferSameZone
        );
    }

    #[test]
    fn hosts_expand_like_istio() {
        let d = "svc.cluster.local";
        assert_eq!(
            fqdn("reviews", "bookinfo", d),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(fqdn("reviews.prod", "bookinfo", d), "reviews.prod");
        assert_eq!(fqdn("api.example.com", "x", d), "api.example.com");
        assert_eq!(
            cluster_local_service("reviews.prod.svc.cluster.local", d),
            Some(("reviews", "prod"))
        );
        assert_eq!(cluster_local_service("a.b.c.svc.cluster.local", d), None);
    }

    fn client() -> BTreeMap<String, String> {
        augment_labels(
            &BTreeMap::new(),
            "cluster-a",
            "europe-west1/europe-west1-b",
            "network-a",
        )
    }

    #[test]
    fn entry_endpoints_get_topology_labels_and_the_local_cluster() {
        let endpoint = json!({"address": "203.0.113.10", "locality": "europe-west4/europe-west4-a",
            "network": "network-b", "labels": {"version": "v1", "topology.istio.io/cluster": "cluster-b"}});
        let labels = entry_endpoint_labels(&endpoint, "cluster-a");
        assert_eq!(labels[labels::REGION], "europe-west4");
        assert_eq!(labels[labels::ZONE], "europe-west4-a");
        assert_eq!(labels[labels::CLUSTER], "cluster-a", "always overwritten");
        assert_eq!(labels[labels::NETWORK], "network-b");
        assert_eq!(labels["version"], "v1");
    }

    #[test]
    fn failover_priority_counts_leading_matches() {
        let remote = entry_endpoint_labels(
            &json!({"locality": "europe-west4/europe-west4-a", "network": "network-b"}),
            "cluster-a",
        );
        let local = client();
        let recommended = [labels::NETWORK, labels::REGION, labels::ZONE];
        assert_eq!(failover_priority(&recommended, &local, &local), 0);
        assert!(failover_priority(&recommended, &local, &remote) > 0);
        // The cluster label is the local istiod's for entry endpoints: remote ties with local.
        assert_eq!(failover_priority(&[labels::CLUSTER], &local, &remote), 0);
        assert_eq!(
            failover_priority(&[labels::CLUSTER, labels::REGION], &local, &remote),
            1
        );
        // A label nobody carries ties everything.
        assert_eq!(failover_priority(&["tier"], &local, &remote), 0);
        // key=value compares with the value, not the proxy's label.
        assert_eq!(
            failover_priority(
                &["topology.kubernetes.io/region=europe-west4"],
                &local,
                &remote
            ),
            0
        );
    }
}
