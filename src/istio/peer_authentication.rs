//! PeerAuthentication as pilot reads it for outbound traffic: the namespace- and mesh-level
//! mTLS mode (pilot/pkg/model/authentication.go addPeerAuthentication,
//! GetNamespaceMutualTLSMode) and the mode a service is inferred to have
//! (pilot/pkg/model/push_context.go BestEffortInferServiceMTLSMode). A sidecar sends auto mTLS
//! only to services whose mode is not DISABLE (cluster_tls.go buildUpstreamTLSSettings), and
//! keeps an endpoint's mTLS metadata only where it is not DISABLE (endpoints/mtls_checker.go).
//!
//! An endpoint's own mode (what EDS's mTLS checker asks) also reads workload-level policies
//! (a selector matching the endpoint's labels) and their port-level modes
//! (pilot/pkg/security/authn/policy_applier.go ComposePeerAuthentication,
//! GetMutualTLSModeForPort).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::{Field as _, str_at};

/// `model.MutualTLSMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlsMode {
    Unknown,
    Disable,
    Permissive,
    Strict,
}

impl MtlsMode {
    /// ConvertToMutualTLSMode (UNSET is resolved by the caller).
    fn of(mode: &str) -> Option<MtlsMode> {
        match mode {
            "DISABLE" => Some(MtlsMode::Disable),
            "PERMISSIVE" => Some(MtlsMode::Permissive),
            "STRICT" => Some(MtlsMode::Strict),
            _ => None,
        }
    }
}

/// The namespace- and mesh-level modes of a set of objects, and the workload-level policies.
#[derive(Debug, Clone)]
pub struct PeerAuthentications {
    global: MtlsMode,
    namespaces: BTreeMap<String, MtlsMode>,
    /// Policies with a selector outside the root namespace, oldest first.
    workloads: Vec<WorkloadPolicy>,
}

/// A PeerAuthentication with a selector: its namespace, labels, mode (`None`: UNSET) and
/// port-level modes (by target port; `None`: UNSET, the policy's own mode).
#[derive(Debug, Clone)]
struct WorkloadPolicy {
    namespace: String,
    match_labels: BTreeMap<String, String>,
    mode: Option<MtlsMode>,
    ports: BTreeMap<u32, Option<MtlsMode>>,
}

fn is_peer_authentication(object: &Value) -> bool {
    str_at(object, &["kind"]) == Some("PeerAuthentication")
        && str_at(object, &["apiVersion"]).is_some_and(|a| a.starts_with("security.istio.io/"))
}

