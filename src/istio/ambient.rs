//! Ambient mode as pilot's ambient index reads it (pilot/pkg/serviceregistry/ambient): which
//! data plane a namespace's workloads use, which waypoint a service is bound to, and whether a
//! service is global (seen by the other clusters) in multi-network ambient.
//!
//! What it changes for failover: ztunnel, which carries an ambient client's traffic to a
//! service without a waypoint, reads no DestinationRule; it orders endpoints by the service's
//! traffic distribution only (services.go constructService: the workloadapi.Service's
//! LoadBalancing routing preference) and fails over on readiness. A waypoint's Envoy reads
//! DestinationRules as a sidecar does.

use serde_json::Value;

use super::mesh::MeshConfig;
use crate::object::Field as _;

/// The namespace (or pod) label that enrolls workloads in ambient
/// (`label.IoIstioDataplaneMode`; value `ambient`, or `none` to opt a pod out).
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// The label that binds a namespace, Service or ServiceEntry to a waypoint
/// (`label.IoIstioUseWaypoint`; `none` opts out of the namespace's).
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// The waypoint's namespace, when it is not the object's (`label.IoIstioUseWaypointNamespace`).
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";

/// The label istiod puts on a Gateway API gateway's own Service and pods
/// (`label.IoK8sNetworkingGatewayGatewayName`).
pub const GATEWAY_NAME: &str = "gateway.networking.k8s.io/gateway-name";

/// Whether a Service is a Gateway API gateway's own (a waypoint's or an east-west gateway's, as
/// istiod's deployment controller creates it: labelled with the gateway's name, or selecting
/// the gateway's pods by it). It is infrastructure: its scope matters through the services
/// bound to it (FG409), not as a service of its own.
pub fn is_gateway_service(service: &Value) -> bool {
    let has = |path: &[&str]| {
        service
            .path(path)
            .and_then(|labels| labels.field(GATEWAY_NAME))
            .is_some()
    };
    has(&["metadata", "labels"]) || has(&["spec", "selector"])
}

/// The data plane a namespace's workloads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPlane {
    /// Sidecars (or no mesh at all): DestinationRules apply to the clients' own Envoy.
    Sidecar,
    /// ztunnel, and waypoints where bound.
    Ambient,
}

/// A namespace's data plane: ambient when labelled `istio.io/dataplane-mode: ambient`
/// (pilot/pkg/serviceregistry/ambient workloads.go: a pod is captured when its namespace, or
/// itself, says ambient; pods are not read here, so a namespace's label decides).
pub fn namespace_dataplane(namespace: Option<&Value>) -> DataPlane {
    let mode = namespace
        .and_then(|n| n.path(&["metadata", "labels", DATAPLANE_MODE]))
        .and_then(Value::as_str);
    if mode == Some("ambient") {
        DataPlane::Ambient
    } else {
        DataPlane::Sidecar
    }
}

/// The waypoint an object (a Service or ServiceEntry) is bound to, as
/// waypoints.go fetchWaypointForTarget looks it up: the object's `istio.io/use-waypoint`
/// (`none`: no waypoint, whatever the namespace says), else its namespace's. Returns
/// (namespace, name) of the waypoint Gateway.
pub fn use_waypoint(object: &Value, namespace: Option<&Value>) -> Option<(String, String)> {
    let own_namespace = object
        .path(&["metadata", "namespace"])
        .and_then(Value::as_str)
        .unwrap_or("default");
    let read = |meta: &Value| -> Option<Option<(String, String)>> {
        let labels = meta.path(&["metadata", "labels"])?;
        let name = labels.field(USE_WAYPOINT)?.as_str()?;
        if name == "none" {
            return Some(None);
        }
        let ns = labels
            .field(USE_WAYPOINT_NAMESPACE)
            .and_then(Value::as_str)
            .unwrap_or(own_namespace);
        Some(Some((ns.to_owned(), name.to_owned())))
    };
    match read(object) {
        Some(found) => found,
        None => namespace.and_then(read).flatten(),
    }
}

