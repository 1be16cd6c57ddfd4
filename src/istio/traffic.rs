//! What a sidecar client gets from pilot for a set of objects: the Envoy clusters of each host
//! (plain and per subset), whether outlier detection is on, and each cluster's load assignment
//! (per locality: priority, weight, endpoints). One function per step of pilot, each citing the
//! code it mirrors; `failover-guard simulate`, FG601 and the differential test against pilot
//! itself (tests/istio.rs) all use it.
//!
//! Local workloads: Services are given one ready pod per local locality (and per subset label
//! set of their DestinationRules), on a node labelled with that locality, exactly as the Istio
//! harness synthesises them, since manifests carry Deployments, not pods.

use std::{
    borrow::Borrow,
    collections::{BTreeMap, BTreeSet},
};

use serde::Serialize;
use serde_json::Value;

use crate::object::Field as _;

use super::{
    augment_labels,
    destination_rule::{Consolidated, Index, effective_policy},
    entry_endpoint_labels, failover_priority, fqdn,
    kube::{KubeIndex, Lookup},
    locality::{lb_priority, locality_match, split},
    mesh::MeshConfig,
    peer_authentication::{MtlsMode, PeerAuthentications},
    version::{Behaviour, IstioVersion},
};
use crate::{
    config::Config,
    object::{array_at, as_int, str_at},
};

/// A sidecar asking pilot for its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub locality: String,
    pub namespace: String,
}

/// One endpoint of a load assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointOut {
    pub address: String,
    pub port: u32,
    /// The remote cluster whose gateway this is (empty: a local endpoint).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub weight: u32,
    pub mtls: bool,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// One LocalityLbEndpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Priority {
    pub priority: u32,
    pub locality: String,
    pub weight: u32,
    pub endpoints: Vec<EndpointOut>,
}

/// One outbound Envoy cluster as one client gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyCluster {
    pub name: String,
    pub host: String,
    pub port: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subset: String,
    pub client: Client,
    #[serde(rename = "type")]
    pub kind: String,
    pub outlier_detection: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ejection_percent: u32,
    /// The DestinationRules (namespace/name) that supplied the policy, merged in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_rule: Vec<String>,
    pub priorities: Vec<Priority>,
    pub verdict: String,
}

/// An endpoint as pilot's endpoint index holds it (model.IstioEndpoint).
#[derive(Debug, Clone)]
struct IstioEndpoint {
    address: String,
    port: u32,
    service_port_name: String,
    /// The locality label as pilot keeps it ("r/z/" for pods: getPodLocality).
    locality: String,
    labels: BTreeMap<String, String>,
    weight: u32,
    tls_istio: bool,
    node: String,
    remote: String,
}

/// A service as pilot's registries define it.
#[derive(Debug, Clone)]
struct Service {
    host: String,
    namespace: String,
    /// (name, port)
    ports: Vec<(String, u32)>,
    kind: &'static str,
    mesh_external: bool,
    node_local: bool,
    /// Service.spec.trafficDistribution (PreferClose and friends force failover).
    traffic_distribution: super::TrafficDistribution,
    endpoints: Vec<IstioEndpoint>,
    /// Defined by ServiceEntries alone (no Kubernetes Service of this host).
    from_entries: bool,
    /// In multi-network ambient, a Service that is not global: EDS keeps only this cluster's
    /// endpoints of it, for every proxy (endpoint_builder.go filterIstioEndpoint).
    cluster_only: bool,
}

/// The answer for a set of objects.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Simulation {
    pub clusters: Vec<EnvoyCluster>,
    /// Local workloads assumed because the objects had none (namespace/name@locality).
    pub synthesized: Vec<String>,
}

use super::labels::TLS_MODE;

fn namespace_of(object: &Value) -> String {
    str_at(object, &["metadata", "namespace"])
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_owned()
}

fn kind_of(object: &Value) -> (&str, &str) {
    let api = str_at(object, &["apiVersion"]).unwrap_or("");
    let group = api.split_once('/').map_or("", |(g, _)| g);
    (group, str_at(object, &["kind"]).unwrap_or(""))
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// The Kubernetes Services pilot's kube registry keeps (not ExternalName): (object, name,
/// namespace, host).
fn kube_services<'a>(
    objects: &'a [&'a Value],
    domain: &'a str,
) -> impl Iterator<Item = (&'a Value, &'a str, String, String)> + 'a {
    objects
        .iter()
        .copied()
        .filter(|o| kind_of(o) == ("", "Service"))
        .filter(|svc| svc.path(&["spec", "type"]).and_then(Value::as_str) != Some("ExternalName"))
        .filter_map(move |svc| {
            let name = str_at(svc, &["metadata", "name"])?;
            let namespace = namespace_of(svc);
            let host = super::service_host(name, &namespace, domain);
            Some((svc, name, namespace, host))
        })
}

/// One pod as the Istio harness runs it (tests/istio/main.go synthesizeWorkloads): the next
/// address, the Service's selector, a subset's labels and `tlsMode: istio`, on `node` in
/// `locality`, as `registry` labels it; one endpoint per Service port.
fn synthesized_pod(
    next: &mut u32,
    selector: &BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    locality: &str,
    node: &str,
    ports: &[(String, u32, u32)],
    registry: &Registry<'_>,
) -> Vec<IstioEndpoint> {
    *next += 1;
    let ip = format!(
        "10.{}.{}.{}",
        100 + *next / 62500,
        *next / 250 % 250,
        *next % 250 + 1
    );
    let label = pod_locality_label(locality);
    let mut own: BTreeMap<String, String> =
        BTreeMap::from([(TLS_MODE.to_owned(), "istio".to_owned())]);
    own.extend(selector.clone());
    own.extend(set.clone());
    let mut labels = augment_labels(&own, registry.cluster, &label, registry.network);
    labels.insert(super::labels::HOSTNAME.to_owned(), node.to_owned());
    ports
        .iter()
        .map(|(port_name, _, target)| IstioEndpoint {
            address: ip.clone(),
            port: *target,
            service_port_name: port_name.clone(),
            locality: label.clone(),
            labels: labels.clone(),
            weight: 1,
            tls_istio: true,
            node: node.to_owned(),
            remote: registry.remote.to_owned(),
        })
        .collect()
}

/// A Service's ports as (name, port, numeric target port or the port).
fn service_ports(svc: &Value) -> Vec<(String, u32, u32)> {
    array_at(svc, &["spec", "ports"])
        .iter()
        .filter_map(|p| {
            let port = u32::try_from(p.field("port").and_then(as_int)?).ok()?;
            let target = p
                .field("targetPort")
                .and_then(Value::as_i64)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(port);
            let name = p.field("name").and_then(Value::as_str).unwrap_or("");
            Some((name.to_owned(), port, target))
        })
        .collect()
}

/// A kube registry pilot reads: this cluster's, or a remote's through its remote secret
/// (each registry labels its endpoints with its cluster ID and network).
struct Registry<'a> {
    cluster: &'a str,
    network: &'a str,
    /// The remote cluster's name ("" for this cluster), what `simulate` shows per endpoint.
    remote: &'a str,
}

