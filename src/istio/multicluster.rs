//! How the mesh spans clusters, and what that changes in what pilot reads and builds.
//!
//! Istio does multicluster in three ways users run (istio.io, Setup > Install > Multicluster):
//! - `serviceEntries`: each cluster's own istiod sees only its cluster; the other clusters'
//!   east-west gateways are listed as endpoints of ServiceEntries for the cluster-local hosts
//!   (the pattern failover-guard generates, FG208);
//! - `multiPrimary`: an istiod in every cluster reads every cluster's Services and endpoints
//!   through remote secrets and merges them itself (the kube registry per cluster under the
//!   aggregate controller, pilot/pkg/serviceregistry/aggregate);
//! - `primaryRemote`: one istiod in the primary does that for the remotes, and reads Istio
//!   configuration only from its own (config) cluster.
//!
//! The rules ask this module where a service's remote endpoints come from and which labels
//! pilot gives them, instead of assuming the ServiceEntry pattern.

/// The port of ambient's east-west gateways (double HBONE; pilot's
/// DefaultNetworkGatewayHBONEPort): ztunnel reaches another network through it, sidecars cannot.
pub const HBONE_PORT: u16 = 15008;

/// Whether a gateway port is ambient's HBONE-only one: pilot gives such a network gateway no
/// mTLS port (pilot/pkg/serviceregistry/kube/controller/network.go getGatewayDetails: Port 0
/// when the Service does not listen on its gateway port) and skips it for sidecars
/// (pilot/pkg/xds/endpoints/ep_filters.go selectNetworkGateways).
pub fn hbone_only(gateway_port: u16) -> bool {
    gateway_port == HBONE_PORT
}

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::object::Kind;

/// The way the mesh spans clusters (`multicluster.model` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Model {
    /// Failover ServiceEntries list the remote gateways (the default, failover-guard's pattern).
    #[default]
    ServiceEntries,
    /// Every cluster's istiod reads every cluster's endpoints through remote secrets.
    MultiPrimary,
    /// One primary istiod serves the remotes too; configuration lives in the primary.
    PrimaryRemote,
}

/// This cluster's place in a primary-remote mesh (`multicluster.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Runs the istiod; the config cluster.
    Primary,
    /// Has no istiod of its own; its proxies are served by the primary's.
    Remote,
}

impl Model {
    pub fn as_str(self) -> &'static str {
        match self {
            Model::ServiceEntries => "serviceEntries",
            Model::MultiPrimary => "multiPrimary",
            Model::PrimaryRemote => "primaryRemote",
        }
    }

    /// Whether istiod itself merges the remote clusters' endpoints into each Service (the
    /// native models: a kube registry per remote secret, merged by hostname in the
    /// aggregate controller and the EndpointIndex's per-cluster shards). Failover
    /// ServiceEntries are then redundant.
    pub fn istiod_merges_remote_endpoints(self) -> bool {
        self != Model::ServiceEntries
    }

    /// Whether the istiod that serves this cluster reads Istio configuration of `kind` from
    /// this cluster. In primary-remote, istiod reads config only from its config cluster
    /// (pilot/pkg/bootstrap configcontroller: the config store is the local cluster's CRD
    /// client); Services and endpoints of the remote are read through the remote secret.
    pub fn istiod_reads_here(self, role: Option<Role>, kind: Kind) -> bool {
        match (self, role, kind) {
            (Model::PrimaryRemote, Some(Role::Remote), Kind::Service) => true,
            (Model::PrimaryRemote, Some(Role::Remote), _) => false,
            _ => true,
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A remote cluster's endpoint as pilot hands it to a sidecar in this cluster in a native
/// model: its locality group, and the labels failoverPriority compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeEndpoint {
    pub locality: String,
    pub labels: BTreeMap<String, String>,
    /// Whether the endpoint was replaced by its network's east-west gateway.
    pub through_gateway: bool,
}

/// The endpoint a sidecar on `local_network` gets for a workload in cluster `cluster` at
/// `locality` on `network`, in a native model.
///
/// On the same network the workload is sent as is, with the labels the kube registry gives it
/// (kube/controller endpoint builder: labelutil.AugmentLabels with the remote's cluster ID,
/// its node's locality and its network). On another network, the EDS network filter
/// (pilot/pkg/xds/endpoints/ep_filters.go EndpointsByNetworkFilter) replaces it with that
/// network's gateway in the same locality group, labelled with only the gateway's cluster
/// and network (`AugmentLabels(nil, gw.Cluster, "", "", gw.Network)`): no region or zone label.
pub fn native_remote_endpoint(
    cluster: &str,
    locality: &str,
    network: &str,
    local_network: &str,
) -> NativeEndpoint {
    let through_gateway = !network.is_empty() && network != local_network;
    let label_locality = if through_gateway { "" } else { locality };
    NativeEndpoint {
        locality: locality.to_owned(),
        labels: super::augment_labels(&BTreeMap::new(), cluster, label_locality, network),
        through_gateway,
    }
}

/// What one cluster shows of how its mesh spans clusters, as the server reads it from the
/// world (Services, Namespaces) and from discovery (remote secrets).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The `istiod` Service in the root namespace: `Some(true)` with a selector (istiod runs
    /// here), `Some(false)` without one (the `remote` install profile points it at the
    /// primary's istiod), `None` when there is none (or it is not watched).
    pub istiod_here: Option<bool>,
    /// The root namespace's `topology.istio.io/controlPlaneClusters` annotation, which
    /// istio.io's primary-remote install sets in a remote cluster.
    pub control_plane_clusters: Option<String>,
    /// How many Istio remote secrets (`istio/multiCluster: "true"`) there are; `None` when
    /// they are not read (discovery off, or from kubeconfigs).
    pub remote_secrets: Option<usize>,
    /// The root namespace's `topology.istio.io/network` label.
    pub network: Option<String>,
}