/// What ztunnel receives for a Service to balance its traffic: the workloadapi.Service's
/// LoadBalancing as pilot/pkg/serviceregistry/ambient services.go constructService builds it.
/// No DestinationRule is read on the way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZtunnelLoadBalancing {
    /// The scopes ztunnel prefers endpoints by, in order (empty: none, traffic is spread).
    pub routing_preference: Vec<&'static str>,
    /// FAILOVER (closest healthy first, spill over), STRICT (only the closest), or none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// ALLOW_ALL with publishNotReadyAddresses (unready endpoints are used too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_policy: Option<&'static str>,
}

/// constructService: internalTrafficPolicy Local first (the node only, STRICT), else the
/// Service's traffic distribution (model.GetTrafficDistribution, the namespace's inherited),
/// and ALLOW_ALL for publishNotReadyAddresses.
pub fn ztunnel_load_balancing(
    service: &Value,
    namespace: Option<&Value>,
    version: super::version::IstioVersion,
) -> ZtunnelLoadBalancing {
    let mut lb = ZtunnelLoadBalancing {
        routing_preference: Vec::new(),
        mode: None,
        health_policy: None,
    };
    if service
        .path(&["spec", "internalTrafficPolicy"])
        .and_then(Value::as_str)
        == Some("Local")
    {
        lb.routing_preference = vec!["NODE"];
        lb.mode = Some("STRICT");
    } else {
        let distribution = super::service_traffic_distribution(service, namespace, version);
        match distribution {
            super::TrafficDistribution::PreferSameZone => {
                lb.routing_preference = vec!["NETWORK", "REGION", "ZONE"];
                lb.mode = Some("FAILOVER");
            }
            super::TrafficDistribution::PreferSameNode => {
                lb.routing_preference = vec!["NETWORK", "REGION", "ZONE", "SUBZONE", "NODE"];
                lb.mode = Some("FAILOVER");
            }
            super::TrafficDistribution::Any => {}
        }
    }
    if service
        .path(&["spec", "publishNotReadyAddresses"])
        .and_then(Value::as_bool)
        == Some(true)
    {
        lb.health_policy = Some("ALLOW_ALL");
    }
    lb
}

/// A service's scope in multi-network ambient (model.ServiceScope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Seen by this cluster's data plane only.
    Local,
    /// Seen by every cluster's: its endpoints are merged across clusters.
    Global,
}

/// Whether the mesh scopes services at all: pilot computes scopes only with multi-network
/// ambient (AMBIENT_ENABLE_MULTI_NETWORK), which the model cannot see; the mesh config's
/// `serviceScopeConfigs`, which only that install sets (the ambient profile's default), is
/// what it reads instead.
pub fn scopes_services(mesh: &MeshConfig) -> bool {
    !mesh.service_scope_configs().is_empty()
}

/// services.go matchServiceScope: the first `serviceScopeConfigs` entry whose namespace and
/// service selectors (an empty one matches everything) both match, if its scope is GLOBAL;
/// else local.
pub fn service_scope(service: &Value, namespace: Option<&Value>, mesh: &MeshConfig) -> Scope {
    let empty = Value::Object(Default::default());
    let service_labels = service.path(&["metadata", "labels"]).unwrap_or(&empty);
    let Some(namespace_labels) =
        namespace.map(|n| n.path(&["metadata", "labels"]).unwrap_or(&empty))
    else {
        // matchServiceScope skips every entry when the namespace is unknown.
        return Scope::Local;
    };
    for config in mesh.service_scope_configs() {
        let namespaces = config.field("namespaceSelector");
        let services = config.field("servicesSelector");
        if selector_matches(namespaces, namespace_labels)
            && selector_matches(services, service_labels)
            && config.field("scope").and_then(Value::as_str) == Some("GLOBAL")
        {
            return Scope::Global;
        }
    }
    Scope::Local
}