impl PeerAuthentications {
    /// addPeerAuthentication over the PeerAuthentications among `objects` (in creation order:
    /// a written `creationTimestamp` first, else their order). Per namespace the oldest
    /// selector-less policy counts; the root namespace's is mesh-wide (UNSET: PERMISSIVE);
    /// a namespace's UNSET inherits the mesh's (PERMISSIVE when there is none).
    pub fn new(objects: &[&Value], root_namespace: &str) -> Self {
        let mut all: Vec<(i64, &Value)> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| is_peer_authentication(o))
            .map(|(i, o)| (super::destination_rule::creation_key(o, i), *o))
            .collect();
        all.sort_by_key(|(created, _)| *created);
        let selects = |o: &Value| {
            o.path(&["spec", "selector", "matchLabels"])
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        };
        let namespace_of = |o: &Value| {
            str_at(o, &["metadata", "namespace"])
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_owned()
        };
        let workloads = all
            .iter()
            .filter(|(_, o)| selects(o) && namespace_of(o) != root_namespace)
            .map(|(_, o)| WorkloadPolicy {
                namespace: namespace_of(o),
                match_labels: o
                    .path(&["spec", "selector", "matchLabels"])
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect(),
                mode: str_at(o, &["spec", "mtls", "mode"]).and_then(MtlsMode::of),
                ports: o
                    .path(&["spec", "portLevelMtls"])
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(port, mtls)| {
                        let mode = mtls.path(&["mode"]).and_then(Value::as_str);
                        Some((port.parse().ok()?, mode.and_then(MtlsMode::of)))
                    })
                    .collect(),
            })
            .collect();
        let policies: Vec<(i64, &Value)> = all.into_iter().filter(|(_, o)| !selects(o)).collect();
        let mut global = MtlsMode::Unknown;
        let mut seen = std::collections::BTreeSet::new();
        let mut found: BTreeMap<String, Option<MtlsMode>> = BTreeMap::new();
        for (_, policy) in policies {
            let namespace = str_at(policy, &["metadata", "namespace"])
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            if !seen.insert(namespace.to_owned()) {
                continue;
            }
            let mode = str_at(policy, &["spec", "mtls", "mode"]).and_then(MtlsMode::of);
            if namespace == root_namespace {
                global = mode.unwrap_or(MtlsMode::Permissive);
            } else {
                found.insert(namespace.to_owned(), mode);
            }
        }
        let inherited = match global {
            MtlsMode::Unknown => MtlsMode::Permissive,
            mode => mode,
        };
        PeerAuthentications {
            global,
            workloads,
            namespaces: found
                .into_iter()
                .map(|(ns, mode)| (ns, mode.unwrap_or(inherited)))
                .collect(),
        }
    }

    /// GetNamespaceMutualTLSMode.
    pub fn namespace_mode(&self, namespace: &str) -> MtlsMode {
        self.namespaces
            .get(namespace)
            .copied()
            .unwrap_or(self.global)
    }

    /// The mode of a workload (an endpoint: its namespace, labels and target port), as EDS's
    /// mTLS checker asks it (NewMtlsPolicy, ComposePeerAuthentication, GetMutualTLSModeForPort):
    /// the mesh's, then the namespace's, then the oldest workload policy whose selector
    /// matches (UNSET inherits), then that policy's mode for the port.
    pub fn workload_mode(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        port: u32,
    ) -> MtlsMode {
        let inherited = match self.namespace_mode(namespace) {
            MtlsMode::Unknown => MtlsMode::Permissive,
            mode => mode,
        };
        let Some(policy) = self.workloads.iter().find(|p| {
            p.namespace == namespace && p.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        }) else {
            return inherited;
        };
        let mode = policy.mode.unwrap_or(inherited);
        match policy.ports.get(&port) {
            Some(Some(port_mode)) => *port_mode,
            _ => mode,
        }
    }

    /// BestEffortInferServiceMTLSMode for a service that is not passthrough: unknown for a
    /// mesh-external one, else the namespace's (or mesh's) mode, else PERMISSIVE.
    pub fn service_mode(&self, namespace: &str, mesh_external: bool) -> MtlsMode {
        if mesh_external {
            return MtlsMode::Unknown;
        }
        match self.namespace_mode(namespace) {
            MtlsMode::Unknown => MtlsMode::Permissive,
            mode => mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pa(ns: &str, name: &str, mode: Option<&str>) -> Value {
        let mut spec = json!({});
        if let Some(m) = mode {
            spec = json!({"mtls": {"mode": m}});
        }
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    #[test]
    fn a_workload_policy_and_its_port_level_mode_decide_for_the_endpoints_it_selects() {
        let ns = pa("bookinfo", "default", Some("STRICT"));
        let mut wl = pa("bookinfo", "reviews", None);
        wl["spec"] = json!({"selector": {"matchLabels": {"app": "reviews"}},
            "portLevelMtls": {"9080": {"mode": "DISABLE"}}});
        let mut newer = pa("bookinfo", "reviews-2", Some("PERMISSIVE"));
        newer["spec"]["selector"] = json!({"matchLabels": {"app": "reviews"}});
        newer["metadata"]["creationTimestamp"] = json!("2099-01-01T00:00:00Z");
        let all = PeerAuthentications::new(&[&newer, &ns, &wl], "istio-system");
        let reviews = BTreeMap::from([("app".to_owned(), "reviews".to_owned())]);
        assert_eq!(
            all.workload_mode("bookinfo", &reviews, 9080),
            MtlsMode::Disable
        );
        // UNSET inherits the namespace's; the newer policy loses to the older.
        assert_eq!(
            all.workload_mode("bookinfo", &reviews, 9081),
            MtlsMode::Strict
        );
        assert_eq!(
            all.workload_mode("bookinfo", &BTreeMap::new(), 9080),
            MtlsMode::Strict
        );
        // The service-level inference ignores workload policies.
        assert_eq!(all.service_mode("bookinfo", false), MtlsMode::Strict);
    }

    #[test]
    fn namespace_then_mesh_then_permissive() {
        let mesh = pa("istio-system", "default", Some("STRICT"));
        let ns = pa("bookinfo", "default", Some("DISABLE"));
        let unset = pa("shop", "default", None);
        let all = PeerAuthentications::new(&[&mesh, &ns, &unset], "istio-system");
        assert_eq!(all.service_mode("bookinfo", false), MtlsMode::Disable);
        assert_eq!(
            all.service_mode("shop", false),
            MtlsMode::Strict,
            "UNSET inherits"
        );
        assert_eq!(all.service_mode("other", false), MtlsMode::Strict);
        assert_eq!(all.service_mode("bookinfo", true), MtlsMode::Unknown);
        let none = PeerAuthentications::new(&[], "istio-system");
        assert_eq!(none.service_mode("bookinfo", false), MtlsMode::Permissive);
    }

    #[test]
    fn the_oldest_namespace_policy_counts_and_selectors_do_not() {
        let old = pa("bookinfo", "b", Some("STRICT"));
        let mut newer = pa("bookinfo", "a", Some("DISABLE"));
        newer["metadata"]["creationTimestamp"] = json!("2030-01-01T00:00:00Z");
        let mut workload = pa("bookinfo", "w", Some("DISABLE"));
        workload["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        let all = PeerAuthentications::new(&[&workload, &newer, &old], "istio-system");
        assert_eq!(all.namespace_mode("bookinfo"), MtlsMode::Strict);
    }
}