/// What the evidence says, in words, and the model it points to (if it does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub model: Option<(Model, Option<Role>)>,
    pub because: String,
}

/// The model a cluster's own objects point to. istiod reads every Secret labelled
/// `istio/multiCluster: "true"` in its namespace as a remote cluster
/// (pilot/pkg/serviceregistry/kube/controller/multicluster.go, secretcontroller), so an istiod
/// here with remote secrets merges remote endpoints itself: a native model (multi-primary, or
/// the primary of primary-remote, which one cluster cannot tell apart); without them it sees
/// only its cluster. A selectorless istiod Service or the controlPlaneClusters annotation mark
/// a primary-remote remote.
pub fn detect(e: &Evidence) -> Detection {
    let remote_because = match (&e.control_plane_clusters, e.istiod_here) {
        (Some(c), _) => Some(format!(
            "the root namespace is annotated topology.istio.io/controlPlaneClusters: {c}"
        )),
        (None, Some(false)) => {
            Some("the istiod Service has no selector (an external istiod)".to_owned())
        }
        _ => None,
    };
    if let Some(because) = remote_because {
        return Detection {
            model: Some((Model::PrimaryRemote, Some(Role::Remote))),
            because,
        };
    }
    match (e.istiod_here, e.remote_secrets) {
        (Some(true), Some(n)) if n > 0 => Detection {
            model: Some((Model::MultiPrimary, None)),
            because: format!(
                "istiod runs here and reads {n} remote secret{} (multiPrimary, or the primary of primaryRemote)",
                if n == 1 { "" } else { "s" }
            ),
        },
        (Some(true), Some(0)) => Detection {
            model: Some((Model::ServiceEntries, None)),
            because: "istiod runs here and reads no remote secret: it sees only this cluster"
                .to_owned(),
        },
        (Some(true), None) => Detection {
            model: None,
            because: "istiod runs here; remote secrets are not read (discovery off)".to_owned(),
        },
        _ => Detection {
            model: None,
            because: "no istiod Service in the root namespace".to_owned(),
        },
    }
}

impl Detection {
    /// Whether the configured model is what the cluster shows (or the cluster shows nothing).
    /// A native detection agrees with both native models' primaries.
    pub fn agrees_with(&self, model: Model, role: Option<Role>) -> bool {
        match self.model {
            None => true,
            Some((Model::MultiPrimary, _)) => {
                model == Model::MultiPrimary
                    || (model == Model::PrimaryRemote && role == Some(Role::Primary))
            }
            Some(found) => found == (model, role),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::labels;

    #[test]
    fn a_remote_on_the_same_network_keeps_its_cluster_and_locality_labels() {
        let e = native_remote_endpoint("cluster2", "region1/zone2", "network1", "network1");
        assert!(!e.through_gateway);
        assert_eq!(
            e.labels.get(labels::CLUSTER).map(String::as_str),
            Some("cluster2")
        );
        assert_eq!(
            e.labels.get(labels::ZONE).map(String::as_str),
            Some("zone2")
        );
    }

    #[test]
    fn a_remote_on_another_network_is_its_gateway_without_region_labels() {
        let e = native_remote_endpoint("cluster2", "region2/zone3", "network2", "network1");
        assert!(e.through_gateway);
        assert_eq!(e.locality, "region2/zone3");
        assert_eq!(
            e.labels.get(labels::CLUSTER).map(String::as_str),
            Some("cluster2")
        );
        assert_eq!(
            e.labels.get(labels::NETWORK).map(String::as_str),
            Some("network2")
        );
        assert_eq!(e.labels.get(labels::REGION), None);
    }

    #[test]
    fn the_cluster_shows_its_model() {
        let native = detect(&Evidence {
            istiod_here: Some(true),
            remote_secrets: Some(2),
            ..Evidence::default()
        });
        assert_eq!(native.model, Some((Model::MultiPrimary, None)));
        assert!(native.agrees_with(Model::PrimaryRemote, Some(Role::Primary)));
        assert!(!native.agrees_with(Model::ServiceEntries, None));
        assert!(native.because.contains("2 remote secrets"));
        let alone = detect(&Evidence {
            istiod_here: Some(true),
            remote_secrets: Some(0),
            ..Evidence::default()
        });
        assert_eq!(alone.model, Some((Model::ServiceEntries, None)));
        let remote = detect(&Evidence {
            istiod_here: Some(false),
            ..Evidence::default()
        });
        assert_eq!(
            remote.model,
            Some((Model::PrimaryRemote, Some(Role::Remote)))
        );
        let annotated = detect(&Evidence {
            control_plane_clusters: Some("cluster1".into()),
            ..Evidence::default()
        });
        assert!(annotated.because.contains("controlPlaneClusters: cluster1"));
        let unknown = detect(&Evidence::default());
        assert_eq!(unknown.model, None);
        assert!(unknown.agrees_with(Model::ServiceEntries, None));
    }

    #[test]
    fn a_primary_remote_remote_cluster_holds_no_config_istiod_reads() {
        let remote = Some(Role::Remote);
        assert!(!Model::PrimaryRemote.istiod_reads_here(remote, Kind::DestinationRule));
        assert!(!Model::PrimaryRemote.istiod_reads_here(remote, Kind::ServiceEntry));
        assert!(Model::PrimaryRemote.istiod_reads_here(remote, Kind::Service));
        assert!(Model::PrimaryRemote.istiod_reads_here(Some(Role::Primary), Kind::ServiceEntry));
        assert!(Model::MultiPrimary.istiod_reads_here(None, Kind::DestinationRule));
    }
}