/// The locality a pod gets from its node's labels (controller.go getPodLocality:
/// `region/zone/subzone`, empty when the node has none).
fn pod_locality_label(locality: &str) -> String {
    let mut parts = locality.splitn(3, '/');
    let (r, z, s) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if r.is_empty() && z.is_empty() && s.is_empty() {
        String::new()
    } else {
        format!("{r}/{z}/{s}")
    }
}

/// The distinct label sets of the subsets of every DestinationRule for `host` (`{}` when none):
/// the harness runs one pod per set and locality.
fn subset_label_sets(rules: &[(String, &Value)], host: &str) -> Vec<BTreeMap<String, String>> {
    let mut sets: Vec<BTreeMap<String, String>> = Vec::new();
    for (_, dr) in rules.iter().filter(|(h, _)| *h == host) {
        for subset in array_at(dr, &["spec", "subsets"]) {
            let labels = string_map(subset.field("labels"));
            if !labels.is_empty() && !sets.contains(&labels) {
                sets.push(labels);
            }
        }
    }
    if sets.is_empty() {
        sets.push(BTreeMap::new());
    }
    sets
}

/// In a native multicluster model, every remote cluster runs the same Services (namespace
/// sameness), and istiod merges their workloads into each Service through its remote secret:
/// the remote's kube registry gives them the remote's cluster ID, its nodes' locality and its
/// network (kube/controller endpoint builder, labelutil.AugmentLabels). The harness runs one
/// pod per subset label set in each remote's locality, numbered after the local ones.
fn native_remote_workloads(
    objects: &[&Value],
    config: &Config,
    rules: &[(String, &Value)],
    services: &mut [Service],
    next: &mut u32,
    synthesized: &mut Vec<String>,
) {
    for remote in &config.remotes {
        let node = format!("failover-guard-{}-node-0", remote.name);
        let registry = Registry {
            cluster: &remote.name,
            network: &remote.network,
            remote: &remote.name,
        };
        // The remote's real workloads, where they were read (discovery, `--remote`).
        let workloads = remote.workloads.as_ref().map(|w| w.lookup());
        for (svc, name, namespace, host) in kube_services(objects, &config.cluster.cluster_domain) {
            let ports = service_ports(svc);
            let Some(service) = services
                .iter_mut()
                .find(|s| s.host == host && s.namespace == namespace && !s.from_entries)
            else {
                continue;
            };
            if let Some(workloads) = workloads {
                let slices = workloads.slices_of(&namespace, name);
                service
                    .endpoints
                    .extend(slice_endpoints(workloads, &slices, &ports, &registry));
                continue;
            }
            let selector = string_map(svc.path(&["spec", "selector"]));
            for (si, set) in subset_label_sets(rules, &host).iter().enumerate() {
                service.endpoints.extend(synthesized_pod(
                    next,
                    &selector,
                    set,
                    &remote.locality,
                    &node,
                    &ports,
                    &registry,
                ));
                synthesized.push(format!(
                    "{}:{namespace}/{name}-0-{si}@{}",
                    remote.name, remote.locality
                ));
            }
        }
    }
}

/// The client's node: the synthesized node of its locality, when it is a local one.
fn client_node(config: &Config, client: &Client) -> String {
    config
        .cluster
        .localities
        .iter()
        .position(|l| *l == client.locality)
        .map(|i| format!("failover-guard-node-{i}"))
        .unwrap_or_default()
}

/// Every DestinationRule's (resolved host, object), in input order (creation order).
fn destination_rules<'a>(objects: &[&'a Value], config: &Config) -> Vec<(String, &'a Value)> {
    objects
        .iter()
        .copied()
        .filter(|o| kind_of(o) == ("networking.istio.io", "DestinationRule"))
        .filter_map(|o| {
            let host = o.path(&["spec", "host"])?.as_str()?;
            Some((
                fqdn(host, &namespace_of(o), &config.cluster.cluster_domain),
                o,
            ))
        })
        .collect()
}

/// The services of the objects, with their endpoints: Kubernetes Services with synthesized
/// pods and the ServiceEntry endpoints that merge into them, and ServiceEntry-only hosts.
fn services(objects: &[&Value], config: &Config, synthesized: &mut Vec<String>) -> Vec<Service> {
    let domain = &config.cluster.cluster_domain;
    let local_cluster = &config.cluster.name;
    let rules = destination_rules(objects, config);
    // Only objects with EndpointSlices (manifests, `--cluster`) have real workloads to look
    // up; the webhook's FG601 simulates without them and skips building the index.
    let index = if objects
        .iter()
        .any(|o| kind_of(o) == ("discovery.k8s.io", "EndpointSlice"))
    {
        KubeIndex::new(objects)
    } else {
        KubeIndex::default()
    };
    let lookup = Lookup::new(objects, &index);
    let mut out: Vec<Service> = Vec::new();
    let mut next = 0u32;
    for (svc, name, namespace, host) in kube_services(objects, domain) {
        let ports = service_ports(svc);
        let headless = svc.path(&["spec", "clusterIP"]).and_then(Value::as_str) == Some("None");
        let selector = string_map(svc.path(&["spec", "selector"]));
        // The harness's pods: one per local locality and subset label set
        // (tests/istio/main.go synthesizeWorkloads), on the locality's node.
        let sets = subset_label_sets(&rules, &host);
        let mut endpoints = Vec::new();
        let slices = lookup.slices_of(&namespace, name);
        let local = Registry {
            cluster: local_cluster,
            network: &config.cluster.network,
            remote: "",
        };
        if !slices.is_empty() {
            // Real workloads: the EndpointSlices' ready endpoints, their pods' labels and their
            // nodes' topology (pilot/pkg/serviceregistry/kube/controller/endpointslice.go,
            // endpoint_builder.go NewEndpointBuilder, controller.go getPodLocality).
            endpoints.extend(slice_endpoints(lookup, &slices, &ports, &local));
        } else {
            for (li, locality) in config.cluster.localities.iter().enumerate() {
                let node = format!("failover-guard-node-{li}");
                for (si, set) in sets.iter().enumerate() {
                    endpoints.extend(synthesized_pod(
                        &mut next, &selector, set, locality, &node, &ports, &local,
                    ));
                    synthesized.push(format!("{namespace}/{name}-{li}-{si}@{locality}"));
                }
            }
        }
        // Entries of the same host and namespace merge into the Service by port name
        // (EndpointIndex shards per hostname and namespace).
        for se in objects
            .iter()
            .filter(|o| kind_of(o) == ("networking.istio.io", "ServiceEntry"))
        {
            if !super::entry_merges_into_service(se, &namespace_of(se), &host, &namespace) {
                continue;
            }
            endpoints.extend(entry_endpoints(se, &host, config));
        }
        let traffic_distribution = super::service_traffic_distribution(
            svc,
            namespace_object(objects, &namespace),
            config.istio.version,
        );
        let cluster_only = super::ambient::scopes_services(&config.mesh)
            && super::ambient::service_scope(
                svc,
                namespace_object(objects, &namespace),
                &config.mesh,
            ) == super::ambient::Scope::Local;
        out.push(Service {
            host,
            namespace,
            ports: ports.iter().map(|(n, p, _)| (n.clone(), *p)).collect(),
            kind: if headless { "ORIGINAL_DST" } else { "EDS" },
            mesh_external: false,
            node_local: svc
                .path(&["spec", "internalTrafficPolicy"])
                .and_then(Value::as_str)
                == Some("Local"),
            traffic_distribution,
            endpoints,
            from_entries: false,
            cluster_only,
        });
    }
    if config.multicluster.native() {
        native_remote_workloads(objects, config, &rules, &mut out, &mut next, synthesized);
    }
    for se in objects
        .iter()
        .filter(|o| kind_of(o) == ("networking.istio.io", "ServiceEntry"))
    {
        if se.path(&["spec", "workloadSelector"]).is_some() {
            continue;
        }
        let namespace = namespace_of(se);
        for host in array_at(se, &["spec", "hosts"])
            .iter()
            .filter_map(Value::as_str)
        {
            if host.contains('*') {
                continue;
            }
            let resolution = se
                .path(&["spec", "resolution"])
                .and_then(Value::as_str)
                .unwrap_or("NONE");
            if let Some(merged) = out.iter_mut().find(|s| s.host == host) {
                // Entries of one host and namespace are one service with all their instances,
                // the oldest entry's definition first; a DNS_ROUND_ROBIN entry adds nothing
                // for a port the host already serves (serviceentry/conversion.go
                // mergeServicesInstancesByNamespaceHost).
                if merged.from_entries && merged.namespace == namespace {
                    let served: BTreeSet<String> = merged
                        .endpoints
                        .iter()
                        .map(|e| e.service_port_name.clone())
                        .collect();
                    merged
                        .endpoints
                        .extend(entry_endpoints(se, host, config).into_iter().filter(|e| {
                            resolution != "DNS_ROUND_ROBIN"
                                || !served.contains(&e.service_port_name)
                        }));
                }
                continue;
            }
            let mut endpoints = entry_endpoints(se, host, config);
            if resolution == "DNS_ROUND_ROBIN" {
                // The same merge within one entry: one instance per port.
                let mut served = BTreeSet::new();
                endpoints.retain(|e| served.insert(e.service_port_name.clone()));
            }
            let kind = match resolution {
                "STATIC" => "EDS",
                "DNS" => "STRICT_DNS",
                "DNS_ROUND_ROBIN" => "LOGICAL_DNS",
                _ => "ORIGINAL_DST",
            };
            out.push(Service {
                host: host.to_owned(),
                namespace: namespace.clone(),
                ports: array_at(se, &["spec", "ports"])
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.field("name")?.as_str()?.to_owned(),
                            u32::try_from(p.field("number").and_then(as_int)?).ok()?,
                        ))
                    })
                    .collect(),
                kind,
                mesh_external: se.path(&["spec", "location"]).and_then(Value::as_str)
                    != Some("MESH_INTERNAL"),
                node_local: false,
                traffic_distribution: super::traffic_distribution(
                    None,
                    se.path(&["metadata", "annotations"]),
                    namespace_annotations(objects, &namespace),
                    config.istio.version,
                ),
                endpoints,
                from_entries: true,
                cluster_only: false,
            });
        }
    }
    out
}