/// A Kubernetes LabelSelector (matchLabels, matchExpressions with In, NotIn, Exists,
/// DoesNotExist) against labels; a missing or empty selector matches everything (as
/// matchServiceScope treats labels.Nothing). An expression it cannot read matches nothing.
pub fn selector_matches(selector: Option<&Value>, labels: &Value) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return true;
    };
    let label = |key: &str| labels.field(key).and_then(Value::as_str);
    let match_labels = selector
        .field("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| v.as_str().is_some_and(|v| label(k) == Some(v)));
    let expressions = selector
        .field("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let Some(key) = e.field("key").and_then(Value::as_str) else {
                return false;
            };
            let values: Vec<&str> = e
                .field("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e.field("operator").and_then(Value::as_str) {
                Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        });
    match_labels && expressions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mesh(text: &str) -> MeshConfig {
        MeshConfig::parse(text, "test").unwrap_or_default()
    }

    #[test]
    fn a_namespace_label_makes_ambient() {
        let ns = json!({"metadata": {"labels": {DATAPLANE_MODE: "ambient"}}});
        assert_eq!(namespace_dataplane(Some(&ns)), DataPlane::Ambient);
        assert_eq!(namespace_dataplane(None), DataPlane::Sidecar);
    }

    #[test]
    fn the_objects_waypoint_wins_and_none_opts_out() {
        let ns = json!({"metadata": {"name": "sample", "labels": {USE_WAYPOINT: "ns-waypoint"}}});
        let own =
            json!({"metadata": {"namespace": "sample", "labels": {USE_WAYPOINT: "waypoint"}}});
        let none = json!({"metadata": {"namespace": "sample", "labels": {USE_WAYPOINT: "none"}}});
        let bare = json!({"metadata": {"namespace": "sample"}});
        let elsewhere = json!({"metadata": {"namespace": "sample",
            "labels": {USE_WAYPOINT: "shared", USE_WAYPOINT_NAMESPACE: "infra"}}});
        assert_eq!(
            use_waypoint(&own, Some(&ns)),
            Some(("sample".into(), "waypoint".into()))
        );
        assert_eq!(use_waypoint(&none, Some(&ns)), None);
        assert_eq!(
            use_waypoint(&bare, Some(&ns)),
            Some(("sample".into(), "ns-waypoint".into()))
        );
        assert_eq!(
            use_waypoint(&elsewhere, None),
            Some(("infra".into(), "shared".into()))
        );
        assert_eq!(use_waypoint(&bare, None), None);
    }

    #[test]
    fn the_ambient_profiles_default_scope_makes_labelled_services_global() {
        let m = mesh(
            "serviceScopeConfigs:\n- servicesSelector:\n    matchExpressions:\n    - {key: istio.io/global, operator: In, values: [\"true\"]}\n  scope: GLOBAL\n",
        );
        assert!(scopes_services(&m));
        let ns = json!({"metadata": {"name": "sample"}});
        let global = json!({"metadata": {"labels": {"istio.io/global": "true"}}});
        let local = json!({"metadata": {"labels": {"app": "x"}}});
        assert_eq!(service_scope(&global, Some(&ns), &m), Scope::Global);
        assert_eq!(service_scope(&local, Some(&ns), &m), Scope::Local);
        assert_eq!(service_scope(&global, None, &m), Scope::Local);
        assert!(!scopes_services(&MeshConfig::default()));
    }

    #[test]
    fn selectors_read_every_operator_and_refuse_what_they_cannot_read() {
        let labels = json!({"a": "1", "b": "2"});
        let sel = |s: Value| selector_matches(Some(&s), &labels);
        assert!(sel(json!({"matchLabels": {"a": "1"}})));
        assert!(!sel(json!({"matchLabels": {"a": "2"}})));
        assert!(sel(
            json!({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]})
        ));
        assert!(sel(
            json!({"matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["3"]}]})
        ));
        assert!(!sel(
            json!({"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Gt"}]})
        ));
        // A boolean where a string belongs (istio.io's reference page prints one) is no match.
        assert!(!sel(json!({"matchLabels": {"a": true}})));
        assert!(selector_matches(None, &labels));
    }
}

/// One workload ztunnel receives for a service (a workloadapi.Workload of the service), as
/// pilot's ambient index gives it: a pod of this network (any cluster), or, in multi-network
/// ambient, the one workload that stands for another network, reached through that network's
/// east-west gateway (multicluster.go createSplitHorizonWorkload: no locality, HBONE).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZtunnelWorkload {
    pub cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// region/zone[/subzone], "" for a network's gateway workload.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub locality: String,
    /// The workload is another network's east-west gateway.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gateway: bool,
    /// The node it runs on ("" when unknown), for the NODE preference.
    #[serde(skip)]
    pub node: String,
}

