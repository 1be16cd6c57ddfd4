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