/// The annotations of a namespace's Namespace object among the objects, if it is there (pilot
/// reads them for traffic distribution: kube/controller.go addOrUpdateService).
fn namespace_annotations<'a>(objects: &[&'a Value], namespace: &str) -> Option<&'a Value> {
    namespace_object(objects, namespace).and_then(|o| o.path(&["metadata", "annotations"]))
}

/// The Namespace object of `namespace` among the objects.
fn namespace_object<'a>(objects: &[&'a Value], namespace: &str) -> Option<&'a Value> {
    objects.iter().copied().find(|o| {
        kind_of(o) == ("", "Namespace") && str_at(o, &["metadata", "name"]) == Some(namespace)
    })
}

/// The local endpoints of a Service from its EndpointSlices: ready endpoints whose pod is
/// known (pilot waits for a pod a targetRef names), with the pod's labels, the node's locality
/// (or the pod's istio-locality label), the pod's tlsMode label.
fn slice_endpoints<V: Borrow<Value>>(
    objects: Lookup<'_, V>,
    slices: &[&Value],
    ports: &[(String, u32, u32)],
    registry: &Registry<'_>,
) -> Vec<IstioEndpoint> {
    let mut out = Vec::new();
    for slice in slices {
        let ns = namespace_of(slice);
        for endpoint in array_at(slice, &["endpoints"]) {
            if endpoint
                .path(&["conditions", "ready"])
                .and_then(Value::as_bool)
                == Some(false)
            {
                continue;
            }
            let Some(address) = array_at(endpoint, &["addresses"])
                .first()
                .and_then(Value::as_str)
            else {
                continue;
            };
            let pod = match endpoint
                .path(&["targetRef", "name"])
                .and_then(Value::as_str)
            {
                Some(pod) => match objects.get("", "Pod", &ns, pod) {
                    Some(pod) => Some(pod),
                    None => continue,
                },
                None => objects.pod_by_ip(address),
            };
            let own = string_map(pod.and_then(|p| p.path(&["metadata", "labels"])));
            let node = pod
                .and_then(|p| str_at(p, &["spec", "nodeName"]))
                .unwrap_or("")
                .to_owned();
            // controller.go getPodLocality: the pod's locality label, else its node's.
            let locality = match super::locality_from_labels(&own) {
                Some(l) => l,
                None => objects
                    .get("", "Node", "", &node)
                    .map(|n| {
                        let label = |k: &str| {
                            str_at(n, &["metadata", "labels", k])
                                .unwrap_or("")
                                .to_owned()
                        };
                        let (r, z, s) = (
                            label(super::labels::REGION),
                            label(super::labels::ZONE),
                            label(super::labels::SUBZONE),
                        );
                        if r.is_empty() && z.is_empty() && s.is_empty() {
                            String::new()
                        } else {
                            format!("{r}/{z}/{s}")
                        }
                    })
                    .unwrap_or_default(),
            };
            let mut labels = augment_labels(&own, registry.cluster, &locality, registry.network);
            if !node.is_empty() {
                labels.insert(super::labels::HOSTNAME.to_owned(), node.clone());
            }
            for slice_port in array_at(slice, &["ports"]) {
                let port_name = slice_port
                    .field("name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !ports.iter().any(|(n, _, _)| n == port_name) {
                    continue;
                }
                let port = slice_port
                    .field("port")
                    .and_then(as_int)
                    .and_then(|p| u32::try_from(p).ok())
                    .unwrap_or(0);
                out.push(IstioEndpoint {
                    address: address.to_owned(),
                    port,
                    service_port_name: port_name.to_owned(),
                    locality: locality.clone(),
                    labels: labels.clone(),
                    weight: 1,
                    tls_istio: own.get(TLS_MODE).map(String::as_str) == Some("istio"),
                    node: node.clone(),
                    remote: registry.remote.to_owned(),
                });
            }
        }
    }
    out
}