/// Where a ztunnel client runs: the scopes a routing preference compares.
#[derive(Debug, Clone, Default)]
pub struct ZtunnelClient {
    pub cluster: String,
    pub network: String,
    pub locality: String,
    pub node: String,
}

/// How ztunnel ranks an endpoint for a client (ztunnel src/state.rs load_balance, the
/// LoadBalancerMode::Failover branch): the number of the service's routing preferences it
/// matches, in order, stopping at the first it does not; ztunnel sends to the best-ranked
/// healthy endpoints and moves to the next rank when none is left. STRICT keeps only
/// endpoints matching every preference (None for the others); no preference: all rank 0.
pub fn ztunnel_rank(
    lb: &ZtunnelLoadBalancing,
    client: &ZtunnelClient,
    workload: &ZtunnelWorkload,
) -> Option<usize> {
    let part = |l: &str, i: usize| l.split('/').nth(i).unwrap_or("").to_owned();
    let mut rank = 0;
    for scope in &lb.routing_preference {
        let matches = match *scope {
            "NETWORK" => client.network == workload.network,
            "REGION" => part(&client.locality, 0) == part(&workload.locality, 0),
            "ZONE" => part(&client.locality, 1) == part(&workload.locality, 1),
            "SUBZONE" => part(&client.locality, 2) == part(&workload.locality, 2),
            "NODE" => !client.node.is_empty() && client.node == workload.node,
            "CLUSTER" => client.cluster == workload.cluster,
            _ => false,
        };
        if !matches {
            break;
        }
        rank += 1;
    }
    if lb.mode == Some("STRICT") && rank < lb.routing_preference.len() {
        return None;
    }
    // Higher is better; expressed as an order (0 first).
    Some(lb.routing_preference.len() - rank)
}

#[cfg(test)]
mod rank_tests {
    use super::*;

    fn lb(prefs: &[&'static str], mode: &'static str) -> ZtunnelLoadBalancing {
        ZtunnelLoadBalancing {
            routing_preference: prefs.to_vec(),
            mode: Some(mode),
            health_policy: None,
        }
    }

    fn wl(network: &str, locality: &str) -> ZtunnelWorkload {
        ZtunnelWorkload {
            cluster: "c".into(),
            network: network.into(),
            locality: locality.into(),
            gateway: locality.is_empty(),
            node: String::new(),
        }
    }

    #[test]
    fn failover_orders_zone_then_region_then_other_networks() {
        let prefs = lb(&["NETWORK", "REGION", "ZONE"], "FAILOVER");
        let client = ZtunnelClient {
            network: "n1".into(),
            locality: "r1/z1".into(),
            ..Default::default()
        };
        let order: Vec<Option<usize>> = [
            wl("n1", "r1/z1"),
            wl("n1", "r1/z2"),
            wl("n1", "r2/z1"),
            wl("n2", ""),
        ]
        .iter()
        .map(|w| ztunnel_rank(&prefs, &client, w))
        .collect();
        // A zone match in another region does not count: the ranking stops at REGION.
        assert_eq!(order, vec![Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn strict_drops_what_does_not_match_every_scope() {
        let prefs = lb(&["NODE"], "STRICT");
        let client = ZtunnelClient {
            node: "node-a".into(),
            ..Default::default()
        };
        let mut here = wl("", "r1/z1");
        here.node = "node-a".into();
        assert_eq!(ztunnel_rank(&prefs, &client, &here), Some(0));
        assert_eq!(ztunnel_rank(&prefs, &client, &wl("", "r1/z1")), None);
    }

    #[test]
    fn no_preference_spreads() {
        let none = ZtunnelLoadBalancing {
            routing_preference: vec![],
            mode: None,
            health_policy: None,
        };
        let client = ZtunnelClient::default();
        assert_eq!(ztunnel_rank(&none, &client, &wl("n2", "")), Some(0));
    }
}