/// The endpoints of an entry, one per entry port it serves
/// (serviceentry/conversion.go convertWorkloadEntryToWorkloadInstance and the instances built
/// from it).
fn entry_endpoints(se: &Value, host: &str, config: &Config) -> Vec<IstioEndpoint> {
    let mut out = Vec::new();
    // A DNS entry without endpoints resolves its host: one endpoint per port, the host as its
    // address, no locality and no labels (conversion.go convertServiceEntryToInstances,
    // hostnameToServiceInstance).
    let dns = matches!(
        se.path(&["spec", "resolution"]).and_then(Value::as_str),
        Some("DNS" | "DNS_ROUND_ROBIN")
    );
    if dns
        && array_at(se, &["spec", "endpoints"]).is_empty()
        && se.path(&["spec", "workloadSelector"]).is_none()
    {
        for (name, target) in entry_ports(se, None) {
            out.push(IstioEndpoint {
                address: host.to_owned(),
                port: target,
                service_port_name: name.to_owned(),
                locality: String::new(),
                labels: BTreeMap::new(),
                weight: 1,
                tls_istio: false,
                node: String::new(),
                remote: String::new(),
            });
        }
        return out;
    }
    for endpoint in array_at(se, &["spec", "endpoints"]) {
        let address = endpoint
            .field("address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        // An endpoint without `network` has no network label: the ServiceEntry registry's
        // network callback finds none for it (workloadEntryNetwork).
        let labels = entry_endpoint_labels(endpoint, &config.cluster.name);
        let locality = super::entry_endpoint_locality(endpoint);
        let remote = config
            .remote_at(&address)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        for (name, target) in entry_ports(se, Some(endpoint)) {
            out.push(IstioEndpoint {
                address: address.clone(),
                port: target,
                service_port_name: name.to_owned(),
                locality: locality.clone(),
                labels: labels.clone(),
                weight: endpoint
                    .field("weight")
                    .and_then(as_int)
                    .and_then(|w| u32::try_from(w).ok())
                    .filter(|w| *w > 0)
                    .unwrap_or(1),
                tls_istio: super::entry_endpoint_mtls(endpoint),
                node: String::new(),
                remote: remote.clone(),
            });
        }
    }
    out
}

/// Each named port of an entry with the port an endpoint receives it on: the endpoint's own
/// `ports` mapping, else the port's `targetPort`, else its number (conversion.go
/// convertWorkloadInstanceToServiceInstance).
fn entry_ports<'a>(
    se: &'a Value,
    endpoint: Option<&'a Value>,
) -> impl Iterator<Item = (&'a str, u32)> {
    array_at(se, &["spec", "ports"])
        .iter()
        .filter_map(move |port| {
            let name = port.field("name").and_then(Value::as_str)?;
            let number = port.field("number").and_then(as_int).unwrap_or(0);
            let target = endpoint
                .and_then(|e| e.field("ports"))
                .and_then(|m| m.field(name))
                .and_then(as_int)
                .or_else(|| port.field("targetPort").and_then(as_int).filter(|t| *t > 0))
                .unwrap_or(number);
            Some((name, u32::try_from(target).unwrap_or(0)))
        })
}

/// The locality setting in effect (loadbalancer.GetEffectiveLbSetting): the rule's, else the
/// Service's trafficDistribution (forced), else the mesh config's localityLbSetting (Istio's
/// default: enabled). `None`: disabled. Returns (setting, forced).
fn effective_lb_setting(
    policy: Option<&Value>,
    service: &Service,
    mesh: &MeshConfig,
    version: IstioVersion,
) -> Option<(Value, bool)> {
    if let Some(setting) = policy
        .and_then(|p| p.path(&["loadBalancer", "localityLbSetting"]))
        .filter(|s| !s.is_null())
    {
        if setting.field("enabled").and_then(Value::as_bool) == Some(false) {
            return None;
        }
        return Some((setting.clone(), false));
    }
    let distribution = if version.has(Behaviour::SidecarTrafficDistribution) {
        service.traffic_distribution
    } else {
        super::TrafficDistribution::Any
    };
    match distribution {
        super::TrafficDistribution::PreferSameZone => {
            return Some((
                serde_json::json!({"failoverPriority": [super::labels::NETWORK, super::labels::REGION, super::labels::ZONE]}),
                true,
            ));
        }
        super::TrafficDistribution::PreferSameNode => {
            return Some((
                serde_json::json!({"failoverPriority": [super::labels::NETWORK, super::labels::REGION, super::labels::ZONE, super::labels::SUBZONE, super::labels::HOSTNAME]}),
                true,
            ));
        }
        super::TrafficDistribution::Any => {}
    }
    mesh.locality_lb_setting()
        .map(|setting| (setting.clone(), false))
}

/// Whether EDS keeps an endpoint's Istio mTLS metadata (endpoint_builder.go
/// buildEnvoyLbEndpoint clears its `tlsMode: istio` where endpoints/mtls_checker.go
/// checkMtlsEnabled says no): the DestinationRule's TLS mode for the port, when it sets one
/// (tlsModeForDestinationRule); else the mode of the endpoint's workload (namespace, labels,
/// target port: PeerAuthentications::workload_mode) other than DISABLE.
fn eds_mtls(
    e: &IstioEndpoint,
    rule: &Consolidated,
    subset: &str,
    port: u32,
    service: &Service,
    peers: &PeerAuthentications,
) -> bool {
    e.tls_istio
        && match tls_mode_for_destination_rule(rule, subset, port).as_deref() {
            Some(mode) => mode == "ISTIO_MUTUAL",
            None => peers.workload_mode(&service.namespace, &e.labels, e.port) != MtlsMode::Disable,
        }
}

/// An east-west gateway as pilot knows it (model.NetworkGateway): in the native models, each
/// remote on another network has one, found the way istio.io documents it, from the remote's
/// gateway Service labelled `topology.istio.io/network` (kube/controller/network.go
/// extractGatewaysInner: the gateway's cluster is the remote's).
#[derive(Debug, Clone)]
struct NetworkGateway {
    network: String,
    cluster: String,
    address: String,
    port: u32,
    /// An ambient east-west gateway (HBONE only): it makes the mesh multi-network, but a
    /// sidecar cannot send through it.
    hbone_only: bool,
}

fn network_gateways(config: &Config) -> Vec<NetworkGateway> {
    if !config.multicluster.native() {
        return Vec::new();
    }
    config
        .remotes
        .iter()
        .filter(|r| r.network != config.cluster.network && !r.gateway.is_unset())
        .map(|r| NetworkGateway {
            network: r.network.clone(),
            cluster: r.name.clone(),
            address: r.gateway.address.clone(),
            port: u32::from(r.gateway.port),
            hbone_only: super::multicluster::hbone_only(r.gateway.port),
        })
        .collect()
}

/// pilot/pkg/xds/endpoints/ep_filters.go EndpointsByNetworkFilter: an endpoint on another
/// network that has gateways is replaced, in its locality group, by those gateways (its
/// cluster's, else its network's), each weighted with its share; the weights of every
/// endpoint are first scaled by the least common multiple of gateways per network and per
/// network and cluster (NetworkGateways.GetLBWeightScaleFactor). A cross-network endpoint
/// without Istio mTLS is dropped. A gateway endpoint carries only its cluster and network
/// labels (`AugmentLabels(nil, gw.Cluster, "", "", gw.Network)`).
///
/// Sidecars skip HBONE-only gateways (selectNetworkGateways). An endpoint on another network
/// left without a gateway is then sent as it is, except in multi-network ambient
/// (AMBIENT_ENABLE_MULTI_NETWORK, `ambient_multi_network`), where it is dropped.
fn by_network_filter(
    groups: Vec<Group>,
    gateways: &[NetworkGateway],
    local_network: &str,
    ambient_multi_network: bool,
    eds_mtls: &dyn Fn(&IstioEndpoint) -> bool,
) -> Vec<Group> {
    let usable: Vec<&NetworkGateway> = gateways.iter().filter(|g| !g.hbone_only).collect();
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut per_network: BTreeMap<&str, u32> = BTreeMap::new();
    let mut per_cluster: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for gw in &usable {
        *per_network.entry(&gw.network).or_default() += 1;
        *per_cluster.entry((&gw.network, &gw.cluster)).or_default() += 1;
    }
    let scale = per_network
        .values()
        .chain(per_cluster.values())
        .fold(1u32, |acc, &n| acc / gcd(acc, n) * n);
    groups
        .into_iter()
        .map(|group| {
            let mut endpoints = Vec::new();
            let mut weights: BTreeMap<(String, u32), (u32, &NetworkGateway)> = BTreeMap::new();
            for e in group.endpoints {
                let network = e
                    .labels
                    .get(super::labels::NETWORK)
                    .map_or("", String::as_str);
                let cluster = e
                    .labels
                    .get(super::labels::CLUSTER)
                    .map_or("", String::as_str);
                let mut chosen: Vec<&NetworkGateway> = usable
                    .iter()
                    .filter(|g| g.network == network && g.cluster == cluster)
                    .copied()
                    .collect();
                if chosen.is_empty() {
                    chosen = usable
                        .iter()
                        .filter(|g| g.network == network)
                        .copied()
                        .collect();
                }
                // proxy.InNetwork: an endpoint (or a proxy) without a network is in every one.
                let in_network =
                    network.is_empty() || local_network.is_empty() || network == local_network;
                if !in_network && chosen.is_empty() && ambient_multi_network {
                    continue;
                }
                let weight = if e.weight == 0 {
                    scale
                } else {
                    e.weight.saturating_mul(scale)
                };
                if network == local_network || chosen.is_empty() {
                    if !e.address.is_empty() {
                        endpoints.push(IstioEndpoint { weight, ..e });
                    }
                    continue;
                }
                if !eds_mtls(&e) {
                    continue;
                }
                let share = weight / u32::try_from(chosen.len()).unwrap_or(1);
                for gw in chosen {
                    weights
                        .entry((gw.address.clone(), gw.port))
                        .or_insert((0, gw))
                        .0 += share;
                }
            }
            for ((address, port), (weight, gw)) in weights {
                endpoints.push(IstioEndpoint {
                    address,
                    port,
                    service_port_name: String::new(),
                    locality: String::new(),
                    labels: super::augment_labels(&BTreeMap::new(), &gw.cluster, "", &gw.network),
                    weight: weight.max(1),
                    tls_istio: true,
                    node: String::new(),
                    remote: gw.cluster.clone(),
                });
            }
            Group {
                weight: endpoints.iter().map(|e| e.weight).sum(),
                endpoints,
                ..group
            }
        })
        .collect()
}

/// A group of endpoints of one locality (LocalityLbEndpoints) during the computation.
#[derive(Debug, Clone)]
struct Group {
    locality: String,
    priority: u32,
    weight: u32,
    endpoints: Vec<IstioEndpoint>,
}

/// Renumbers priorities from 0 without gaps, keeping their order.
fn renumber(groups: &mut [Group]) {
    let distinct: BTreeSet<u32> = groups.iter().map(|g| g.priority).collect();
    let index: BTreeMap<u32, u32> = distinct
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, i as u32))
        .collect();
    for g in groups.iter_mut() {
        g.priority = index[&g.priority];
    }
}

/// loadbalancer.applyLocalityWeights.
fn apply_locality_weights(client: &str, groups: &mut [Group], distribute: &[Value]) {
    for rule in distribute {
        let Some(from) = rule.field("from").and_then(Value::as_str) else {
            continue;
        };
        if !locality_match(client, from) {
            continue;
        }
        let mut unmatched: BTreeSet<usize> = (0..groups.len()).collect();
        for (key, weight) in rule
            .field("to")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let weight = u32::try_from(as_int(weight).unwrap_or(0)).unwrap_or(0);
            let matched: Vec<usize> = unmatched
                .iter()
                .copied()
                .filter(|i| locality_match(&groups[*i].locality, key))
                .collect();
            // A group the network filter emptied has no weight (refreshWeight: nil), which
            // applyLocalityWeights counts as 1.
            let original = |g: &Group| if g.weight == 0 { 1 } else { g.weight };
            let total: u32 = matched.iter().map(|i| original(&groups[*i])).sum();
            for i in &matched {
                unmatched.remove(i);
                let share = f64::from(original(&groups[*i]) * weight) / f64::from(total.max(1));
                if share > 0.0 {
                    groups[*i].weight = share.ceil() as u32;
                }
            }
        }
        for i in unmatched {
            groups[i].endpoints.clear();
        }
        break;
    }
}

/// The priority loadbalancer.applyLocalityFailover gives one locality group: util.LbPriority,
/// and 4 instead of 3 for a group outside the `to` region of the client region's first
/// failover rule.
fn locality_failover_priority(client: &str, locality: &str, failover: &[Value]) -> u32 {
    let (client_region, _, _) = split(client);
    let mut p = lb_priority(client, locality);
    if p == 3 {
        for rule in failover {
            if rule.field("from").and_then(Value::as_str) == Some(client_region) {
                if split(locality).0 != rule.field("to").and_then(Value::as_str).unwrap_or("") {
                    p = 4;
                }
                break;
            }
        }
    }
    p
}

/// loadbalancer.applyLocalityFailover.
fn apply_locality_failover(client: &str, groups: &mut [Group], failover: &[Value]) {
    for g in groups.iter_mut() {
        g.priority = g.priority * 5 + locality_failover_priority(client, &g.locality, failover);
    }
    renumber(groups);
}

/// Where a client and an endpoint stand for locality ranking: the locality label and the
/// labels pilot compares (augmented with topology, `super::augment_labels`).
pub struct Ranked<'a> {
    pub locality: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// The rank (before renumbering; lower is tried first, 0 beside the client's own locality
/// and labels) an endpoint gets from a failover localityLbSetting with outlier detection on
/// (loadbalancer.ApplyLocalityLoadBalancer without distribute): failoverPriority's label
/// match, then, when `failover` is set too or failoverPriority is empty, the locality ranking
/// of applyLocalityFailover on top (priority * 5 + locality priority). So with `failover`
/// beside failoverPriority, endpoints the labels tie are still ordered by locality.
pub fn endpoint_rank(
    client: &Ranked<'_>,
    endpoint: &Ranked<'_>,
    priority_labels: &[&str],
    failover: &[Value],
) -> u32 {
    let by_labels = if priority_labels.is_empty() {
        0
    } else {
        failover_priority(priority_labels, client.labels, endpoint.labels) as u32
    };
    if priority_labels.is_empty() || !failover.is_empty() {
        by_labels * 5 + locality_failover_priority(client.locality, endpoint.locality, failover)
    } else {
        by_labels
    }
}

/// loadbalancer.applyFailoverPriorities: each group split by the priority its endpoints get.
fn apply_failover_priorities(
    groups: Vec<Group>,
    proxy: &BTreeMap<String, String>,
    labels: &[&str],
) -> Vec<Group> {
    let mut out = Vec::new();
    for g in groups {
        let mut by: BTreeMap<u32, Vec<IstioEndpoint>> = BTreeMap::new();
        for e in &g.endpoints {
            by.entry(failover_priority(labels, proxy, &e.labels) as u32)
                .or_default()
                .push(e.clone());
        }
        for (priority, endpoints) in by {
            out.push(Group {
                locality: g.locality.clone(),
                priority,
                weight: endpoints.iter().map(|e| e.weight).sum(),
                endpoints,
            });
        }
    }
    renumber(&mut out);
    out
}

/// Every host of the objects with its namespace (Kubernetes Services first, then
/// ServiceEntry-only hosts), in input order.
pub fn hosts<V: Borrow<Value>>(objects: &[V], config: &Config) -> Vec<(String, String)> {
    let objects: Vec<&Value> = objects.iter().map(Borrow::borrow).collect();
    services(&objects, config, &mut Vec::new())
        .into_iter()
        .map(|s| (s.host, s.namespace))
        .collect()
}

/// The workloads ztunnel receives for the Service `namespace/name` (pilot's ambient index,
/// pilot/pkg/serviceregistry/ambient): its pods in this cluster; in multi-network ambient
/// (the mesh scopes services) and for a global service, also the pods of the remotes on this
/// network and one workload per other network that has endpoints and an east-west gateway
/// (multicluster.go SplitHorizonWorkloads and createSplitHorizonWorkload; a local service keeps
/// this cluster's, mergeServiceInfosWithCluster). ServiceEntry endpoints of the same host are
/// not among them: the Service's workloads come from its own pods. Without multi-network
/// ambient the ambient index reads no remote cluster (ambientindex.go New builds the global
/// collections only with AMBIENT_ENABLE_MULTI_NETWORK). Sorted by cluster, then locality.
pub fn ztunnel_workloads<V: Borrow<Value>>(
    objects: &[V],
    config: &Config,
    namespace: &str,
    name: &str,
) -> Vec<super::ambient::ZtunnelWorkload> {
    use super::ambient::{Scope, ZtunnelWorkload, scopes_services, service_scope};
    let objects: Vec<&Value> = objects
        .iter()
        .map(Borrow::borrow)
        .filter(|o| kind_of(o) != ("networking.istio.io", "ServiceEntry"))
        .collect();
    let host = super::service_host(name, namespace, &config.cluster.cluster_domain);
    let Some(service) = services(&objects, config, &mut Vec::new())
        .into_iter()
        .find(|s| s.host == host && s.namespace == namespace && !s.from_entries)
    else {
        return Vec::new();
    };
    let global = scopes_services(&config.mesh)
        && kube_services(&objects, &config.cluster.cluster_domain)
            .into_iter()
            .find(|(_, n, ns, _)| *n == name && ns == namespace)
            .is_some_and(|(svc, ..)| {
                service_scope(svc, namespace_object(&objects, namespace), &config.mesh)
                    == Scope::Global
            });
    let local = &config.cluster.network;
    let mut seen = BTreeSet::new();
    let mut out: Vec<ZtunnelWorkload> = Vec::new();
    let mut other_networks: BTreeMap<String, ()> = BTreeMap::new();
    for e in &service.endpoints {
        if !seen.insert(e.address.clone()) {
            continue;
        }
        let label = |k: &str| e.labels.get(k).cloned().unwrap_or_default();
        let (cluster, network) = (label(super::labels::CLUSTER), label(super::labels::NETWORK));
        let own_cluster = e.remote.is_empty();
        if !own_cluster && !global {
            continue;
        }
        if network != *local {
            other_networks.insert(network, ());
            continue;
        }
        out.push(ZtunnelWorkload {
            cluster,
            network,
            locality: e.locality.trim_end_matches('/').to_owned(),
            gateway: false,
            node: e.node.clone(),
        });
    }
    for network in other_networks.into_keys() {
        // The network's east-west gateway, in the first remote of that network that has one.
        if let Some(remote) = config
            .remotes
            .iter()
            .find(|r| r.network == network && !r.gateway.is_unset())
        {
            out.push(ZtunnelWorkload {
                cluster: remote.name.clone(),
                network,
                locality: String::new(),
                gateway: true,
                node: String::new(),
            });
        }
    }
    out.sort();
    out
}

/// Whether an endpoint is taken down by a failure named as a locality
/// (region[/zone[/subzone]], matched like LocalityMatch) or a cluster (this one's name: every
/// local endpoint; a remote's: its gateway endpoints).
pub fn fails(failure: &str, config: &Config, locality: &str, endpoint: &EndpointOut) -> bool {
    if failure == config.cluster.name {
        return endpoint.cluster.is_empty();
    }
    if config.remotes.iter().any(|r| r.name == failure) {
        return endpoint.cluster == failure;
    }
    !locality.is_empty() && locality_match(locality, failure)
}

/// What pilot sends one client for every host of `objects` (or those of `hosts`).
///
/// `objects` may be owned or borrowed (`&[Value]`, `&[&Value]`, `&[Arc<Value>]`), so that
/// FG601 simulates on the world's objects without copying them.
pub fn simulate<V: Borrow<Value>>(
    objects: &[V],
    config: &Config,
    clients: &[Client],
    hosts: &[String],
) -> Simulation {
    let objects: Vec<&Value> = objects.iter().map(Borrow::borrow).collect();
    let objects = objects.as_slice();
    let mut sim = Simulation::default();
    let services = services(objects, config, &mut sim.synthesized);
    let rules = Index::new(
        objects,
        &config.mesh,
        &config.scope.root_namespace,
        &config.cluster.cluster_domain,
    );
    let no_rule = Consolidated::default();
    let peers = PeerAuthentications::new(objects, &config.scope.root_namespace);
    let gateways = network_gateways(config);
    for client in clients {
        let node = client_node(config, client);
        let proxy_labels = augment_labels(
            &BTreeMap::from([("app".to_owned(), "failover-guard-client".to_owned())]),
            &config.cluster.name,
            &client.locality,
            &config.cluster.network,
        );
        let mut proxy_labels = proxy_labels;
        if !node.is_empty() {
            proxy_labels.insert(super::labels::HOSTNAME.to_owned(), node.clone());
        }
        for service in services
            .iter()
            .filter(|s| hosts.is_empty() || hosts.contains(&s.host))
        {
            let rule = rules
                .for_sidecar(
                    &client.namespace,
                    &proxy_labels,
                    &service.host,
                    &service.namespace,
                )
                .unwrap_or(&no_rule);
            let mut subsets: Vec<String> = vec![String::new()];
            subsets.extend(
                rule.subsets
                    .iter()
                    .filter_map(|s| s.field("name")?.as_str().map(str::to_owned)),
            );
            for (port_name, port) in &service.ports {
                for subset in &subsets {
                    sim.clusters.push(cluster(
                        service,
                        rule,
                        subset,
                        port_name,
                        *port,
                        client,
                        &node,
                        &proxy_labels,
                        &config.mesh,
                        config.istio.version,
                        &peers,
                        &gateways,
                        &config.cluster.network,
                    ));
                }
            }
        }
    }
    sim.clusters.sort_by(|a, b| {
        (&a.client.namespace, &a.client.locality, &a.name).cmp(&(
            &b.client.namespace,
            &b.client.locality,
            &b.name,
        ))
    });
    sim
}

#[allow(clippy::too_many_arguments)]
fn cluster(
    service: &Service,
    rule: &Consolidated,
    subset: &str,
    port_name: &str,
    port: u32,
    client: &Client,
    node: &str,
    proxy_labels: &BTreeMap<String, String>,
    mesh: &MeshConfig,
    version: IstioVersion,
    peers: &PeerAuthentications,
    gateways: &[NetworkGateway],
    network: &str,
) -> EnvoyCluster {
    let policy = effective_policy(rule, subset, port);
    let od = policy
        .as_ref()
        .and_then(|p| p.field("outlierDetection"))
        .filter(|o| !o.is_null());
    let passthrough = policy
        .as_ref()
        .and_then(|p| p.path(&["loadBalancer", "simple"]))
        .and_then(Value::as_str)
        == Some("PASSTHROUGH");
    let kind = if passthrough {
        "ORIGINAL_DST"
    } else {
        service.kind
    };
    let subset_labels: BTreeMap<String, String> = rule
        .subsets
        .iter()
        .find(|s| !subset.is_empty() && s.field("name").and_then(Value::as_str) == Some(subset))
        .map(|s| string_map(s.field("labels")))
        .unwrap_or_default();
    let mut groups: Vec<Group> = Vec::new();
    // A DNS cluster carries its endpoints in CDS, built apart from EDS (cluster.go
    // buildOutboundClusters: the CDS endpoint builder and dnsWrappedLocalityLbEndpoints).
    let dns = matches!(kind, "STRICT_DNS" | "LOGICAL_DNS");
    let all_endpoints = service
        .endpoints
        .iter()
        .filter(|e| e.service_port_name == port_name)
        .count();
    let mut panics = false;
    if kind != "ORIGINAL_DST" {
        // The EDS builder's filters (endpoint_builder.go BuildClusterLoadAssignment, generate).
        let endpoints = service.endpoints.iter().filter(|e| {
            e.service_port_name == port_name
                && (kind != "EDS"
                    || e.address.is_empty()
                    || e.address.parse::<std::net::IpAddr>().is_ok())
                && subset_labels
                    .iter()
                    .all(|(k, v)| e.labels.get(k) == Some(v))
                && (!service.node_local || e.node == node)
                // A remote registry's endpoint of a service that is not global.
                && !(service.cluster_only
                    && e.labels.get(super::labels::CLUSTER) != proxy_labels.get(super::labels::CLUSTER))
        });
        let mut by_label: BTreeMap<String, Vec<IstioEndpoint>> = BTreeMap::new();
        for e in endpoints {
            by_label
                .entry(e.locality.clone())
                .or_default()
                .push(e.clone());
        }
        groups = by_label
            .into_iter()
            .map(|(locality, endpoints)| Group {
                locality,
                priority: 0,
                weight: endpoints.iter().map(|e| e.weight).sum(),
                endpoints,
            })
            .collect();
        if !gateways.is_empty() {
            // EDS's tlsMode metadata, which the network filter requires of a cross-network
            // endpoint (mtls_checker.go checkMtlsEnabled, ep_filters.go isMtlsEnabled).
            let eds_mtls = |e: &IstioEndpoint| eds_mtls(e, rule, subset, port, service, peers);
            groups = by_network_filter(
                groups,
                gateways,
                network,
                super::ambient::scopes_services(mesh),
                &eds_mtls,
            );
        }
        if let Some((setting, forced)) =
            effective_lb_setting(policy.as_ref(), service, mesh, version)
        {
            // loadbalancer.ApplyLocalityLoadBalancer
            let distribute = array_at(&setting, &["distribute"]);
            let failover = array_at(&setting, &["failover"]);
            let priority: Vec<&str> = array_at(&setting, &["failoverPriority"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if !distribute.is_empty() {
                apply_locality_weights(&client.locality, &mut groups, distribute);
            } else if od.is_some() || forced {
                if !priority.is_empty() {
                    if dns && !version.has(Behaviour::DnsFailoverPriority) {
                        // Before failover priority reached DNS clusters (release note
                        // dns-failover-priority.yaml), their groups kept priority 0.
                    } else if dns {
                        // On a panic, the groups stay as the CDS endpoint builder made them
                        // (what `simulate` shows beside the verdict).
                        match dns_failover_priorities(
                            &groups,
                            all_endpoints,
                            subset,
                            proxy_labels,
                            &priority,
                        ) {
                            Some(ranked) => groups = ranked,
                            None => panics = true,
                        }
                    } else {
                        groups = apply_failover_priorities(groups, proxy_labels, &priority);
                    }
                    if !failover.is_empty() {
                        apply_locality_failover(&client.locality, &mut groups, failover);
                    }
                } else {
                    apply_locality_failover(&client.locality, &mut groups, failover);
                }
            }
        }
    }
    // CDS: the cluster's own TLS (cluster_tls.go buildUpstreamTLSSettings): explicit
    // ISTIO_MUTUAL for every endpoint, another explicit mode for none, unset = auto mTLS through
    // a transport socket match on the endpoint's tlsMode metadata (off for mesh-external).
    // EDS: that metadata is the endpoint's tlsMode label, dropped where
    // endpoints/mtls_checker.go checkMtlsEnabled says no: the rule's TLS mode for the port
    // (tlsModeForDestinationRule, which inherits the top level into port-level entries and
    // subsets, unlike the cluster) when it sets one.
    let cluster_tls = policy
        .as_ref()
        .and_then(|p| p.path(&["tls", "mode"]))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mtls = |e: &IstioEndpoint| match cluster_tls.as_deref() {
        Some("ISTIO_MUTUAL") => true,
        Some(_) => false,
        // buildEnvoyLbEndpoint keeps the endpoint's own tlsMode only where the checker agrees;
        // with enableAutoMtls off, or a service whose PeerAuthentication mode is DISABLE, an
        // unset mode is plaintext (buildUpstreamTLSSettings, checkMtlsEnabled).
        None => {
            mesh.auto_mtls()
                && peers.service_mode(&service.namespace, service.mesh_external)
                    != MtlsMode::Disable
                && !service.mesh_external
                && eds_mtls(e, rule, subset, port, service, peers)
        }
    };
    let mut priorities: Vec<Priority> = groups
        .into_iter()
        .map(|g| {
            let (r, z, s) = split(&g.locality);
            let locality = [r, z, s]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            let mut endpoints: Vec<EndpointOut> = g
                .endpoints
                .iter()
                .map(|e| EndpointOut {
                    address: e.address.clone(),
                    port: e.port,
                    cluster: e.remote.clone(),
                    weight: e.weight,
                    mtls: mtls(e),
                })
                .collect();
            endpoints.sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
            Priority {
                priority: g.priority,
                locality,
                weight: g.weight,
                endpoints,
            }
        })
        .collect();
    priorities.sort_by(|a, b| (a.priority, &a.locality).cmp(&(b.priority, &b.locality)));
    let max_ejection_percent = od
        .and_then(|o| o.field("maxEjectionPercent"))
        .and_then(as_int)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0);
    let mut out = EnvoyCluster {
        name: format!("outbound|{port}|{subset}|{}", service.host),
        host: service.host.clone(),
        port,
        subset: subset.to_owned(),
        client: client.clone(),
        kind: kind.to_owned(),
        outlier_detection: od.is_some(),
        max_ejection_percent,
        destination_rule: rule.names.clone(),
        priorities,
        verdict: String::new(),
    };
    out.verdict = if panics {
        PILOT_PANIC.to_owned()
    } else {
        verdict(&out).to_owned()
    };
    out
}

/// The verdict of a cluster pilot cannot build: it panics, and istiod's push path has no
/// recover, so the control plane goes down.
pub const PILOT_PANIC: &str = "pilot-panic";

/// failoverPriority on a DNS cluster (cluster.go buildOutboundClusters, loadbalancer.go
/// LocalityLBSettings.ApplyToCluster and applyFailoverPriorityPerLocality).
///
/// Pilot wraps a DNS cluster's endpoints as one group: the first locality group the CDS
/// endpoint builder produced (`lbEndpoints[0]`, groups sorted by locality label), beside every
/// endpoint of the port (`IstioEndpoints()`, unfiltered, all localities). Ranking walks the
/// second and indexes the first with the same position: when the port has more endpoints than
/// its first locality group (endpoints in two localities), that index is out of range and
/// pilot panics (`None`). Otherwise the one group is split by priority, and the other groups
/// are dropped. Subset clusters get no wrapped group, so failoverPriority ranks nothing there.
fn dns_failover_priorities(
    groups: &[Group],
    all_endpoints: usize,
    subset: &str,
    proxy_labels: &BTreeMap<String, String>,
    priority: &[&str],
) -> Option<Vec<Group>> {
    if !subset.is_empty() || proxy_labels.is_empty() {
        return Some(groups.to_vec());
    }
    let Some(first) = groups.first() else {
        return Some(Vec::new());
    };
    if all_endpoints > first.endpoints.len() {
        return None;
    }
    Some(apply_failover_priorities(
        vec![first.clone()],
        proxy_labels,
        priority,
    ))
}

/// The Envoy clusters of `host` that pilot cannot build for a sidecar in any of
/// `namespaces` (their verdict is [`PILOT_PANIC`]; their priorities are the locality groups
/// pilot was ranking). FG602's question.
///
/// Of several entries for one host a client uses the oldest one it sees
/// (model/sidecar.go appendSidecarServices, push_context.go initServiceRegistry), and which that
/// is depends on creation times and namespaces that manifests do not carry: each DNS-resolved
/// entry of the host is tried as the one in force (moved before the other entries).
pub fn pilot_panics(
    objects: &[&Value],
    config: &Config,
    namespaces: &[String],
    host: &str,
) -> Vec<EnvoyCluster> {
    let locality = config
        .cluster
        .localities
        .first()
        .cloned()
        .unwrap_or_default();
    let clients: Vec<Client> = namespaces
        .iter()
        .map(|namespace| Client {
            locality: locality.clone(),
            namespace: namespace.clone(),
        })
        .collect();
    let is_entry = |o: &Value| kind_of(o) == ("networking.istio.io", "ServiceEntry");
    let dns_entries: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            is_entry(o)
                && matches!(
                    o.path(&["spec", "resolution"]).and_then(Value::as_str),
                    Some("DNS" | "DNS_ROUND_ROBIN")
                )
                && array_at(o, &["spec", "hosts"])
                    .iter()
                    .any(|h| h.as_str() == Some(host))
        })
        .map(|(i, _)| i)
        .collect();
    for first in dns_entries {
        let mut ordered: Vec<&Value> = Vec::with_capacity(objects.len());
        let mut placed = false;
        for (i, o) in objects.iter().enumerate() {
            if i == first {
                continue;
            }
            if is_entry(o) && !placed {
                ordered.push(objects[first]);
                placed = true;
            }
            ordered.push(o);
        }
        if !placed {
            ordered.push(objects[first]);
        }
        let crashed: Vec<EnvoyCluster> = simulate(&ordered, config, &clients, &[host.to_owned()])
            .clusters
            .into_iter()
            .filter(|c| c.verdict == PILOT_PANIC)
            .collect();
        if !crashed.is_empty() {
            return crashed;
        }
    }
    Vec::new()
}

/// endpoints/mtls_checker.go tlsModeForDestinationRule: the TLS mode the rule sets for a
/// subset and port (the port-level entry's, else the level's own; a subset without one falls
/// back to the top level).
fn tls_mode_for_destination_rule(rule: &Consolidated, subset: &str, port: u32) -> Option<String> {
    fn for_port(policy: Option<&Value>, port: u32) -> Option<String> {
        let policy = policy?;
        let mut mode = policy
            .path(&["tls", "mode"])
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(entry) = array_at(policy, &["portLevelSettings"]).iter().find(|p| {
            p.path(&["port", "number"]).and_then(as_int) == Some(i64::from(port))
                && p.field("tls").is_some_and(|t| !t.is_null())
        }) {
            mode = entry
                .path(&["tls", "mode"])
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(Some("DISABLE".to_owned()));
        }
        mode
    }
    if rule.names.is_empty() {
        return None;
    }
    if subset.is_empty() {
        return for_port(rule.traffic_policy.as_ref(), port);
    }
    let found = rule
        .subsets
        .iter()
        .find(|s| s.field("name").and_then(Value::as_str) == Some(subset))?;
    for_port(found.field("trafficPolicy").filter(|p| !p.is_null()), port)
        .or_else(|| for_port(rule.traffic_policy.as_ref(), port))
}

/// The verdict for one cluster, as the Istio harness gives it (tests/istio/main.go verdict).
pub fn verdict(c: &EnvoyCluster) -> &'static str {
    let endpoints = || {
        c.priorities
            .iter()
            .flat_map(|p| p.endpoints.iter().map(move |e| (p.priority, e)))
    };
    let best_local = endpoints()
        .filter(|(_, e)| e.cluster.is_empty())
        .map(|(p, _)| p)
        .min();
    let best_remote = endpoints()
        .filter(|(_, e)| !e.cluster.is_empty())
        .map(|(p, _)| p)
        .min();
    let plaintext = endpoints().any(|(_, e)| !e.cluster.is_empty() && !e.mtls);
    let total = endpoints().count() as u32;
    let at_best_local =
        best_local.map_or(0, |b| endpoints().filter(|(p, _)| *p == b).count() as u32);
    let max_ejection = if c.max_ejection_percent == 0 {
        10
    } else {
        c.max_ejection_percent
    };
    match (best_local, best_remote) {
        (None, None) => "no-endpoints",
        (None, _) => "no-local",
        (_, None) => "no-remote",
        _ if plaintext => "plaintext",
        _ if !c.outlier_detection => "inert",
        (Some(l), Some(r)) if r == l => "spread",
        (Some(l), Some(r)) if r < l => "remote-first",
        _ if max_ejection * total / 100 < at_best_local => "capped",
        _ => "failover",
    }
}

/// The Envoy clusters of `host` whose priorities for these clients are not failover (FG601's
/// question), from one simulation.
pub fn shortfalls(
    objects: &[&Value],
    config: &Config,
    clients: &[Client],
    host: &str,
) -> Vec<EnvoyCluster> {
    simulate(objects, config, clients, &[host.to_owned()])
        .clusters
        .into_iter()
        .filter(|c| c.verdict != "failover")
        .collect()
}
